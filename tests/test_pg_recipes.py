"""The tiny policy-gradient recipes run one iteration of the loop on a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from selfimprove.config import load_recipe
from selfimprove.loop.runner import Runner
from selfimprove.records import Rollout, Verdict
from selfimprove.registry import registries

ROOT = Path(__file__).resolve().parent.parent


class LengthScore:
    """The tiny random model never solves arithmetic: score completions by length, so rewards vary."""

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [Verdict(len(r.completion) % 3 / 2, len(r.completion) % 3 == 2) for r in rollouts]


registries["verifier"].register("length-score", LengthScore)


@pytest.mark.parametrize("name", ["grpo", "reinforce_pp", "ppo"])
def test_tiny_recipe_runs_one_iteration(tiny_model: str, tmp_path: Path, name: str) -> None:
    from safetensors.torch import load_file

    recipe = load_recipe(
        ROOT / "recipes" / "tiny" / f"{name}.yaml", [f"model={tiny_model}", "verifier.name=length-score"]
    )
    run = tmp_path / "run"
    summary = Runner(recipe, run, show_progress=False).execute()

    assert [i["iteration"] for i in summary["iterations"]] == [0, 1]
    assert json.loads((run / "summary.json").read_text()) == summary
    selected = [json.loads(line) for line in (run / "iter-001" / "selected.jsonl").read_text().splitlines()]
    assert selected and all(e["reward"] is not None and e["group"] for e in selected)
    update = json.loads((run / "iter-001" / "update.json").read_text())
    assert update["steps"] >= 1 and all(math.isfinite(v) for v in update.values() if isinstance(v, float))
    weights = load_file(run / "iter-001" / "checkpoint" / "adapter_model.safetensors")
    assert any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k)  # parameters changed from B = 0
    if name == "ppo":
        assert torch.load(run / "iter-001" / "checkpoint" / "value_head.pt")["steps"] == update["steps"]
