"""A selfimprove verifier plugin: length limits and required keywords, for instruction-following rewards."""

from __future__ import annotations

import re

from selfimprove.api import Rollout, UserError, Verdict

WORD = re.compile(r"\w+(?:['-]\w+)*")


class WordCount:
    """Passes when the completion has min_words..max_words words and uses every keyword; score: share met."""

    def __init__(self, min_words: int = 1, max_words: int = 100, keywords: list[str] | None = None):
        if not 0 <= min_words <= max_words:
            raise UserError(f"wordcount: need 0 <= min_words <= max_words, got {min_words} and {max_words}")
        self.min_words, self.max_words = min_words, max_words
        self.keywords = [k.casefold() for k in keywords or []]

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [self.check(r.completion) for r in rollouts]

    def check(self, text: str) -> Verdict:
        words = [w.casefold() for w in WORD.findall(text)]
        in_range = self.min_words <= len(words) <= self.max_words
        missing = [k for k in self.keywords if k not in words]
        met = int(in_range) + len(self.keywords) - len(missing)
        passed = in_range and not missing
        return Verdict(met / (1 + len(self.keywords)), passed, {"words": len(words), "missing": missing})
