"""A SIGKILLed run, rerun into the same run directory, ends exactly as an uninterrupted run:
same records, same checkpoint, same summary, nothing duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import TINY_RECIPE

# regex verifier: the random tiny model's completions pass when they start with one of these characters
OVERRIDES = [
    "verifier.name=regex",
    "verifier.pattern=^[a-zA-Z]",
    "generator.batch_size=1",
    "updater.max_steps=40",
]


def _cli(recipe: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "selfimprove", "run", str(recipe), "--run-dir", str(run), "--quiet", *OVERRIDES]


def _kill_when(cmd: list[str], ready, timeout: float = 120) -> None:
    """Start the CLI, SIGKILL it as soon as ``ready()`` holds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline, "timed out waiting to kill the run"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def _records(run: Path) -> dict[str, list]:
    return {
        str(p.relative_to(run)): [json.loads(line) for line in p.read_text().splitlines()]
        for p in sorted(run.rglob("*.jsonl"))
        if p.name != "metrics.jsonl"
    }


def _weights(checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(checkpoint / "adapter_model.safetensors")


def test_sigkill_during_generation_and_training_then_resume(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    import torch

    recipe = write_recipe(TINY_RECIPE.format(model=tiny_model, limit=12, iterations=1))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(_cli(recipe, reference), check=True, capture_output=True)

    partial = killed / "iter-001" / "rollouts-rationale.jsonl.partial"
    _kill_when(_cli(recipe, killed), lambda: partial.exists() and partial.read_text().count("\n") >= 2)
    assert not (killed / "iter-001" / "rollouts-rationale.jsonl").exists(), "killed after generation finished"
    trainer = killed / "iter-001" / "trainer"
    _kill_when(_cli(recipe, killed), lambda: len(list(trainer.glob("checkpoint-*"))) > 0)
    assert not (killed / "iter-001" / "update.json").exists(), "killed after training finished"
    subprocess.run(_cli(recipe, killed), check=True, capture_output=True)

    assert json.loads((killed / "summary.json").read_text()) == json.loads((reference / "summary.json").read_text())
    got, want = _records(killed), _records(reference)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], f"{name} differs after resuming"
        ids = [r["id"] for r in got[name]]
        assert len(ids) == len(set(ids)), f"duplicated records in {name}"
    a, b = _weights(killed / "iter-001" / "checkpoint"), _weights(reference / "iter-001" / "checkpoint")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert not list(killed.rglob("*.partial")) and not list(killed.rglob("*.tmp"))
