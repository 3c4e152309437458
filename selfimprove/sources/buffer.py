"""A buffer of problems that lives across the steps of an online run and is saved with every checkpoint, and the
source that draws from it."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from selfimprove.errors import UserError
from selfimprove.records import Problem

if TYPE_CHECKING:
    from selfimprove.sources import StepContext


class Buffer:
    """Problems in the order they arrived; the oldest go first once ``max_size`` (0: no limit) is reached.

    A problem added at step s gets the id ``<origin>/<its id>`` (``origin`` defaults to ``s<step>``; unique in the
    buffer: rollout ids repeat from step to step) and ``meta["buffer_step"]``, so a source can prefer the newest
    (AZR's ``max_new``). Seeds, and what the seeding stage adds, arrive at step 0.
    """

    def __init__(self, name: str, seed: list[Problem], max_size: int = 0):
        self.name, self.max_size = name, max_size
        self.problems: list[Problem] = []
        self.add(seed, step=0)

    def add(self, problems: list[Problem], step: int, origin: str | None = None, unique: bool = False) -> int:
        """Append ``problems``; with ``unique``, skip those whose content (question, answer, meta but for where it
        came from) is already here, as AZR's seeding does. Returns how many were added."""
        seen = {content(p) for p in self.problems} if unique else set()
        added = 0
        for p in problems:
            if unique and (key := content(p)) in seen:
                continue
            if unique:
                seen.add(key)
            self.problems.append(Problem(f"{origin or f's{step}'}/{p.id}", p.question, p.answer,
                                         {**p.meta, "buffer_step": step}))  # fmt: skip
            added += 1
        if self.max_size and len(self.problems) > self.max_size:
            del self.problems[: len(self.problems) - self.max_size]
        return added

    def truncate(self, size: int) -> None:
        """Keep the ``size`` oldest problems (AZR truncates its seed set to the target size)."""
        del self.problems[size:]

    def __len__(self) -> int:
        return len(self.problems)

    def state_dict(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.problems]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        self.problems = [Problem(**p) for p in state]


_PROVENANCE = ("buffer_step", "parent_id", "parent_role")


def content(problem: Problem) -> str:
    """What a problem says, without where it came from, as one comparable text."""
    meta = {k: v for k, v in problem.meta.items() if k not in _PROVENANCE}
    return json.dumps([problem.question, problem.answer, meta], sort_keys=True, default=str)


class BufferSource:
    """``count`` problems from the buffer ``buffer``, fewer while the buffer holds fewer:

    - ``order: recent`` (AZR's ``pred_data_mix_strategy: max_new``): up to ``count`` drawn uniformly from the
      problems added in the last ``window`` steps (step - added <= window; what the seeding stage added counts as
      step 0), topped up with problems drawn uniformly from the rest of the buffer. The reference code builds the
      solver's batch at the start of a step, before that step's proposals join (its window is
      ``update_iteration`` = 1 step); so does this, as buffers are fed at the end of a step. Its top-up draws from
      the whole buffer and may repeat a new task in one batch; this draws from the rest, so a batch has no
      duplicate;
    - ``order: newest``: the newest first;
    - ``order: random``: drawn uniformly without replacement.
    """

    def __init__(self, buffer: str, count: int = 8, order: str = "random", window: int = 1):
        if count < 1 or order not in ("recent", "newest", "random") or window < 0:
            raise UserError(f"buffer: count >= 1, order recent, newest or random, window >= 0; got count={count}, "
                            f"order={order!r}, window={window}")  # fmt: skip
        self.buffer, self.count, self.order, self.window = buffer, count, order, window
        self.reads_buffers = (buffer,)

    def problems(self, ctx: StepContext) -> list[Problem]:
        problems = ctx.buffers[self.buffer].problems
        if self.order == "newest":
            return problems[-self.count :][::-1]
        if self.order == "random":
            return ctx.rng.sample(problems, min(self.count, len(problems)))
        recent = [p for p in problems if ctx.step - p.meta.get("buffer_step", 0) <= self.window]
        chosen = ctx.rng.sample(recent, min(self.count, len(recent)))
        taken = {p.id for p in chosen}
        rest = [p for p in problems if p.id not in taken]
        return chosen + ctx.rng.sample(rest, min(self.count - len(chosen), len(rest)))
