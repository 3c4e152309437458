"""The loop on a tiny model: STaR's roles, the run directory, init policies, summary and manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_RECIPE

from selfimprove.config import load_recipe
from selfimprove.errors import UserError
from selfimprove.loop.runner import Runner
from selfimprove.records import Rollout, Verdict
from selfimprove.registry import registries
from selfimprove.updaters.sft import SFT


class ByRole:
    """The tiny random model never gets arithmetic right: pass rationales of even-numbered problems, and every
    rationalization, so both STaR data sources are exercised."""

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [
            Verdict(1.0, True) if r.role == "rationalization" or int(r.problem_id.split("-")[1]) % 2 == 0
            else Verdict(0.0, False)
            for r in rollouts
        ]  # fmt: skip


@pytest.fixture(autouse=True)
def components(registrations) -> None:
    registries["verifier"].register("by-role", ByRole)


PASS_SOME = ["verifier.name=by-role"]


def _recipe(write_recipe, tiny_model: str, iterations: int = 1, extra: list[str] = ()):
    path = write_recipe(TINY_RECIPE.format(model=tiny_model, limit=8, iterations=iterations))
    return load_recipe(path, [*PASS_SOME, *extra])


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_star_iteration_writes_every_stage(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = Runner(_recipe(write_recipe, tiny_model), run, show_progress=False).execute()

    it = run / "iter-001"
    rationale = _jsonl(it / "verified-rationale.jsonl")
    rationalized = _jsonl(it / "verified-rationalization.jsonl")
    failed = {r["problem_id"] for r in rationale if not r["verdict"]["passed"]}
    assert failed == {f"train-{i}" for i in range(1, 8, 2)}
    # rationalization runs exactly on the failed problems, with the hint; it trains without the hint
    assert {r["problem_id"] for r in rationalized} == failed
    assert all("Hint" in r["prompt"][-1]["content"] for r in rationalized)
    assert all("Hint" not in r["train_prompt"][-1]["content"] for r in rationalized)
    selected = _jsonl(it / "selected.jsonl")
    assert selected and all("Hint" not in e["prompt"][-1]["content"] for e in selected)
    assert {e["role"] for e in selected} == {"rationale", "rationalization"}
    for file in run.rglob("*.jsonl"):
        if file.name != "metrics.jsonl":
            ids = [r["id"] for r in _jsonl(file)]
            assert len(ids) == len(set(ids)), f"duplicate ids in {file}"

    assert [i["iteration"] for i in summary["iterations"]] == [0, 1]
    assert set(summary["iterations"][1]["eval"]["arithmetic"]) >= {"accuracy", "correct", "problems"}
    assert json.loads((run / "summary.json").read_text()) == summary
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["packages"]["torch"] and manifest["recipe"]["model"] == tiny_model
    stages = [m["stage"] for m in _jsonl(run / "metrics.jsonl")]
    assert stages == ["eval:arithmetic", "generate:rationale", "generate:rationalization", "update", "eval:arithmetic"]


def test_checkpoint_is_a_standard_peft_adapter(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    from peft import AutoPeftModelForCausalLM

    Runner(_recipe(write_recipe, tiny_model), tmp_path / "run", show_progress=False).execute()
    model = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "run" / "iter-001" / "checkpoint")
    assert any("lora_A" in name for name, _ in model.named_parameters())


class SpySFT(SFT):
    inits: list[str | None] = []

    def update(self, ctx):
        SpySFT.inits.append(ctx.init)
        return super().update(ctx)


@pytest.mark.parametrize("init", ["base", "previous"])
def test_init_base_restarts_from_the_base_model(write_recipe, tiny_model: str, tmp_path: Path, init: str) -> None:
    registries["updater"].register("spy-sft", SpySFT)
    SpySFT.inits = []
    recipe = _recipe(write_recipe, tiny_model, iterations=2, extra=["updater.name=spy-sft", f"loop.init={init}"])
    Runner(recipe, tmp_path / "run", show_progress=False).execute()
    expected_second = None if init == "base" else str(tmp_path / "run" / "iter-001" / "checkpoint")
    assert SpySFT.inits == [None, expected_second]


def test_zero_iterations_only_evaluates(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    summary = Runner(_recipe(write_recipe, tiny_model, iterations=0), tmp_path / "run", show_progress=False).execute()
    assert [i["iteration"] for i in summary["iterations"]] == [0]
    assert not (tmp_path / "run" / "iter-001").exists()


def test_a_run_dir_refuses_a_different_recipe(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    Runner(_recipe(write_recipe, tiny_model, iterations=0), tmp_path / "run", show_progress=False).execute()
    changed = _recipe(write_recipe, tiny_model, iterations=0, extra=["generator.max_new_tokens=3"])
    with pytest.raises(UserError, match="generator.max_new_tokens"):
        Runner(changed, tmp_path / "run", show_progress=False).execute()
    # more iterations on the same recipe extend the run
    more = _recipe(write_recipe, tiny_model, iterations=1)
    summary = Runner(more, tmp_path / "run", show_progress=False).execute()
    assert len(summary["iterations"]) == 2


class PolicyAware(ByRole):
    """Records the policies the loop hands it (a judge with ``model: policy`` scores with them)."""

    given: list[str | None] = []

    def use_policy(self, policy) -> None:
        PolicyAware.given.append(policy.checkpoint)


def test_verifiers_that_ask_get_the_current_policy(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    registries["verifier"].register("policy-aware", PolicyAware)
    PolicyAware.given = []
    recipe = _recipe(write_recipe, tiny_model, extra=["verifier.name=policy-aware"])
    Runner(recipe, tmp_path / "run", show_progress=False).execute()
    checkpoint = str(tmp_path / "run" / "iter-001" / "checkpoint")
    # iteration 0's eval, both roles of iteration 1 (the base model generated them), iteration 1's eval
    assert PolicyAware.given == [None, None, None, checkpoint]


def test_a_role_with_nothing_to_answer_calls_no_generator(tmp_path: Path) -> None:
    from selfimprove.loop.stages import Stages
    from selfimprove.rundir import RunDir

    class Refuses:
        def generate(self, *args, **kwargs):
            raise AssertionError("called with no requests")

    run = RunDir(tmp_path)
    assert Stages(run, seed=0).generate("step-000001/rollouts-learn.jsonl", Refuses(), None, [], "learn", 4, 0) == []
    assert run.exists("step-000001/rollouts-learn.jsonl")  # the stage is done: a resumed run does not redo it
