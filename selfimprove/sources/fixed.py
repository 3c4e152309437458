"""A fixed prompt, the same every step: a role that needs no data (LSP's challenger)."""

from __future__ import annotations

from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Problem
from selfimprove.sources import StepContext


class FixedSource:
    """``count`` identical problems every step, whose fields (``question`` and ``fields``) fill the role's prompt
    template. With ``count: 1`` and the role's ``n: N``, the N samples form one group (LSP: the baseline of the
    challenger's queries is their mean over the step)."""

    def __init__(self, count: int = 1, question: str = "", fields: dict[str, Any] | None = None):
        if count < 1:
            raise UserError(f"fixed: count must be at least 1, got {count}")
        self.count, self.question, self.fields = count, question, dict(fields or {})

    def problems(self, ctx: StepContext) -> list[Problem]:
        return [Problem(f"fixed-{i}", self.question, None, dict(self.fields)) for i in range(self.count)]
