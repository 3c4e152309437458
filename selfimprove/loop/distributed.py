"""Several processes under ``accelerate launch`` or ``torchrun``, on one machine or several.

Every process generates and verifies its share of each stage's requests, and the shares are gathered through the
process group (``torch.distributed``, through accelerate), not through files: generation takes every ``world``-th
batch of the generator's deterministic batching, so each batch keeps the seed it has in a single process and the
records do not depend on the number of processes. What needs a whole stage (rewards, sources, selection) runs on the
main process and is sent to the others; only the main process reads and writes the run directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Processes:
    """This process's place among the run's processes, and the collectives the loop uses."""

    rank: int = 0
    world: int = 1
    generated: int = 0  # requests this process generated since the last ``take_generated``

    @classmethod
    def current(cls) -> Processes:
        """The launcher's processes (one when launched alone); joins its process group."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        import torch
        from accelerate import PartialState

        # joins torch.distributed from the launcher's environment: NCCL on GPUs; on CPU accelerate needs to be told,
        # or it sees no distributed setup at all
        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(state.process_index, state.num_processes)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, items: list[T]) -> list[T]:
        """Every process's ``items``, concatenated in rank order, on every process."""
        if self.world == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)

    def share(self, value: T) -> T:
        """The main process's ``value`` on every process."""
        if self.world == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def on_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` on the main process only, its result on every process."""
        return self.share(compute() if self.is_main else None)  # type: ignore[arg-type]

    def span(self, n: int) -> slice:
        """This process's contiguous share of ``n`` items (verification)."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    def take_generated(self) -> list[int]:
        """How many requests each process generated since the last call."""
        counts = self.gather([self.generated])
        self.generated = 0
        return counts


SINGLE = Processes()


def accepts_shard(generator: Any) -> bool:
    """Whether a generator can take a share of the batches (``generate(..., shard=(rank, world))``)."""
    import inspect

    return "shard" in inspect.signature(generator.generate).parameters
