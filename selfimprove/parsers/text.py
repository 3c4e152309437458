"""Parsers that take text out of a completion: all of it, or what lies between markers."""

from __future__ import annotations

from selfimprove.errors import UserError
from selfimprove.records import Problem, Rollout


class Completion:
    """The whole completion, stripped, is the next role's question; an empty one is rejected."""

    def parse(self, rollout: Rollout) -> Problem | str:
        text = rollout.completion.strip()
        return Problem("", text) if text else "empty completion"


class Between:
    """The text between ``start`` and ``end`` (the first ``start``, then the first ``end`` after it), stripped.

    A missing ``start`` marker takes the text from the beginning, a missing ``end`` to the end, unless
    ``required: true``, which rejects the rollout instead. Empty text is rejected, and so is text longer than
    ``max_chars`` (0: no limit).
    """

    def __init__(self, start: str = "", end: str = "", required: bool = False, max_chars: int = 0):
        if not start and not end:
            raise UserError("between: give a start or an end marker (or use the parser 'completion')")
        if max_chars < 0:
            raise UserError(f"between: max_chars must be 0 (no limit) or more, got {max_chars}")
        self.start, self.end, self.required, self.max_chars = start, end, required, max_chars

    def parse(self, rollout: Rollout) -> Problem | str:
        text = rollout.completion
        if self.start:
            at = text.find(self.start)
            if at < 0 and self.required:
                return f"no {self.start!r} marker"
            text = text[at + len(self.start) :] if at >= 0 else text
        if self.end:
            at = text.find(self.end)
            if at < 0 and self.required:
                return f"no {self.end!r} marker"
            text = text[:at] if at >= 0 else text
        text = text.strip()
        if not text:
            return "nothing between the markers"
        if self.max_chars and len(text) > self.max_chars:
            return f"longer than {self.max_chars} characters ({len(text)})"
        return Problem("", text)
