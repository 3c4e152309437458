"""Problem sources: where a role's problems come from at each step (an offline iteration is a step whose batch is the
whole split).

A role samples from its source's problems: the step's draw from the task (``task``; with ``role``, the problems an
earlier role failed or passed: STaR's rationalization), a fixed prompt repeated
(``fixed``, LSP's challenger), an earlier role's verified rollouts turned into problems by a parser (``role``,
LSP's solver answering the challenger's queries), or a buffer that lives across steps (``buffer``, AZR's task
buffers). A buffer is filled by a source too (``buffers[].feed``), evaluated at the end of each step.

A source is a plain class: the constructor takes the recipe's arguments and checks them (cheap, no model);
``problems(ctx)`` returns the step's problems. Sources that read other roles or buffers name them in
``reads_roles`` / ``reads_buffers`` (``capabilities.ReadsRoles``, ``ReadsBuffers``), so ``selfimprove validate`` can
check the names and the roles' order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from selfimprove.records import Problem, Rollout
from selfimprove.sources.buffer import Buffer


@dataclass
class StepContext:
    """What a source sees: the step, a random generator seeded for (run seed, step, role), the step's draw from
    the task, the verified rollouts of the roles before this one, and the run's buffers."""

    step: int
    rng: random.Random
    batch: list[Problem] = field(default_factory=list)
    rollouts: dict[str, list[Rollout]] = field(default_factory=dict)
    buffers: dict[str, Buffer] = field(default_factory=dict)


class Source(Protocol):
    def problems(self, ctx: StepContext) -> list[Problem]:
        """This step's problems for the role, ids unique within the step."""
        ...


__all__ = ["Buffer", "Source", "StepContext"]
