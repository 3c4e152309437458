"""Parsers turn an earlier role's rollout into a problem for a later role, or say why they cannot.

``parse(rollout)`` returns a ``Problem`` (question, answer, meta; the loop sets its id and provenance) or a string:
the reason this rollout gives no problem, recorded on the rollout (``Rollout.rejected``). A parser never raises for
a bad rollout; if it does anyway, the loop records the crash the same way.
"""

from __future__ import annotations

from typing import Protocol

from selfimprove.records import Problem, Rollout


class Parser(Protocol):
    def parse(self, rollout: Rollout) -> Problem | str: ...
