"""The GPU check (benchmarks/gpu_check.py) without a GPU: its installer, and its whole dry run on CPU, which must pass
so that the check is ready for the first GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_check import install_wheels  # noqa: E402


def wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> None:
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


def test_wheels_unpack_only_where_the_image_lacks_them(tmp_path: Path) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    wheel(wheels, "absent_pkg", "1.0", {"absent_pkg/__init__.py": "X = 1\n", "absent_pkg-1.0.dist-info/METADATA": ""})
    wheel(wheels, "pytest", "0.1", {"pytest_fake.py": ""})  # installed here, newer: the image's own version is kept
    wheel(wheels, "pluggy", "999.0", {"pluggy_newer.py": ""})  # installed here, older: the carried one goes first
    wheel(
        wheels,
        "selfimprove",
        "0.1.0",
        {"selfimprove/__init__.py": "", "selfimprove-0.1.0.dist-info/entry_points.txt": ""},
    )
    unpacked = install_wheels(wheels, site)
    assert unpacked == ["absent_pkg-1.0-py3-none-any.whl", "pluggy-999.0-py3-none-any.whl",
                        "selfimprove-0.1.0-py3-none-any.whl"]  # fmt: skip
    assert (site / "absent_pkg" / "__init__.py").exists() and not (site / "pytest_fake.py").exists()
    # the project gives its metadata only: its code is the working tree's
    assert (site / "selfimprove-0.1.0.dist-info" / "entry_points.txt").exists() and not (site / "selfimprove").exists()


@pytest.mark.integration
def test_the_dry_run_passes_on_cpu(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out",
                             str(tmp_path), "--wheels", str(tmp_path / "none")], capture_output=True, text=True,
                            timeout=700)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("time_ratio=")
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    status = {p["name"]: p["status"] for p in report["parts"]}
    # no CUDA: the GPU tests skip
    assert status == {"install": "skipped", "pytest-gpu": "skipped", "grpo": "passed", "fsdp-gather": "passed"}
    grpo = next(p for p in report["parts"] if p["name"] == "grpo")["figures"]["adapters"]
    assert grpo["qlora"]["ours"] == {"skipped": "QLoRA needs CUDA"}
    for adapter in ("lora", "full"):  # both sides measured
        assert grpo[adapter]["ours"]["seconds_per_step"] > 0 and grpo[adapter]["trl"]["seconds_per_step"] > 0
    assert (tmp_path / "summary.txt").read_text() == result.stdout
