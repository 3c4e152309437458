"""Selectors: the `correct` filter of STaR and ReST-EM."""

from __future__ import annotations

import pytest

from selfimprove.errors import UserError
from selfimprove.records import Example, Rollout, Verdict
from selfimprove.selection.correct import Correct


def msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def rollout(rid: str, pid: str, completion: str, passed: bool | None, **kw) -> Rollout:
    verdict = None if passed is None else Verdict(float(passed), passed)
    return Rollout(
        id=rid,
        role=kw.pop("role", "solver"),
        problem_id=pid,
        prompt=msg(pid),
        completion=completion,
        verdict=verdict,
        **kw,
    )


def test_keeps_only_passed():
    rollouts = [
        rollout("a", "p1", "right", True),
        rollout("b", "p1", "wrong", False),
        rollout("c", "p2", "unjudged", None),
        rollout("d", "p3", "also right", True),
    ]
    examples = Correct().select(rollouts)
    assert examples == [
        Example("a", msg("p1"), "right", role="solver"),
        Example("d", msg("p3"), "also right", role="solver"),
    ]


def test_cap_per_prompt():
    rollouts = [rollout(f"r{i}", "p1", f"answer {i}", True) for i in range(5)] + [rollout("q", "p2", "x", True)]
    examples = Correct(max_per_prompt=2).select(rollouts)
    assert [e.id for e in examples] == ["r0", "r1", "q"]
    assert len(Correct().select(rollouts)) == 6  # no cap by default


def test_dedupe_within_a_problem_only():
    rollouts = [
        rollout("a", "p1", "The answer is 4.", True),
        rollout("b", "p1", "  The answer is 4.\n", True),  # same text up to surrounding whitespace
        rollout("c", "p1", "It is 4.", True),
        rollout("d", "p2", "The answer is 4.", True),  # same text, another problem: kept
    ]
    assert [e.id for e in Correct().select(rollouts)] == ["a", "c", "d"]
    assert [e.id for e in Correct(dedupe=False).select(rollouts)] == ["a", "b", "c", "d"]


def test_duplicates_do_not_use_up_the_cap():
    rollouts = [rollout("a", "p1", "same", True), rollout("b", "p1", "same", True), rollout("c", "p1", "other", True)]
    assert [e.id for e in Correct(max_per_prompt=2).select(rollouts)] == ["a", "c"]


def test_uses_train_prompt_when_present():
    # STaR's rationalization: generated with the answer as a hint, trained without it.
    hinted = msg("What is 2+2? (Hint: the answer is 4.)")
    plain = msg("What is 2+2?")
    rationalized = Rollout(
        id="r1", role="rationalization", problem_id="p1", prompt=hinted, completion="2+2=4", train_prompt=plain,
        verdict=Verdict(1.0, True),
    )  # fmt: skip
    (example,) = Correct().select([rationalized, rollout("r2", "p2", "ok", True, role="rationale")])[:1]
    assert example.prompt == plain and example.prompt != hinted
    assert (example.role, example.completion, example.weight) == ("rationalization", "2+2=4", 1.0)
    other = Correct().select([rollout("r2", "p2", "ok", True, role="rationale")])[0]
    assert other.prompt == msg("p2")  # no train_prompt: the generation prompt is used


def test_bad_cap():
    with pytest.raises(UserError, match="max_per_prompt must be at least 1"):
        Correct(max_per_prompt=0)
