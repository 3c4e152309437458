"""The GPU check: one command, run first on any GPU machine this project borrows, that says whether the CUDA path
works and how fast it is (``make gpu-check``; docs/gpu.md).

On the GPU machine's image (PyTorch, transformers, accelerate and peft; no network, no package index) it installs
what is missing from the wheels carried in ``gpu-wheels/`` (``make gpu-wheels`` fills it here), then runs, each part
in its own process under its own time limit and all of them inside one overall budget:

- ``pytest -m gpu``: the CUDA tests (tests/test_gpu.py and the QLoRA tests);
- one online GRPO step at Qwen2.5-0.5B's real shape (random weights) with LoRA, full fine-tuning and QLoRA, ours and
  TRL's ``GRPOTrainer`` on the same work (``benchmarks/gpu_online_grpo.py``);
- the FSDP2 trainer at the same shape over a process group of one: its per-process state, and what gathering the
  weights for generation costs against a generate call and an update (``benchmarks/sharded_memory.py``).

It writes ``gpu-check.json`` (every figure) and ``summary.txt`` (what ran, passed, failed or was skipped, and why)
to ``--out``, prints the summary with ``time_ratio=`` last, and exits 1 if any part failed (a skip is not a failure).
``--dry-run`` runs the same parts on CPU at tiny shapes, in under two minutes, so the script cannot rot unseen.

Run:  python benchmarks/gpu_check.py [--out gpu-check] [--dry-run]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / ".gpu-site"  # where carried wheels are unpacked (git-ignored)
WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")
# seconds: (GPU, dry run); the whole check stays inside --budget
# the dry run's limits are caps for a loaded CPU (it takes about 2 minutes on a quiet one), not its expected time
LIMITS = {"pytest-gpu": (120, 120), "grpo": (270, 300), "fsdp-gather": (70, 120)}
SIDE_LIMIT = (150, 120)  # seconds one side of the GRPO comparison may take: (GPU, dry run)
PACKAGES = ["torch", "transformers", "accelerate", "peft", "trl", "datasets", "bitsandbytes", "math-verify", "vllm"]


@dataclass
class Part:
    """One part of the check and what came of it: ``passed``, ``failed`` or ``skipped``, with a line why."""

    name: str
    status: str = "skipped"
    detail: str = ""
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)


def install_wheels(folder: Path, site: Path) -> list[str]:
    """Unpack into ``site`` each wheel of ``folder`` whose distribution is not installed, or older than the wheel;
    return what was unpacked (``site`` goes before the image's packages on the path).

    Unpacking is what installing a wheel without entry scripts amounts to, and it needs no pip, which the GPU image
    may lack. The project's own wheel gives only its metadata (the entry points the registries read): its code is
    the working tree, first on the path."""
    from packaging.version import Version

    unpacked = []
    for wheel in sorted(folder.glob("*.whl")):
        match = WHEEL_NAME.match(wheel.name)
        if match is None:
            continue
        name = match["name"]
        with zipfile.ZipFile(wheel) as archive:
            if name == "selfimprove":
                archive.extractall(site, [m for m in archive.namelist() if ".dist-info/" in m])
                unpacked.append(wheel.name)
                continue
            try:
                if Version(importlib.metadata.version(name)) >= Version(match["version"]):
                    continue  # the image has it
            except importlib.metadata.PackageNotFoundError:
                pass
            archive.extractall(site)
        unpacked.append(wheel.name)
    return unpacked


def unmet_requirements() -> list[str]:
    """The project's requirements the environment does not meet (the GPU image may ship an older transformers)."""
    from packaging.requirements import Requirement

    unmet = []
    for line in importlib.metadata.requires("selfimprove") or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            found = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            found = None
        if found is None or not requirement.specifier.contains(found, prereleases=True):
            unmet.append(f"{requirement} (found {found or 'none'})")
    return unmet


def environment() -> dict:
    """What the machine is and has."""
    import torch

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "device": torch.cuda.get_device_name() if cuda else "CPU",
        "cuda": torch.version.cuda if cuda else None,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "packages": versions,
    }


