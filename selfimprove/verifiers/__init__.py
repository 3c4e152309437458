"""Verifiers judge rollouts. One bad sample costs that sample's verdict, never the run."""

from __future__ import annotations

from typing import Protocol

from selfimprove.records import Rollout, Verdict


class Verifier(Protocol):
    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        """One verdict per rollout, in order."""
        ...


def verify_safely(verifier: Verifier, rollouts: list[Rollout]) -> list[Verdict]:
    """Run a batch; if the batch fails, retry one by one so that a crash costs only its sample.

    A crashed check is not a score: its verdict's score is NaN (not passed), which a reward reads as "no reward"
    rather than a 0.0 that would pull its group's baseline."""
    if not rollouts:
        return []
    try:
        verdicts = verifier.verify(rollouts)
        if len(verdicts) == len(rollouts):
            return verdicts
    except Exception:  # a verifier is plugin code: any failure is contained here
        pass
    out = []
    for rollout in rollouts:
        try:
            out.append(verifier.verify([rollout])[0])
        except Exception as exc:
            out.append(Verdict(float("nan"), False, {"error": f"verifier crashed: {type(exc).__name__}: {exc}"}))
    return out
