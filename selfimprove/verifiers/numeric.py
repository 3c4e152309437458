"""Numeric answer checking: the last number in the completion against the reference."""

from __future__ import annotations

import math
import re

from selfimprove.records import Rollout, Verdict

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def last_number(text: str) -> float | None:
    for match in reversed(_NUMBER.findall(text)):
        token = match.replace(",", "")
        try:
            return float(token)
        except ValueError:
            continue
    return None


class NumericVerifier:
    """Passes when the completion's final number equals the reference answer (within a tolerance)."""

    def __init__(self, tolerance: float = 1e-6):
        self.tolerance = tolerance

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [self.check(r.completion, r.answer) for r in rollouts]

    def check(self, completion: str, answer: str | None) -> Verdict:
        gold = last_number(answer or "")
        if gold is None:
            return Verdict(0.0, False, {"error": f"reference answer {answer!r} has no number"})
        got = last_number(completion)
        passed = got is not None and math.isclose(got, gold, rel_tol=0.0, abs_tol=self.tolerance)
        return Verdict(float(passed), passed, {"parsed": got, "expected": gold})
