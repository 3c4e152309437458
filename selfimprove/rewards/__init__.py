"""Reward functions: the rewards stage of an online step.

After every role of a step is generated and verified, each role's reward functions give each of its rollouts a
number, from its own verdicts and from the whole step's rollouts (cross-role statistics: the mean verdict of the
solver's answers to a challenger's query, the solve rate of a proposal). A role's reward is the weighted sum of its
functions' values, each kept per rollout as a part (``Rollout.reward_parts``).

A function that cannot compute a rollout's reward returns ``NoReward(reason)`` for it (or raises, which costs its
whole call): never a silent 0.0, which would pull a group's baseline and poison its advantages. Such a rollout is
left out of the update and counted; a step where too many are (``loop.max_failed_rewards``) stops the run with an
error that names the function and its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from selfimprove.records import Rollout, Verdict


@dataclass(frozen=True)
class NoReward:
    """In place of a number: this rollout's reward cannot be computed, and why."""

    reason: str


@dataclass
class StepRollouts:
    """The step's verified rollouts by role, and each role's verifier labels (the first one's verdict is
    ``Rollout.verdict``, the others' are in ``Rollout.verdicts``)."""

    rollouts: dict[str, list[Rollout]]
    labels: dict[str, list[str]] = field(default_factory=dict)

    def verdict(self, rollout: Rollout, label: str | None = None) -> Verdict | None:
        """The verdict of the verifier ``label`` on ``rollout`` (None: its role's first verifier)."""
        labels = self.labels.get(rollout.role, [])
        if label is None or (labels and label == labels[0]):
            return rollout.verdict
        return rollout.verdicts.get(label)

    def children(self, rollout: Rollout, role: str) -> list[Rollout]:
        """The rollouts of ``role`` generated for problems made from ``rollout`` (see the ``role`` source)."""
        return [r for r in self.rollouts.get(role, []) if r.meta.get("parent_id") == rollout.id]


class RewardFunction(Protocol):
    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        """One value per rollout of ``rollouts`` (one role's), in order."""
        ...


__all__ = ["NoReward", "RewardFunction", "StepRollouts"]
