"""Every verified rollout as a scored example: the input of the policy-gradient updaters."""

from __future__ import annotations

import math
from collections import defaultdict

from selfimprove.errors import UserError
from selfimprove.records import Example, Rollout

FIELDS = ("role", "problem_id")


def group_key(rollout: Rollout, group_by: list[str]) -> str:
    """The key a rollout's advantage baseline is computed over: its ``role``, ``problem_id`` and ``meta.<key>``
    fields, joined. A rollout without a named meta field is a user error (a task or source that lacks it)."""
    parts = []
    for key in group_by:
        if key in FIELDS:
            parts.append(str(getattr(rollout, key)))
        else:
            name = key[len("meta.") :]
            if name not in rollout.meta:
                raise UserError(f"group_by '{key}': rollout {rollout.id} has no meta field '{name}'")
            parts.append(str(rollout.meta[name]))
    return "/".join(parts)


class Scored:
    """Each verified rollout becomes an Example with ``reward = verdict.score`` and a ``group`` key.

    ``group_by`` names what the group key is made of: ``role``, ``problem_id`` or ``meta.<key>`` (a field of
    the problem's meta). The default, role and problem, gives GRPO's groups: the samples of one prompt.
    AZR's task-relative baselines group by task type and role instead, e.g. ``[meta.task_type, role]``.
    ``drop_zero_variance`` leaves out groups whose rewards are all equal: their group advantage is zero, so
    they cost compute and teach nothing (DAPO's dynamic sampling filter). A rollout whose score is not a finite
    number is left out: it would turn every advantage of its batch into NaN.
    """

    def __init__(self, group_by: str | list[str] = ("role", "problem_id"), drop_zero_variance: bool = False):
        self.group_by = [group_by] if isinstance(group_by, str) else list(group_by)
        for key in self.group_by:
            if key not in FIELDS and not (key.startswith("meta.") and len(key) > 5):
                raise UserError(f"scored: group_by entry '{key}' must be role, problem_id or meta.<key>")
        self.drop_zero_variance = drop_zero_variance

    def key(self, rollout: Rollout) -> str:
        return group_key(rollout, self.group_by)

    def select(self, rollouts: list[Rollout]) -> list[Example]:
        examples = [
            Example(
                r.id, r.train_prompt or r.prompt, r.completion, role=r.role, reward=r.verdict.score, group=self.key(r)
            )
            for r in rollouts
            if r.verdict is not None and math.isfinite(r.verdict.score)
        ]
        if not self.drop_zero_variance:
            return examples
        rewards: dict[str, set[float]] = defaultdict(set)
        for e in examples:
            rewards[e.group].add(e.reward)
        return [e for e in examples if len(rewards[e.group]) > 1]
