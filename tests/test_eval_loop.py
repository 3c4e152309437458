"""The loop's held-out evaluation with n samples: pass@k and maj@k in summary.json and metrics.jsonl, recomputable
from the samples in the run directory, and the same on a second run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_RECIPE

from selfimprove.config import load_recipe
from selfimprove.errors import ConfigError
from selfimprove.eval.metrics import pass_at_k
from selfimprove.loop.runner import Runner

# the tiny random model passes when its completion starts with a letter: some problems, some samples
EVAL_N = ["verifier.name=regex", "verifier.pattern=^[a-zA-Z]", "eval.n=4", "eval.k=[1,2,4]"]


def _run(write_recipe, tiny_model: str, run: Path, extra: list[str] = ()) -> dict:
    path = write_recipe(TINY_RECIPE.format(model=tiny_model, limit=4, iterations=0))
    return Runner(load_recipe(path, [*EVAL_N, *extra]), run, show_progress=False).execute()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pass_at_k_in_the_summary_equals_the_samples_on_disk(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    summary = _run(write_recipe, tiny_model, tmp_path / "run")
    result = summary["iterations"][0]["eval"]["arithmetic"]
    samples = _jsonl(tmp_path / "run" / "iter-000" / "eval" / "arithmetic.samples.jsonl")
    greedy = _jsonl(tmp_path / "run" / "iter-000" / "eval" / "arithmetic.jsonl")
    assert len(greedy) == 6 and len(samples) == 24 and result["samples"] == 24
    counts: dict[str, int] = {}
    for s in samples:
        counts[s["problem_id"]] = counts.get(s["problem_id"], 0) + s["verdict"]["passed"]
    assert set(counts) == {g["problem_id"] for g in greedy}
    for k in (1, 2, 4):
        assert result[f"pass@{k}"] == pytest.approx(sum(pass_at_k(4, c, k) for c in counts.values()) / 6)
    assert 0 < result["pass@1"] < result["pass@2"] <= result["pass@4"]
    assert result["accuracy"] == sum(g["verdict"]["passed"] for g in greedy) / 6
    assert result["entropy"] > 0 and all(g["entropy"] > 0 for g in greedy)
    metrics = _jsonl(tmp_path / "run" / "metrics.jsonl")
    assert metrics[0]["stage"] == "eval:arithmetic" and metrics[0]["pass@4"] == result["pass@4"]


def test_evaluation_is_deterministic(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    first = _run(write_recipe, tiny_model, tmp_path / "a")
    assert _run(write_recipe, tiny_model, tmp_path / "b") == first
    for name in ("arithmetic.jsonl", "arithmetic.samples.jsonl"):
        a, b = (tmp_path / run / "iter-000" / "eval" / name for run in "ab")
        assert a.read_text() == b.read_text()


def test_bad_n_and_k_are_reported(write_recipe, tiny_model: str) -> None:
    path = write_recipe(TINY_RECIPE.format(model=tiny_model, limit=4, iterations=0))
    with pytest.raises(ConfigError, match=r"eval.k: every k must be between 1 and eval.n \(4\), got \[8\]"):
        load_recipe(path, ["eval.n=4", "eval.k=[1,8]"])
    with pytest.raises(ConfigError, match="eval.temperature: the n=4 samples need a temperature > 0"):
        load_recipe(path, ["eval.n=4", "eval.temperature=0"])
