"""Two CPU processes (torchrun, gloo): each generates half of the requests, and a run ends with the
records and weights of one process, online (GRPO) and offline (STaR)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import TINY_RECIPE, torchrun

TINY_GRPO = Path(__file__).resolve().parent.parent / "recipes" / "tiny" / "grpo.yaml"


def launch(processes: int, recipe: Path, run: Path, overrides: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = ["-m", "selfimprove", "run", str(recipe), "--run-dir", str(run), "--quiet", *overrides]
    command = [*torchrun(processes), *command] if processes > 1 else [sys.executable, *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, failure(result.stderr)


def failure(stderr: str) -> str:
    """Each process's last lines: torchrun interleaves them, and the first to fail is rarely the last to print."""
    lines = stderr.splitlines()
    per_rank = {r: [x for x in lines if x.startswith(f"[rank{r}]")][-40:] for r in range(2)}
    return "\n".join(["\n".join(v) for v in per_rank.values()] + lines[-20:])


def rounded(value):
    """Floats to 5 decimals: the processes' averaged gradients differ from one process's in the last bits, and so
    do later entropies; texts, token ids, verdicts and rewards must be equal."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def records(run: Path) -> dict[str, list[dict]]:
    return {
        str(p.relative_to(run)): [rounded(json.loads(line)) for line in p.read_text().splitlines()]
        for p in sorted(run.rglob("*.jsonl"))
        if p.name != "metrics.jsonl"
    }


def summary(run: Path) -> dict:
    return rounded(json.loads((run / "summary.json").read_text()))


def metrics(run: Path, stage: str) -> list[dict]:
    return [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m["stage"] == stage]


def same_weights(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    one, two = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    assert one.keys() == two.keys() and any(v.abs().max() > 0 for k, v in one.items() if "lora_B" in k)
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-5)


def test_online_grpo_over_two_processes_equals_one(tiny_model: str, tmp_path: Path) -> None:
    overrides = [
        f"model={tiny_model}",
        "verifier.name=regex",
        "verifier.pattern=^[a-zA-Z]",
        "loop.steps=2",
        "generator.batch_size=4",
    ]  # fmt: skip  (4 problems x 4 samples: 4 batches, 2 for each process)
    launch(1, TINY_GRPO, tmp_path / "one", overrides)
    launch(2, TINY_GRPO, tmp_path / "two", overrides)
    one, two = tmp_path / "one", tmp_path / "two"
    assert records(one) == records(two)
    assert summary(one) == summary(two)
    assert [m["requests_per_process"] for m in metrics(one, "step")] == [[16], [16]]
    assert [m["requests_per_process"] for m in metrics(two, "step")] == [[8, 8], [8, 8]]
    for m1, m2 in zip(metrics(one, "step"), metrics(two, "step"), strict=True):
        assert abs(m1["loss"] - m2["loss"]) < 1e-5
    same_weights(one / "checkpoints" / "step-000002" / "policy", two / "checkpoints" / "step-000002" / "policy")
    assert not (two / "checkpoints" / "step-000002.tmp").exists()


def test_offline_star_over_two_processes_equals_one(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    recipe = write_recipe(TINY_RECIPE.format(model=tiny_model, limit=8, iterations=1))
    overrides = ["verifier.name=regex", "verifier.pattern=^[a-zA-Z]", "generator.batch_size=2"]
    launch(1, recipe, tmp_path / "one", overrides)
    launch(2, recipe, tmp_path / "two", overrides)
    one, two = tmp_path / "one", tmp_path / "two"
    assert records(one) == records(two)  # rollouts of both roles, verdicts, selected examples, evaluations
    assert summary(one) == summary(two)
    for m1, m2 in zip(metrics(one, "generate:rationale"), metrics(two, "generate:rationale"), strict=True):
        assert m1["requests_per_process"] == [8] and m2["requests_per_process"] == [4, 4]
    same_weights(one / "iter-001" / "checkpoint", two / "iter-001" / "checkpoint")


def test_offline_spin_over_two_processes_equals_one(tiny_model: str, tmp_path: Path) -> None:
    """DPO under two processes: only the main process writes the checkpoint the loop then commits."""
    spin = Path(__file__).resolve().parent.parent / "recipes" / "tiny" / "spin.yaml"
    overrides = [f"model={tiny_model}", "loop.iterations=2", "generator.batch_size=2"]
    launch(1, spin, tmp_path / "one", overrides)
    launch(2, spin, tmp_path / "two", overrides)
    one, two = tmp_path / "one", tmp_path / "two"
    assert records(one) == records(two) and summary(one) == summary(two)
    same_weights(one / "iter-002" / "checkpoint", two / "iter-002" / "checkpoint")
