"""Numeric answer checking: the last number in the completion against the reference, and optionally every
written calculation ``a op b = c`` in it."""

from __future__ import annotations

import math
import re

from selfimprove.records import Rollout, Verdict

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
# One binary calculation between integers: "72 - 35 = 37". No nested or overlapping repetition: linear time on
# any text.
_EQUATION = re.compile(r"(-?\d{1,12})\s{0,3}([-+*/×x])\s{0,3}(-?\d{1,12})\s{0,3}=\s{0,3}(-?\d{1,12})")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "×": lambda a, b: a * b,
        "x": lambda a, b: a * b, "/": lambda a, b: a / b if b else None}  # fmt: skip


def last_number(text: str) -> float | None:
    for match in reversed(_NUMBER.findall(text)):
        token = match.replace(",", "")
        try:
            return float(token)
        except ValueError:
            continue
    return None


def wrong_equation(text: str) -> str | None:
    """The first written calculation ``a op b = c`` in ``text`` that does not hold, or None."""
    for match in _EQUATION.finditer(text):
        a, op, b, c = match.groups()
        if _OPS[op](int(a), int(b)) != int(c):
            return match.group(0)
    return None


class NumericVerifier:
    """Passes when the completion's final number equals the reference answer (within a tolerance).

    With ``check_equations``, every calculation it writes (``72 - 35 = 37``) must hold too: an answer given as a
    hint (STaR's rationalization) can be copied to the end of a wrong calculation, and the final number alone then
    no longer shows that the rationale is right."""

    def __init__(self, tolerance: float = 1e-6, check_equations: bool = False):
        self.tolerance = tolerance
        self.check_equations = check_equations

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [self.check(r.completion, r.answer) for r in rollouts]

    def check(self, completion: str, answer: str | None) -> Verdict:
        gold = last_number(answer or "")
        if gold is None:
            return Verdict(0.0, False, {"error": f"reference answer {answer!r} has no number"})
        got = last_number(completion)
        passed = got is not None and math.isclose(got, gold, rel_tol=0.0, abs_tol=self.tolerance)
        info: dict = {"parsed": got, "expected": gold}
        if passed and self.check_equations and (wrong := wrong_equation(completion)) is not None:
            passed, info["wrong_equation"] = False, wrong
        return Verdict(float(passed), passed, info)
