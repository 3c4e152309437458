"""RLSP's reward on hand-computed cases, its recipe on a tiny model, and the effort judge's blend."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from selfimprove.config import load_recipe
from selfimprove.loop.online import reward_terms
from selfimprove.loop.runner import run_recipe
from selfimprove.records import Rollout, Verdict
from selfimprove.rewards import StepRollouts
from selfimprove.rewards.phrases import Phrases
from selfimprove.rewards.rlsp import RLSPExploration, RLSPOutcome, reasoning
from selfimprove.rewards.stage import assign_rewards
from selfimprove.verifiers.extract import first_boxed
from selfimprove.verifiers.rubrics import parse_grade

ROOT = Path(__file__).resolve().parent.parent


def solver(completion: str, score: float | None = None, **verdicts: Verdict) -> Rollout:
    verdict = None if score is None else Verdict(score, score == 1.0)
    return Rollout("r", "solver", "p", [], completion, "4", verdict=verdict, verdicts=dict(verdicts))


def step_of(*rollouts: Rollout, labels: list[str] | None = None) -> StepRollouts:
    return StepRollouts({"solver": list(rollouts)}, {"solver": labels or ["math"]})


def test_the_first_box_is_the_answer_and_the_reasoning_ends_there() -> None:
    assert first_boxed("no box here") is None
    assert first_boxed(r"so \boxed{4}. Wait, \boxed{5}") == (3, "4")
    assert first_boxed(r"\boxed{\frac{1}{2}} then more") == (0, r"\frac{1}{2}")
    assert first_boxed(r"open \boxed{4 never closed") is None
    assert reasoning(r"2 + 2 = 4, so \boxed{4}. And more text.") == "2 + 2 = 4, so "
    assert reasoning("no box at all") == "no box at all"


@pytest.mark.parametrize(
    ("completion", "score", "L", "expected"),
    [
        # no box: the format penalty, and the whole text is the reasoning
        ("I think it is four" + "!" * 22, 0.0, 1000.0, -0.5 - 1000.0 / 10),
        # box first, then more text: only the text before the box counts, and only the first box is graded
        (r"2 + 2 = 4, so \boxed{4} and then a lot more words", 1.0, 1000.0, 1.0 - 1000.0 / (14 / 4)),
        # two boxes: the first is graded (the verifier saw \boxed{5}: wrong), the reasoning ends at the first
        ("x" * 400 + r"\boxed{5} no wait \boxed{4}", 0.0, 1000.0, 0.0 - 1000.0 / 100),
        # L = 0: the exploration term is off, the outcome alone remains
        ("x" * 400 + r"\boxed{4}", 1.0, 0.0, 1.0),
        # a box at the very start: under 4 characters of reasoning counts as one token
        (r"\boxed{4}", 1.0, 1000.0, 1.0 - 1000.0),
    ],
    ids=["no-box", "box-first-then-text", "two-boxes", "L=0", "empty-reasoning"],
)  # fmt: skip
def test_rlsp_reward_on_hand_computed_cases(completion: str, score: float, L: float, expected: float) -> None:
    rollout = solver(completion, score)
    step = step_of(rollout)
    outcome = RLSPOutcome()([rollout], step)[0]
    exploration = RLSPExploration(L=L)([rollout], step)[0]
    assert outcome + exploration == pytest.approx(expected)


def test_the_outcome_without_a_verdict_score_is_no_reward_not_zero() -> None:
    rollout = solver(r"so \boxed{4}", float("nan"))  # the verifier crashed
    (value,) = RLSPOutcome()([rollout], step_of(rollout))
    assert not isinstance(value, float) and "gave no score" in value.reason


def test_the_effort_judge_blend_and_its_unreadable_default() -> None:
    """r = 0.8 (outcome + exploration) + 0.2 effort; an unreadable judge counts 0.5 (RLSP's server)."""
    from selfimprove.config.schema import Component, Role

    role = Role(name="solver", rewards=[
        Component("reward", "rlsp_outcome", weight=0.8),
        Component("reward", "rlsp_exploration", {"L": 1000.0}, weight=0.8),
        Component("reward", "verdict", {"verifier": "effort", "default": 0.5}, weight=0.2, label="effort"),
    ])  # fmt: skip
    read = solver("x" * 40 + r"\boxed{4}", 1.0, effort=Verdict(0.9, False, {"score": 0.9}))
    unreadable = solver("x" * 40 + r"\boxed{4}", 1.0, effort=Verdict(float("nan"), False, {"score": None}))
    step = StepRollouts({"solver": [read, unreadable]}, {"solver": ["math", "effort"]})
    assign_rewards([read, unreadable], reward_terms(role), step)
    assert read.reward == pytest.approx(0.8 * (1.0 - 1000.0 / 10) + 0.2 * 0.9)
    assert unreadable.reward == pytest.approx(0.8 * (1.0 - 1000.0 / 10) + 0.2 * 0.5)
    assert unreadable.reward_parts == {"rlsp_outcome": 1.0, "rlsp_exploration": -100.0, "effort": 0.5}


@pytest.mark.parametrize(
    ("text", "grade"),
    [('{"rationale": "tries two ways", "grade": 0.75}', 0.75), ('noise {"grade": 1} then {"grade": 0.2}', 0.2),
     ('{"grade": 1.5}', None), ('{"grade": "high"}', None), ("no json", None), ('{"grade": true}', None)],
)  # fmt: skip
def test_effort_grades_are_read_from_the_judges_json(text: str, grade: float | None) -> None:
    assert parse_grade(text, 1.0) == grade


def test_reflection_phrases_are_a_metric() -> None:
    rollouts = [solver("Wait, let me check that again."), solver("Alternatively we add."), solver("It waits."),
                solver("The answer is 4.")]  # fmt: skip
    assert Phrases()(rollouts, step_of(*rollouts)) == [1.0, 1.0, 0.0, 0.0]  # whole words: "waits" is not "wait"
    assert Phrases(phrases=["answer is"])(rollouts, step_of(*rollouts)) == [0.0, 0.0, 0.0, 1.0]


def test_math_verifier_grades_only_the_first_box() -> None:
    from selfimprove.verifiers.math import MathVerifier

    verifier = MathVerifier(boxed="first", workers=1)
    first_right, first_wrong, none = verifier.verify([
        Rollout("a", "s", "p", [], r"\boxed{4} or maybe \boxed{5}", "4"),
        Rollout("b", "s", "p", [], r"\boxed{5} no wait \boxed{4}", "4"),
        Rollout("c", "s", "p", [], "the answer is 4", "4"),
    ])  # fmt: skip
    assert first_right.passed and not first_wrong.passed
    assert not none.passed and none.score == 0.0 and none.info["error"] == "no \\boxed{}"


def test_tiny_rlsp_recipe_runs_ppo_with_every_reward_part(tiny_model: str, tmp_path: Path) -> None:
    recipe = load_recipe(ROOT / "recipes" / "tiny" / "rlsp.yaml", [f"model={tiny_model}"])
    run = tmp_path / "run"
    run_recipe(recipe, run, show_progress=False)
    steps = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m["stage"] == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    for s in steps:  # the random tiny model never boxes: -0.5 and the full exploration penalty, every time
        assert s["solver/reward:rlsp_outcome"] == -0.5 and s["solver/reward:rlsp_exploration"] < 0
        assert s["solver/reward:reflection"] == 0.0 and math.isfinite(s["value_loss"])
    assert steps[0]["critic_warmup"] == 1.0 and steps[1]["critic_warmup"] == 0.0
    record = json.loads((run / "step-000001" / "rollouts.jsonl").read_text().splitlines()[0])
    parts = record["reward_parts"]
    assert record["reward"] == pytest.approx(parts["rlsp_outcome"] + parts["rlsp_exploration"])  # reflection: weight 0


@pytest.mark.parametrize("name", ["rlsp_arithmetic.yaml", "rlsp_math.yaml"])
def test_rlsp_recipes_scale_L_to_their_token_budget_and_clip_as_openrlhf(name: str) -> None:
    # the paper: L = 1000 with 4096 new tokens, -0.244 at the cap; the same ratio at this budget is L = 1000 b / 4096
    recipe = load_recipe(ROOT / "recipes" / name)
    budget = recipe.generator.args["max_new_tokens"]
    L = recipe.roles[0].rewards[1].args["L"]  # noqa: N806
    assert L == pytest.approx(1000 * budget / 4096, abs=0.05)
    assert -L / budget == pytest.approx(-1000 / 4096, rel=0.01)
    assert recipe.updater.args["reward_clip_range"] == [-10, 10] and recipe.updater.args["critic_warmup_steps"] == 4