def run_part(part: Part, command: list[str], timeout: float, env: dict, log: Path) -> subprocess.CompletedProcess:
    """``command`` under ``timeout`` seconds, its output to ``log``; a time-out marks the part failed."""
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        log.write_text(output)
        part.status, part.detail = "failed", f"timed out after {timeout:.0f} s"
        result = subprocess.CompletedProcess(command, -9, output, "")
    else:
        log.write_text(result.stdout + "\n--- stderr ---\n" + result.stderr)
    part.seconds = time.perf_counter() - start
    return result


def pytest_gpu(part: Part, timeout: float, env: dict, out: Path) -> None:
    """``pytest -m gpu`` over the files that hold GPU tests; counts read from its JUnit report."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())
    report = out / "pytest-gpu.xml"
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
               *files]  # fmt: skip
    result = run_part(part, command, timeout, env, out / "pytest-gpu.log")
    if part.status == "failed" or not report.exists():
        part.status, part.detail = "failed", part.detail or f"pytest exited {result.returncode} with no report"
        return
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    part.figures = {"passed": passed, **counts}
    bad = [
        c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None or c.find("error") is not None
    ]
    part.detail = f"{passed} passed, {counts['failures'] + counts['errors']} failed, {counts['skipped']} skipped"
    part.detail += f" (failed: {', '.join(bad)})" if bad else ""
    part.status = "failed" if bad or result.returncode not in (0, 5) else "passed" if passed else "skipped"


def grpo(part: Part, timeout: float, env: dict, out: Path, dry_run: bool) -> None:
    """One online GRPO step per adapter, ours and TRL's, via benchmarks/gpu_online_grpo.py."""
    figures = out / "grpo.json"
    work = (["--shape", "tiny", "--prompts", "2", "--group", "2", "--max-new-tokens", "8", "--steps", "1"] if dry_run
            else ["--shape", "qwen2.5-0.5b", "--prompts", "64", "--group", "8", "--max-new-tokens", "256",
                  "--steps", "1"])  # fmt: skip
    script = ROOT / "benchmarks" / "gpu_online_grpo.py"
    command = [sys.executable, str(script), *work, "--adapters", "lora,full,qlora", "--json", str(figures),
               "--side-timeout", str(SIDE_LIMIT[dry_run]), "--budget", str(int(timeout))]  # fmt: skip
    result = run_part(part, command, timeout + 30, env, out / "grpo.log")  # +30: the model's build
    part.figures = json.loads(figures.read_text()) if figures.exists() else {}
    sides_run = {(a, s): r for a, both in part.figures.get("adapters", {}).items() for s, r in both.items()
                 if s in ("ours", "trl")}  # fmt: skip
    errors = [f"{a}/{s}: {r['error'][:200]}" for (a, s), r in sides_run.items() if "error" in r]
    skipped = [f"{a}/{s}: {r['skipped']}" for (a, s), r in sides_run.items() if "skipped" in r]
    if part.status == "failed" or result.returncode != 0 or errors:
        part.status = "failed"
        part.detail = "; ".join(filter(None, [part.detail, *errors])) or result.stderr.strip()[-500:]
    else:
        part.status = "passed"
    ran = len(sides_run) - len(errors) - len(skipped)
    part.detail = f"{ran} of 6 sides ran" + (f"; skipped {'; '.join(skipped)}" if skipped else "") + (
        f"; {part.detail}" if part.status == "failed" else "")  # fmt: skip


