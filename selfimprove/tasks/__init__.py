"""Task sources: where an iteration's problems come from (a dataset, a generator, later the model itself)."""

from __future__ import annotations

from typing import Protocol

from selfimprove.records import Problem


class TaskSource(Protocol):
    def load(self, split: str) -> list[Problem]:
        """All problems of ``split`` in a stable order; the loop applies ``limit``."""
        ...
