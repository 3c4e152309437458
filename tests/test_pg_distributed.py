"""Two CPU processes (torchrun, gloo) end two online policy-gradient steps with the weights of one
process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import torchrun

WORKER = Path(__file__).with_name("pg_worker.py")


def run(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]


def test_two_processes_match_one(tiny_model: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run([sys.executable, str(WORKER), tiny_model, str(tmp_path / "one")])
    run([*torchrun(2), str(WORKER), tiny_model, str(tmp_path / "two")])
    assert (tmp_path / "one" / "processes").read_text() == "1" and (tmp_path / "two" / "processes").read_text() == "2"

    for name in ("grpo", "ppo"):
        one = load_file(tmp_path / "one" / name / "policy" / "adapter_model.safetensors")
        two = load_file(tmp_path / "two" / name / "policy" / "adapter_model.safetensors")
        assert any(v.abs().max() > 0 for k, v in one.items() if "lora_B" in k)  # the update did something
        for key in one:
            assert torch.allclose(one[key], two[key], atol=1e-5), f"{name}: {key}"
    heads = [torch.load(tmp_path / r / "ppo" / "trainer.pt", weights_only=False)["value_head"] for r in ("one", "two")]
    assert heads[0]["weight"].abs().max() > 0
    assert torch.allclose(heads[0]["weight"], heads[1]["weight"], atol=1e-5)
