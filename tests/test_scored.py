"""The `scored` selector: every verified rollout as a rewarded, grouped example for the policy-gradient updaters."""

from __future__ import annotations

import pytest

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict
from selfimprove.selectors.scored import Scored


def msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def scored_rollout(rid: str, pid: str, score: float, role: str = "solver", **meta) -> Rollout:
    return Rollout(rid, role, pid, msg(pid), f"completion {rid}", verdict=Verdict(score, score > 0), meta=meta)


def test_scored_keeps_every_verified_rollout_with_its_reward_and_group():
    rollouts = [scored_rollout("a", "p1", 1.0), scored_rollout("b", "p1", 0.0), scored_rollout("c", "p2", 0.5)]
    rollouts.append(Rollout("d", "solver", "p2", msg("p2"), "unjudged"))
    rollouts.append(scored_rollout("e", "p2", float("nan")))
    examples = Scored().select(rollouts)
    assert [(e.id, e.reward, e.group) for e in examples] == [
        ("a", 1.0, "solver/p1"), ("b", 0.0, "solver/p1"), ("c", 0.5, "solver/p2"),
    ]  # fmt: skip
    assert examples[0].completion == "completion a" and examples[0].prompt == msg("p1")


def test_scored_groups_by_role_and_meta_and_drops_groups_that_agree():
    rollouts = [
        scored_rollout("a", "p1", 1.0, role="propose", task_type="code_i"),
        scored_rollout("b", "p2", -0.5, role="propose", task_type="code_i"),
        scored_rollout("c", "p3", 1.0, role="solve", task_type="code_o"),
        scored_rollout("d", "p4", 1.0, role="solve", task_type="code_o"),
    ]
    selector = Scored(group_by=["meta.task_type", "role"], drop_zero_variance=True)
    assert [(e.id, e.group) for e in selector.select(rollouts)] == [("a", "code_i/propose"), ("b", "code_i/propose")]
    with pytest.raises(UserError, match="no meta field 'missing'"):
        Scored(group_by="meta.missing").select(rollouts)
    with pytest.raises(UserError, match="group_by entry 'task'"):
        Scored(group_by=["task"])
