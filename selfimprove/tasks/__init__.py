"""Task sources: where an iteration's problems come from (a dataset, a generator, later the model itself)."""

from __future__ import annotations

from typing import Protocol

from selfimprove.records import Problem


class TaskSource(Protocol):
    """A task. Besides ``load`` it may declare how it is evaluated when nothing else says (``selfimprove eval``):

    - ``verifier``: a verifier name, or ``{"name": ..., **arguments}`` (default: ``math``);
    - ``prompt``: ``{"system": ..., "template": ...}`` over the problems' fields (default: the question alone).
    """

    def load(self, split: str) -> list[Problem]:
        """All problems of ``split`` in a stable order; the loop applies ``limit``."""
        ...
