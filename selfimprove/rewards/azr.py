"""Absolute Zero's rewards (Zhao et al., 2025, arXiv 2505.03335, eqs. 4-6; the reference code's reward managers).

    proposer:  r = 1 - s  if 0 < s < 1 else 0     s: the solve rate of the n learnability samples of its task
    solver:    r = 1 if correct else 0
    composite: r if r > 0;  -0.5 if well formed but r = 0;  -1 if the format or the task's validity fails

The solve rate comes from the learnability role's verdicts on the rollouts made from the proposal (the reference
code's newer branch samples those 8 greedily, so s is 0 or 1 and every proposer reward is 0: sample them at
T = 1.0, as the recipe does). As in the reference, "well formed" is the format rule (``info["format"]``) and, for a
proposal, validity too: a valid proposal in a broken frame still gets its learnability samples and joins the
buffer, but its reward is -1.
"""

from __future__ import annotations

from selfimprove.records import Rollout
from selfimprove.rewards import NoReward, StepRollouts


def solve_rate(rollout: Rollout, step: StepRollouts, role: str) -> float | None:
    children = step.children(rollout, role)
    return sum(bool(c.verdict and c.verdict.passed) for c in children) / len(children) if children else None


def composite(well_formed: bool, r: float) -> float:
    return -1.0 if not well_formed else (r if r > 0 else -0.5)


class AZRProposer:
    """The proposer's composite reward: -1 for an invalid proposal or a broken frame, else the learnability
    ``1 - s`` of its task from the ``learn`` role's samples when 0 < s < 1, else -0.5."""

    def __init__(self, learn: str):
        self.learn = learn
        self.reads_roles = (learn,)

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        out: list[float | NoReward] = []
        for r in rollouts:
            valid = bool(r.verdict and r.verdict.passed)
            s = solve_rate(r, step, self.learn) if valid else None
            well_formed = valid and bool(r.verdict.info.get("format"))
            out.append(composite(well_formed, 1.0 - s if s is not None and 0 < s < 1 else 0.0))
        return out


class AZRSolver:
    """The solver's composite reward: 1 when correct, -0.5 when well formed but wrong, -1 when malformed."""

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        out: list[float | NoReward] = []
        for r in rollouts:
            if r.verdict is None or r.verdict.score != r.verdict.score:  # no verdict, or NaN: no reward
                out.append(NoReward("the task could not be checked"))
            else:
                out.append(composite(bool(r.verdict.info.get("format")), float(r.verdict.passed)))
        return out


class AZRLearnable:
    """A metric (weight 0): 1.0 when the proposal's solve rate is strictly between 0 and 1 (its learnability is not
    zero), 0.0 when it is 0 or 1; no value for an invalid proposal."""

    def __init__(self, learn: str):
        self.learn = learn
        self.reads_roles = (learn,)

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        out: list[float | NoReward] = []
        for r in rollouts:
            s = solve_rate(r, step, self.learn) if r.verdict and r.verdict.passed else None
            out.append(NoReward("not a valid proposal") if s is None else float(0 < s < 1))
        return out
