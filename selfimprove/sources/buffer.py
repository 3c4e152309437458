"""A buffer of problems that lives across the steps of an online run and is saved with every checkpoint, and the
source that draws from it."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from selfimprove.errors import UserError
from selfimprove.records import Problem

if TYPE_CHECKING:
    from selfimprove.sources import StepContext


class Buffer:
    """Problems in the order they arrived; the oldest go first once ``max_size`` (0: no limit) is reached.

    A problem added at step s gets the id ``s<step>/<its id>`` (unique in the buffer: rollout ids repeat from step to
    step) and ``meta["buffer_step"]``, so a source can prefer the newest (AZR's ``max_new``). Seeds arrive at step 0.
    """

    def __init__(self, name: str, seed: list[Problem], max_size: int = 0):
        self.name, self.max_size = name, max_size
        self.problems: list[Problem] = []
        self.add(seed, step=0)

    def add(self, problems: list[Problem], step: int) -> None:
        for p in problems:
            self.problems.append(Problem(f"s{step}/{p.id}", p.question, p.answer, {**p.meta, "buffer_step": step}))
        if self.max_size and len(self.problems) > self.max_size:
            del self.problems[: len(self.problems) - self.max_size]

    def __len__(self) -> int:
        return len(self.problems)

    def state_dict(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.problems]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        self.problems = [Problem(**p) for p in state]


class BufferSource:
    """``count`` problems from the buffer ``buffer``: the newest first (``order: newest``, AZR's ``max_new``) or
    drawn uniformly without replacement (``order: random``); fewer while the buffer holds fewer."""

    reads_roles: tuple[str, ...] = ()

    def __init__(self, buffer: str, count: int = 8, order: str = "random"):
        if count < 1 or order not in ("newest", "random"):
            raise UserError(f"buffer: count >= 1 and order newest or random; got count={count}, order={order!r}")
        self.buffer, self.count, self.order = buffer, count, order
        self.reads_buffers = (buffer,)

    def problems(self, ctx: StepContext) -> list[Problem]:
        problems = ctx.buffers[self.buffer].problems
        if self.order == "newest":
            return problems[-self.count :][::-1]
        return ctx.rng.sample(problems, min(self.count, len(problems)))
