"""Exact string match after normalisation, optionally on an answer extracted by a regular expression."""

from __future__ import annotations

import re

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict


class ExactVerifier:
    """Passes when the completion (or the part ``extract`` captures) equals the reference after normalisation.

    ``extract`` is a regular expression; its last match in the completion is compared (group 1 when it has a
    group, else the whole match), e.g. ``'answer is (.+?)\\.?$'``. No match fails the sample.
    """

    def __init__(
        self,
        extract: str | None = None,
        strip: bool = True,
        ignore_case: bool = False,
        collapse_whitespace: bool = True,
        strip_chars: str = "",
    ):
        self.pattern = None
        if extract is not None:
            try:
                self.pattern = re.compile(extract, re.MULTILINE)
            except re.error as exc:
                raise UserError(f"exact: bad extract pattern {extract!r}: {exc}") from None
        self.strip, self.ignore_case, self.collapse, self.strip_chars = (
            strip,
            ignore_case,
            collapse_whitespace,
            strip_chars,
        )

    def normalise(self, text: str) -> str:
        if self.collapse:
            text = " ".join(text.split())
        if self.strip:
            text = text.strip()
        if self.strip_chars:
            text = text.strip(self.strip_chars)
        return text.casefold() if self.ignore_case else text

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [self.check(r.completion, r.answer) for r in rollouts]

    def check(self, completion: str, answer: str | None) -> Verdict:
        if answer is None:
            return Verdict(0.0, False, {"error": "no reference answer"})
        candidate: str | None = completion
        if self.pattern is not None:
            matches = list(self.pattern.finditer(completion))
            candidate = None if not matches else matches[-1].group(1 if self.pattern.groups else 0)
        if candidate is None:
            return Verdict(0.0, False, {"parsed": None, "expected": answer, "error": "extract pattern did not match"})
        got, want = self.normalise(candidate), self.normalise(str(answer))
        return Verdict(float(got == want), got == want, {"parsed": got, "expected": want})
