"""Rewards read off verdicts: a rollout's own, or a statistic of the verdicts of the rollouts made from it."""

from __future__ import annotations

import math

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict
from selfimprove.rewards import NoReward, StepRollouts


def score(verdict: Verdict | None, what: str, default: float | None = None) -> float | NoReward:
    if verdict is not None and math.isfinite(verdict.score):
        return verdict.score
    if default is not None:
        return default
    if verdict is None:
        return NoReward(f"no verdict from {what}")
    return NoReward(f"{what} gave no score: {verdict.info.get('error') or verdict.info.get('status') or 'NaN'}")


class VerdictReward:
    """The score of the rollout's verdict from ``verifier`` (a label; default: the role's first verifier).

    A verdict without a finite score (a crashed verifier, a judge whose output could not be read) is no reward,
    unless ``default`` gives the value to use then.
    """

    def __init__(self, verifier: str | None = None, default: float | None = None):
        self.verifier, self.default = verifier, default

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        what = f"verifier '{self.verifier}'" if self.verifier else "the verifier"
        return [score(step.verdict(r, self.verifier), what, self.default) for r in rollouts]


class ChildrenReward:
    """A statistic (``mean``, ``min``, ``max`` or ``passed``: the share that passed) of the verdicts of the rollouts of
    a later ``role`` generated from this rollout: e.g. LSP's challenger reward ``-V(q) + V_Q(q)`` is two of these,
    ``mean`` of the solver's reward-model and self-reward verdicts, with weights -1 and 1.

    A rollout no later rollout was made from (its parse was rejected) gets ``missing``, or no reward when that is
    null. Children without a score count as ``default``, or when that is null are left out of the statistic; none
    left is no reward.
    """

    STATS = ("mean", "min", "max", "passed")

    def __init__(
        self,
        role: str,
        verifier: str | None = None,
        stat: str = "mean",
        missing: float | None = None,
        default: float | None = None,
    ):
        if stat not in self.STATS:
            raise UserError(f"children: stat is one of {', '.join(self.STATS)}, got {stat!r}")
        self.role, self.verifier, self.stat, self.missing, self.default = role, verifier, stat, missing, default
        self.reads_roles = (role,)

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        return [self.value(r, step) for r in rollouts]

    def value(self, rollout: Rollout, step: StepRollouts) -> float | NoReward:
        children = step.children(rollout, self.role)
        if not children:
            if self.missing is not None:
                return self.missing
            why = f" ({rollout.rejected})" if rollout.rejected else ""
            return NoReward(f"no '{self.role}' rollouts were made from it{why}")
        verdicts = [step.verdict(c, self.verifier) for c in children]
        if self.stat == "passed":
            return sum(bool(v and v.passed) for v in verdicts) / len(verdicts)
        values = [score(v, "", self.default) for v in verdicts]
        scores = [v for v in values if isinstance(v, float)]
        if not scores:
            return NoReward(f"none of its {len(children)} '{self.role}' rollouts has a score")
        return {"mean": sum(scores) / len(scores), "min": min(scores), "max": max(scores)}[self.stat]


class VerdictInfo:
    """A number from the verdict's ``info`` (``key``): with weight 0, a metric per step of something a verifier
    measured (AZR: a proposal's program ``length`` or ``complexity``). No value where the verdict has none."""

    def __init__(self, key: str, verifier: str | None = None):
        self.key, self.verifier = key, verifier

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        out: list[float | NoReward] = []
        for r in rollouts:
            verdict = step.verdict(r, self.verifier)
            value = verdict.info.get(self.key) if verdict else None
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            out.append(float(value) if ok else NoReward(f"no '{self.key}' in the verdict"))
        return out
