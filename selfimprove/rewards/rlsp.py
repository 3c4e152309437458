"""RLSP's reward (Ye et al., 2025, "On the Emergence of Thinking in LLMs I", arXiv 2502.06773), as its official
reward server computes it, in parts:

    r = -0.5                         without a \\boxed{} in the response (format penalty)
    r = correct(first \\boxed{})     otherwise, 0 or 1 (the ``math`` verifier with ``boxed: first``)
    r -= L / (chars_before_box / 4)  exploration: the longer the reasoning before the box, the smaller the penalty
    r = 0.8 r + 0.2 effort           with the optional thinking-effort judge (0.5 when its output cannot be read)

A role's rewards are a weighted sum, so RLSP is ``rlsp_outcome`` + ``rlsp_exploration`` (weights 1, or 0.8 each
with the judge) + ``verdict`` of the effort judge with ``default: 0.5`` (weight 0.2); each part is kept per rollout.
"""

from __future__ import annotations

from selfimprove.errors import UserError
from selfimprove.records import Rollout
from selfimprove.rewards import NoReward, StepRollouts
from selfimprove.rewards.verdicts import score
from selfimprove.verifiers.extract import first_boxed


class RLSPOutcome:
    """Correctness of the first ``\\boxed{}`` (the score of the ``verifier``'s verdict: the ``math`` verifier with
    ``boxed: first``), or ``no_box`` (-0.5) when the response has no box."""

    def __init__(self, verifier: str | None = None, no_box: float = -0.5):
        self.verifier, self.no_box = verifier, no_box

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        return [
            self.no_box if first_boxed(r.completion) is None else score(step.verdict(r, self.verifier), "the verifier")
            for r in rollouts
        ]


class RLSPExploration:
    """``-L / (characters of the reasoning / 4)``: the reasoning is the text before the first ``\\boxed{}`` (all
    of it without one), its length in characters over 4 an approximate token count. ``L: 0`` turns it off (the
    paper's ablation). Reasoning under 4 characters counts as one token: the official server divides by zero
    there, and its catch-all then answers 0.0, a silent reward this project does not reproduce."""

    def __init__(self, L: float = 1000.0):  # noqa: N803  (the paper's name)
        if L < 0:
            raise UserError(f"rlsp_exploration: L must be 0 or more, got {L}")
        self.L = L

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        return [-self.L / max(len(reasoning(r.completion)) / 4, 1.0) if self.L else 0.0 for r in rollouts]


def reasoning(completion: str) -> str:
    found = first_boxed(completion)
    return completion if found is None else completion[: found[0]]
