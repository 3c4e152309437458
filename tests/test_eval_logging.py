"""Optional metric backends: TensorBoard receives metrics.jsonl's numbers; a missing package is a recipe error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import TINY_RECIPE

from selfimprove.config import load_recipe
from selfimprove.errors import ConfigError
from selfimprove.loop.runner import Runner
from selfimprove.tracking import scalars


def test_scalars_keep_the_numbers_of_a_record() -> None:
    record = {"iteration": 1, "stage": "eval:gsm8k", "pass@4": 0.5, "correct": 3, "ok": True, "name": "x"}
    assert scalars(record) == {"eval:gsm8k/pass@4": 0.5, "eval:gsm8k/correct": 3.0}


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_an_enabled_backend_without_its_package_is_a_recipe_error(write_recipe, tiny_model: str) -> None:
    path = write_recipe(TINY_RECIPE.format(model=tiny_model, limit=2, iterations=0))
    with pytest.raises(ConfigError, match=r"logging.wandb: needs the package 'wandb': pip install wandb"):
        load_recipe(path, ["logging.wandb=true"])
    assert load_recipe(path).logging.wandb is False  # off by default


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_tensorboard_receives_the_eval_metrics(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_recipe(TINY_RECIPE.format(model=tiny_model, limit=2, iterations=0))
    recipe = load_recipe(path, ["logging.tensorboard=true", "eval.tasks.0.limit=2"])
    Runner(recipe, tmp_path / "run", show_progress=False).execute()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    (point,) = events.Scalars("eval:arithmetic/mean_response_tokens")
    assert point.step == 0
    assert point.value == pytest.approx(summary["iterations"][0]["eval"]["arithmetic"]["mean_response_tokens"])