def fsdp_gather(part: Part, timeout: float, env: dict, out: Path, dry_run: bool) -> None:
    """The sharded trainer's state and gather cost, on the GRPO part's model shape."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_online_grpo import build_model

    model = out / "fsdp-model"
    build_model("tiny" if dry_run else "qwen2.5-0.5b", model)
    command = [sys.executable, str(ROOT / "benchmarks" / "sharded_memory.py"), "--sides", "whole,sharded-alone",
               "--model", str(model), "--repeats", "2"]  # fmt: skip
    result = run_part(part, command, timeout, env, out / "fsdp-gather.log")
    lines = result.stdout.strip().splitlines()
    if part.status != "failed" and result.returncode == 0 and lines and lines[-1].startswith("gather_share="):
        part.status, part.figures = "passed", {"lines": lines, "gather_share": float(lines[-1].split("=")[1])}
        part.detail = f"gather_share {part.figures['gather_share']:.3f} (gather / (generate call + update))"
    else:
        part.status = "failed"
        part.detail = part.detail or f"exit {result.returncode}: {result.stderr.strip()[-300:]}"


def summary(parts: list[Part], env_info: dict, dry_run: bool) -> str:
    lines = [f"GPU check{' (dry run on CPU: tiny shapes, no figures)' if dry_run else ''}: {env_info['device']}, "
             f"CUDA {env_info['cuda']}, Python {env_info['python']}",
             "packages: " + ", ".join(f"{k} {v or 'missing'}" for k, v in env_info["packages"].items())]  # fmt: skip
    for part in parts:
        lines.append(f"{part.name}: {part.status.upper()} in {part.seconds:.0f} s: {part.detail}")
    grpo_figures = next((p.figures for p in parts if p.name == "grpo"), {})
    if grpo_figures.get("peak_tflops"):
        lines.append(f"peak used for MFU: {grpo_figures['peak_tflops']:.0f} TFLOP/s ({grpo_figures['peak_source']})")
    for adapter, figures in grpo_figures.get("adapters", {}).items():
        lines.append(f"  {figures.get('line', adapter)}")
    for line in next((p.figures.get("lines", []) for p in parts if p.name == "fsdp-gather"), [])[1:-1]:
        lines.append(f"  fsdp: {line.strip()}")
    ratio = grpo_figures.get("time_ratio")
    full_mfu = grpo_figures.get("adapters", {}).get("full", {}).get("ours", {}).get("mfu")
    measured = f"{full_mfu:.1%}" if full_mfu is not None else "n/a"
    lines.append(f"targets: time_ratio <= 0.8 against TRL; update MFU >= 40% with full fine-tuning ({measured})")
    lines.append(f"time_ratio={ratio:.2f}" if ratio is not None else "time_ratio=n/a")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="gpu-check", help="folder for gpu-check.json, summary.txt and the logs")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes: checks the script, no figures")
    parser.add_argument("--wheels", default=str(ROOT / "gpu-wheels"), help="wheels carried to the GPU machine")
    parser.add_argument("--budget", type=float, help="seconds for the whole check (default 480, dry run 540)")
    args = parser.parse_args()
    try:
        import packaging  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        print(f"gpu-check needs a Python with torch (the GPU machine's image, or this project's venv for --dry-run): "
              f"{exc}", file=sys.stderr)  # fmt: skip
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    budget = args.budget or (540 if args.dry_run else 480)

    install = Part("install")
    wheels = Path(args.wheels)
    if wheels.is_dir():
        SITE.mkdir(exist_ok=True)
        unpacked = install_wheels(wheels, SITE)
        install.status, install.detail = "passed", f"unpacked {len(unpacked)}: {', '.join(unpacked) or 'none'}"
    else:
        install.detail = f"no {wheels} (make gpu-wheels): using what the image has"
    # the working tree first (the project's code), then the unpacked wheels, then the image's own packages
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(SITE),
                                                                      os.environ.get("PYTHONPATH")]))}  # fmt: skip
    sys.path[:0] = [str(ROOT), str(SITE)]
    importlib.invalidate_caches()
    env_info = environment()
    unmet = unmet_requirements()
    if unmet:  # the parts will say what breaks; this says why, and what to carry
        install.status = "failed"
        install.detail += (f"; unmet: {'; '.join(unmet)} (carry them: make gpu-wheels WITH='<name> ...', or a set "
                           "that has them)")  # fmt: skip
    if not args.dry_run and env_info["device"] == "CPU":
        print("no CUDA device: run with --dry-run to check the script on CPU", file=sys.stderr)
        return 2

    parts = [install]
    for name, run in (("pytest-gpu", lambda p, t: pytest_gpu(p, t, env, out)),
                      ("grpo", lambda p, t: grpo(p, t, env, out, args.dry_run)),
                      ("fsdp-gather", lambda p, t: fsdp_gather(p, t, env, out, args.dry_run))):  # fmt: skip
        part = Part(name)
        parts.append(part)
        left = budget - (time.perf_counter() - start)
        if left < 20:
            part.detail = "out of the check's time budget"
            continue
        run(part, min(LIMITS[name][args.dry_run], left))

    text = summary(parts, env_info, args.dry_run)
    (out / "gpu-check.json").write_text(json.dumps({"environment": env_info, "parts": [asdict(p) for p in parts],
                                                    "seconds": time.perf_counter() - start}, indent=2))  # fmt: skip
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    return 1 if any(p.status == "failed" for p in parts) else 0


if __name__ == "__main__":
    sys.exit(main())
