"""Math answers checked with math-verify: LaTeX or plain, ``\\boxed{}``, fractions, percentages, units.

Every check runs in a worker process with its own time limit (see ``pool``), so verification is safe from any
thread and a pathological answer (``\\boxed{9^{9^{9^9}}}``) costs one sample, never the batch.
"""

from __future__ import annotations

import logging
import math

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict
from selfimprove.verifiers.extract import first_boxed
from selfimprove.verifiers.numeric import last_number
from selfimprove.verifiers.pool import default_workers, shared_pool


def _parse(text: str) -> list:
    from math_verify import parse

    # parsing_timeout=None turns off math-verify's signal.alarm; the pool enforces the limit instead.
    return parse(text, parsing_timeout=None)


def check(completion: str, gold: str, float_rounding: int = 6, fallback: bool = True) -> tuple[bool, dict]:
    """Compare one completion with one reference answer; runs inside a pool worker."""
    from math_verify import verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns once per process that we set no timeout
    gold_parsed = _parse(gold) or _parse(f"${gold}$")
    predicted = _parse(completion)
    if gold_parsed and predicted:
        passed = verify(gold_parsed, predicted, float_rounding=float_rounding, timeout_seconds=None)
        return passed, {"parsed": _shown(predicted), "expected": _shown(gold_parsed), "method": "math-verify"}
    if not fallback:
        what = "the completion" if gold_parsed else "the reference answer"
        return False, {"parsed": _shown(predicted), "expected": gold, "error": f"could not parse {what}"}
    # Fallback for what math-verify cannot read (``\$1,234``): the last number of each side.
    got, want = last_number(completion), last_number(gold)
    if want is None:
        return False, {"parsed": got, "expected": gold, "error": "reference answer has no parseable value"}
    passed = got is not None and math.isclose(got, want, rel_tol=0.0, abs_tol=10.0**-float_rounding)
    return passed, {"parsed": got, "expected": want, "method": "numeric"}


def _shown(parsed: list) -> str | None:
    """math-verify returns [sympy value, matched text]; the text is what a reader recognises."""
    if not parsed:
        return None
    return str(parsed[-1] if isinstance(parsed[-1], str) else parsed[0])


class MathVerifier:
    """Math answers via math-verify (LaTeX, \\boxed{}, fractions, percentages, units), numeric fallback, timeouts."""

    def __init__(
        self,
        timeout: float = 5.0,
        workers: int | None = None,
        memory_mb: int = 2048,
        float_rounding: int = 6,
        fallback: bool = True,
        boxed: str = "any",
    ):
        """``boxed: first`` grades only the contents of the completion's first ``\\boxed{}`` (RLSP's rule); a
        completion without one fails (``info.error``: no \\boxed{}). ``any``: math-verify reads the answer anywhere."""
        if timeout <= 0:
            raise UserError(f"math: timeout must be positive, got {timeout}")
        if workers is not None and workers < 1:
            raise UserError(f"math: workers must be at least 1, got {workers}")
        if memory_mb < 256:
            raise UserError(f"math: memory_mb must be at least 256 (a worker imports sympy), got {memory_mb}")
        if boxed not in ("any", "first"):
            raise UserError(f"math: boxed is 'any' or 'first', got {boxed!r}")
        self.boxed = boxed
        self.timeout, self.workers, self.memory_mb = timeout, workers or default_workers(), memory_mb
        self.float_rounding, self.fallback = float_rounding, fallback

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        calls, slots = [], []
        for i, r in enumerate(rollouts):
            found = first_boxed(r.completion) if self.boxed == "first" else None
            if r.answer is None or not str(r.answer).strip():  # nothing to judge against: no score
                verdicts[i] = Verdict(math.nan, False, {"error": "no reference answer"})
            elif self.boxed == "first" and found is None:
                verdicts[i] = Verdict(0.0, False, {"parsed": None, "error": "no \\boxed{}"})
            else:
                completion = f"\\boxed{{{found[1]}}}" if found else r.completion
                calls.append((completion, str(r.answer), self.float_rounding, self.fallback))
                slots.append(i)
        if calls:
            pool = shared_pool(self.workers, self.memory_mb, preload=["math_verify", __name__])
            for i, outcome in zip(slots, pool.map(check, calls, self.timeout), strict=True):
                if outcome.error is not None:
                    verdicts[i] = Verdict(0.0, False, {"error": outcome.error})
                else:
                    passed, info = outcome.value
                    verdicts[i] = Verdict(float(passed), bool(passed), info)
        return verdicts  # type: ignore[return-value]
