"""Generators sample completions from a policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from selfimprove.models import Policy
from selfimprove.progress import Tracker
from selfimprove.records import Messages


@dataclass
class Request:
    id: str
    messages: Messages


@dataclass
class Output:
    id: str
    text: str
    num_tokens: int
    entropy: float | None = None  # mean per-token entropy (nats) of the policy over the generated tokens


class Generator(Protocol):
    def generate(
        self, policy: Policy, requests: list[Request], *, seed: int, done: set[str], tracker: Tracker
    ) -> Iterator[list[Output]]:
        """Yield outputs batch by batch, skipping batches whose ids are all in ``done``.

        Batches must be a deterministic function of ``requests`` and each seeded on
        its own, so a resumed run reproduces exactly what an uninterrupted run makes.
        """
        ...
