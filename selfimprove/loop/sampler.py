"""The task sampler of an online run: each step's problems, without replacement, reshuffled every epoch."""

from __future__ import annotations

import random

from selfimprove.loop.stages import stage_seed
from selfimprove.records import Problem


class EpochSampler:
    """Step s (from 1) draws positions ``(s-1)*B .. s*B-1`` of an endless sequence of epochs, each a fresh
    permutation of the split seeded from (seed, epoch); a batch that crosses an epoch's end continues into the next.

    The draw is a pure function of (seed, step): a resumed run draws exactly what an uninterrupted one does, with
    no sampler state to save.
    """

    def __init__(self, problems: list[Problem], batch_size: int, seed: int):
        self.problems, self.batch_size, self.seed = problems, batch_size, seed
        self._orders: dict[int, list[int]] = {}

    def order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.problems)))
            random.Random(stage_seed(self.seed, "epoch", epoch)).shuffle(order)
            self._orders = {epoch: order}  # a batch spans at most two epochs: keep only the newest
        return self._orders[epoch]

    def batch(self, step: int) -> list[Problem]:
        out = []
        for position in range((step - 1) * self.batch_size, step * self.batch_size):
            epoch, index = divmod(position, len(self.problems))
            out.append(self.problems[self.order(epoch)[index]])
        return out

    def epoch(self, step: int) -> float:
        """Passes over the split completed after ``step`` steps."""
        return step * self.batch_size / len(self.problems)
