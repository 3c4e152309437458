"""The rewards stage: every role's reward functions over the step's verified rollouts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Rollout
from selfimprove.rewards import NoReward, StepRollouts


@dataclass
class Term:
    """One reward function of a role: its label (the part's name), weight and the built function."""

    label: str
    weight: float
    function: Any


def assign_rewards(rollouts: list[Rollout], terms: list[Term], step: StepRollouts) -> None:
    """Set ``reward``, ``reward_parts`` and ``reward_error`` on one role's rollouts."""
    if not rollouts:
        return
    values: dict[str, list[Any]] = {}
    for term in terms:
        try:
            got = list(term.function(rollouts, step))
            if len(got) != len(rollouts):
                raise ValueError(f"returned {len(got)} values for {len(rollouts)} rollouts")
        except Exception as exc:  # a reward function is plugin code: its failure costs its values, not the run
            got = [NoReward(f"raised {type(exc).__name__}: {exc}")] * len(rollouts)
        values[term.label] = got
    for i, rollout in enumerate(rollouts):
        total, errors = 0.0, []
        for term in terms:
            value = values[term.label][i]
            if isinstance(value, NoReward) or not _finite(value):
                rollout.reward_parts[term.label] = None
                if term.weight:  # a weight-0 function is a metric: it has no say in whether there is a reward
                    reason = value.reason if isinstance(value, NoReward) else f"returned {value!r}, not a number"
                    errors.append(f"{term.label}: {reason}")
                continue
            rollout.reward_parts[term.label] = float(value)
            total += term.weight * float(value)
        rollout.reward = None if errors else total
        rollout.reward_error = "; ".join(errors) or None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_failures(step: int, rollouts: list[Rollout], max_share: float) -> None:
    """Stop the run when more than ``max_share`` of the step's trained rollouts have no reward."""
    failed = [r for r in rollouts if r.reward is None]
    if rollouts and len(failed) / len(rollouts) > max_share:
        reasons: dict[str, int] = {}
        for r in failed:
            for reason in (r.reward_error or "no reward").split("; "):
                reasons[f"role {r.role}: {reason}"] = reasons.get(f"role {r.role}: {reason}", 0) + 1
        common = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        raise UserError(
            f"step {step}: {len(failed)} of {len(rollouts)} rollouts have no reward (more than "
            f"loop.max_failed_rewards = {max_share:g}); most often: "
            + "; ".join(f"{reason} (x{n})" for reason, n in common)
        )
