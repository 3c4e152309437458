"""Two CPU processes under `accelerate launch` (gloo) end two online policy-gradient steps with the weights of one
process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("pg_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]


def test_two_processes_match_one(tiny_model: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run([sys.executable, str(WORKER), tiny_model, str(tmp_path / "one")])
    accelerate = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1", "--cpu",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
    ]  # fmt: skip
    run([*accelerate, str(WORKER), tiny_model, str(tmp_path / "two")])

    for name in ("grpo", "ppo"):
        one = load_file(tmp_path / "one" / name / "policy" / "adapter_model.safetensors")
        two = load_file(tmp_path / "two" / name / "policy" / "adapter_model.safetensors")
        assert any(v.abs().max() > 0 for k, v in one.items() if "lora_B" in k)  # the update did something
        for key in one:
            assert torch.allclose(one[key], two[key], atol=1e-5), f"{name}: {key}"
    heads = [torch.load(tmp_path / r / "ppo" / "trainer.pt", weights_only=False)["value_head"] for r in ("one", "two")]
    assert heads[0]["weight"].abs().max() > 0
    assert torch.allclose(heads[0]["weight"], heads[1]["weight"], atol=1e-5)
