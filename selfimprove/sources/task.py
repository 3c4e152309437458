"""The step's draw from the task: the default source of an online role."""

from __future__ import annotations

from selfimprove.records import Problem
from selfimprove.sources import StepContext


class TaskSource:
    """This step's batch of the task's split (``loop.batch_size`` problems, without replacement, reshuffled each
    epoch from the seed): GRPO's and RLSP's problems."""

    def problems(self, ctx: StepContext) -> list[Problem]:
        return list(ctx.batch)
