"""Absolute Zero's proposer problems (Zhao et al., 2025, arXiv 2505.03335): each step, ``count`` proposals of one task
type, each shown ``references`` triplets drawn from that type's buffer (deduction, abduction), or one program drawn
from the deduction and abduction buffers for which to propose inputs (induction)."""

from __future__ import annotations

from selfimprove.errors import UserError
from selfimprove.parsers.azr import TASK_TYPES
from selfimprove.records import Problem
from selfimprove.sources import StepContext


def snippet(number: int, meta: dict) -> str:
    return (f"<snippet_{number}>\n```python\n{meta['program']}\n```\n```input\n{meta['input']}\n```\n"
            f"```output\n{meta['output']}\n```\n</snippet_{number}>")  # fmt: skip


class AZRPropose:
    """``count`` proposer problems of ``task_type`` per step. Deduction and abduction: ``meta.references`` holds
    ``references`` (K = 6 in the paper) triplets sampled without replacement from the buffer ``buffer`` (default: the
    task type's name). Induction: ``meta.program`` is one program sampled from the buffers ``programs_from``."""

    def __init__(
        self,
        task_type: str,
        count: int = 1,
        references: int = 6,
        buffer: str | None = None,
        programs_from: list[str] | None = None,
    ):
        if task_type not in TASK_TYPES:
            raise UserError(f"azr_propose: task_type is one of {', '.join(TASK_TYPES)}, got {task_type!r}")
        if count < 1 or references < 0:
            raise UserError("azr_propose: count must be at least 1, references 0 or more")
        self.task_type, self.count, self.references = task_type, count, references
        if task_type == "induction":
            self.reads_buffers = tuple(programs_from or ("deduction", "abduction"))
        else:
            self.reads_buffers = (buffer or task_type,)

    def problems(self, ctx: StepContext) -> list[Problem]:
        out = []
        pool = [p for name in self.reads_buffers for p in ctx.buffers[name].problems]
        for i in range(self.count):
            meta: dict = {"task_type": self.task_type}
            if self.task_type == "induction":
                meta["program"] = ctx.rng.choice(pool).meta["program"]
            else:
                chosen = ctx.rng.sample(pool, min(self.references, len(pool)))
                meta["references"] = "\n".join(snippet(k + 1, p.meta) for k, p in enumerate(chosen))
            out.append(Problem(f"propose-{i}", "", None, meta))
        return out
