"""An earlier role's verified rollouts, turned into problems by a parser: roles that feed roles."""

from __future__ import annotations

from typing import Any

from selfimprove.records import Problem, Rollout
from selfimprove.sources import StepContext


class RoleSource:
    """The rollouts of ``role`` (an earlier role of the same step), each made into a problem by ``parser``.

    ``passed`` keeps only the rollouts whose first verdict passed (``true``) or failed (``false``); null keeps all.
    A rollout the parser rejects is recorded as such (``Rollout.rejected`` holds the parser's reason) and costs
    only itself. A problem's id is its parent rollout's id, and its meta gets ``parent_id`` and ``parent_role``, so
    a reward function can find the parent of every rollout of this role (LSP's challenger reward).
    """

    def __init__(self, role: str, parser: str | dict[str, Any] = "completion", passed: bool | None = None):
        from selfimprove.config.schema import nested_component

        self.parser = nested_component("parser", parser, "source 'role'").build()
        self.role, self.passed = role, passed
        self.reads_roles = (role,)

    def problems(self, ctx: StepContext) -> list[Problem]:
        out = []
        for rollout in ctx.rollouts[self.role]:
            if self.passed is not None and bool(rollout.verdict and rollout.verdict.passed) is not self.passed:
                continue
            problem = parse(self.parser, rollout)
            if problem is not None:
                out.append(problem)
        return out


def parse(parser: Any, rollout: Rollout) -> Problem | None:
    """The parser's problem for ``rollout`` with its provenance, or None with the reason recorded on the rollout."""
    try:
        result = parser.parse(rollout)
    except Exception as exc:  # a parser is plugin code; a crash costs only this rollout
        result = f"parser crashed: {type(exc).__name__}: {exc}"
    if isinstance(result, str):
        rollout.rejected = result
        return None
    meta = {**result.meta, "parent_id": rollout.id, "parent_role": rollout.role}
    return Problem(rollout.id, result.question, result.answer, meta)
