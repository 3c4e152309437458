"""Models: resolving names to folders, loading for generation or training, adapters."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """What a generator or updater needs to load a model: the base weights and an optional checkpoint.

    ``checkpoint`` is a PEFT adapter folder or a full HF model folder, as written by an updater.
    """

    base: str
    checkpoint: str | None = None
