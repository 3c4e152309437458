"""Pattern checks: pass when the completion matches a regular expression."""

from __future__ import annotations

import re

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict


class RegexVerifier:
    """Passes when ``pattern`` is found in the completion; ``{answer}`` in it stands for the escaped reference."""

    def __init__(self, pattern: str, ignore_case: bool = False):
        try:
            re.compile(pattern.replace("{answer}", "x"))
        except re.error as exc:
            raise UserError(f"regex: bad pattern {pattern!r}: {exc}") from None
        self.pattern, self.flags = pattern, re.IGNORECASE if ignore_case else 0

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        out = []
        for r in rollouts:
            pattern = self.pattern.replace("{answer}", re.escape(r.answer or ""))
            match = re.search(pattern, r.completion, self.flags)
            out.append(Verdict(float(bool(match)), bool(match), {"match": match.group(0) if match else None}))
        return out
