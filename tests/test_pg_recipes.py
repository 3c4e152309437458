"""The tiny policy-gradient recipes run online on a tiny model: steps, records, evaluations, checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from selfimprove.config import load_recipe
from selfimprove.loop.runner import run_recipe
from selfimprove.records import Rollout, Verdict
from selfimprove.registry import registries

ROOT = Path(__file__).resolve().parent.parent


class LengthScore:
    """The tiny random model never solves arithmetic: score completions by length, so rewards vary."""

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [Verdict(len(r.completion) % 3 / 2, len(r.completion) % 3 == 2) for r in rollouts]


@pytest.fixture(autouse=True)
def components(registrations) -> None:
    registries["verifier"].register("length-score", LengthScore)


@pytest.mark.parametrize("name", ["grpo", "reinforce_pp", "ppo"])
def test_tiny_recipe_runs_online(tiny_model: str, tmp_path: Path, name: str) -> None:
    from safetensors.torch import load_file

    recipe = load_recipe(
        ROOT / "recipes" / "tiny" / f"{name}.yaml", [f"model={tiny_model}", "verifier.name=length-score"]
    )
    run = tmp_path / "run"
    summary = run_recipe(recipe, run, show_progress=False)

    assert [s["step"] for s in summary["steps"]] == [0, 2, 3]  # the start, every 2 steps, the end
    assert json.loads((run / "summary.json").read_text()) == summary
    records = [json.loads(line) for line in (run / "step-000001" / "rollouts.jsonl").read_text().splitlines()]
    assert len(records) == recipe.loop.batch_size * recipe.roles[0].n
    assert all(r["reward"] is not None and r["completion_ids"] for r in records)
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["stage"] == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert all(math.isfinite(s["loss"]) and s["optimizer_steps"] >= 1 for s in steps)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    weights = load_file(run / "checkpoints" / "step-000003" / "policy" / "adapter_model.safetensors")
    assert any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k)  # parameters changed from B = 0
    state = torch.load(run / "checkpoints" / "step-000003" / "trainer.pt", weights_only=False)
    assert (state["value_head"] is not None) == (name == "ppo")
