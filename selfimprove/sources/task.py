"""The step's draw from the task: a role's default source, online and offline."""

from __future__ import annotations

from selfimprove.records import Problem
from selfimprove.sources import StepContext


class TaskSource:
    """The step's batch of the task's split: online ``loop.batch_size`` problems, without replacement, reshuffled
    each epoch from the seed (GRPO's, RLSP's); offline the whole split (or its ``limit``).

    With ``role``, only the problems that earlier role of the step passed (``passed: true``: one of its rollouts
    passed) or failed (``passed: false``, the default: none did). STaR's rationalization takes the problems its
    rationale role failed.
    """

    def __init__(self, role: str | None = None, passed: bool = False):
        self.role, self.passed = role, passed
        self.reads_roles = (role,) if role else ()

    def problems(self, ctx: StepContext) -> list[Problem]:
        if self.role is None:
            return list(ctx.batch)
        solved: dict[str, bool] = {}
        for rollout in ctx.rollouts[self.role]:
            solved[rollout.problem_id] = solved.get(rollout.problem_id, False) or bool(
                rollout.verdict and rollout.verdict.passed
            )
        return [p for p in ctx.batch if solved.get(p.id) is self.passed]
