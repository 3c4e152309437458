"""Generators sample completions from a policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from selfimprove.models import Policy
from selfimprove.models.live import LivePolicy
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
    token_ids: list[int] | None = None  # the sampled tokens (end of turn included when it was sampled)
    logprobs: list[float] | None = None  # the sampler's log-prob of each sampled token (another engine: vLLM)


class Generator(Protocol):
    def generate(
        self,
        policy: Policy | LivePolicy,
        requests: list[Request],
        *,
        seed: int,
        done: set[str],
        tracker: Tracker,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[list[Output]]:
        """Yield outputs batch by batch, skipping batches whose ids are all in ``done``.

        ``shard = (rank, world)``: generate only every ``world``-th batch, from the ``rank``-th, and yield an empty
        list for each batch skipped (here or because it is done): every process then yields once per batch, so the
        loop can gather the processes' shares round by round. A generator without the ``shard`` parameter runs on
        the main process alone.

        ``policy`` is a policy on disk or one in memory (the loop's loaded checkpoint, an online run's live
        weights); a generator that cannot sample from weights in memory (a remote endpoint) takes only the former.

        Batches must be a deterministic function of ``requests`` and each seeded on
        its own, so a resumed run reproduces exactly what an uninterrupted run makes.
        """
        ...
