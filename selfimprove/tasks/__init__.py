"""Tasks: the data sets a run draws its problems from (an online role's draw is the ``task`` source,
``selfimprove.sources.task.TaskSource``)."""

from __future__ import annotations

from typing import Protocol

from selfimprove.records import Problem


class Task(Protocol):
    """A task. Besides ``load`` it may declare how it is evaluated when nothing else says (``selfimprove eval``):

    - ``verifier``: a verifier name, or ``{"name": ..., **arguments}`` (default: ``math``);
    - ``prompt``: ``{"system": ..., "template": ...}`` over the problems' fields (default: the question alone).
    """

    def load(self, split: str) -> list[Problem]:
        """All problems of ``split`` in a stable order; the loop applies ``limit``."""
        ...
