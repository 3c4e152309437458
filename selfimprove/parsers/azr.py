"""Absolute Zero's formats (Zhao et al., 2025, arXiv 2505.03335), parsed strictly, and the parser that turns a
validated proposal into a solver's problem.

Every AZR completion reasons in ``<think>...</think>`` and answers in ``<answer>...</answer>`` (the prompt may end
with the opening ``<think>``, so the completion may start inside it); the answer holds fenced blocks: ``python``
(a program), ``input``, ``output``, ``message``. Three task types, as the paper names them:

- deduction: given a program and an input, predict the output (a buffer of triplets program, input, output);
- abduction: given a program and an output, give an input that produces it (the same triplets);
- induction: given input/output pairs and a message, write the program (a program with several pairs).
"""

from __future__ import annotations

import re
from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Problem, Rollout

TASK_TYPES = ("deduction", "abduction", "induction")
_FORMAT = re.compile(r"\s*(?:<think>)?(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*(\w+)[ \t]*\n(.*?)```", re.DOTALL)


def answer(completion: str) -> str | None:
    """The answer of a well-formed completion (reasoning in <think>, then one <answer>), else None."""
    found = _FORMAT.fullmatch(completion)
    return None if found is None else found.group(2)


def blocks(text: str, tag: str) -> list[str]:
    """The contents of the ``tag`` fenced blocks of ``text``, stripped, in order."""
    return [body.strip() for kind, body in _FENCE.findall(text) if kind.lower() == tag]


def parse_proposal(completion: str, task_type: str, inputs: int = 10) -> dict[str, Any] | str:
    """A proposer's program and input (deduction, abduction), or inputs and message (induction); else why not."""
    body = answer(completion)
    if body is None:
        return "not <think>...</think> <answer>...</answer>"
    if task_type == "induction":
        found, message = blocks(body, "input"), blocks(body, "message")
        if len(found) != inputs or len(message) != 1:
            return f"expected {inputs} input blocks and one message block, got {len(found)} and {len(message)}"
        return {"inputs": found, "message": message[0]}
    programs, found = blocks(body, "python"), blocks(body, "input")
    if len(programs) != 1 or len(found) != 1:
        return f"expected one python block and one input block, got {len(programs)} and {len(found)}"
    return {"program": programs[0], "input": found[0]}


def parse_solution(completion: str, task_type: str) -> str | None:
    """A solver's answer: the output (deduction), the input (abduction) or the program (induction), else None."""
    body = answer(completion)
    if body is None:
        return None
    tag = {"deduction": "output", "abduction": "input", "induction": "python"}[task_type]
    found = blocks(body, tag)
    return found[-1] if found else None


def shown_pairs(pairs: list[list[str]]) -> str:
    """Input/output pairs as a solver sees them."""
    return "\n".join(f"```input\n{i}\n```\n```output\n{o}\n```" for i, o in pairs)


class AZRTask:
    """A validated proposal (its verdict's ``info``: program, input(s), output(s), message) as a problem of its
    ``task_type`` for the solver: deduction and abduction keep the triplet (``meta``: program, input, output);
    induction keeps the program and its pairs, the first ``shown`` shown to the solver (``meta.shown``, with the
    message) and the rest hidden (``meta.hidden``). The solver roles' templates read these fields."""

    def __init__(self, task_type: str, shown: int = 5):
        if task_type not in TASK_TYPES:
            raise UserError(f"azr_task: task_type is one of {', '.join(TASK_TYPES)}, got {task_type!r}")
        if shown < 1:
            raise UserError(f"azr_task: shown must be at least 1, got {shown}")
        self.task_type, self.shown = task_type, shown

    def parse(self, rollout: Rollout) -> Problem | str:
        info = rollout.verdict.info if rollout.verdict else {}
        if not (rollout.verdict and rollout.verdict.passed):
            return f"not a valid proposal ({info.get('status', 'no verdict')})"
        meta: dict[str, Any] = {"task_type": self.task_type, "program": info["program"]}
        if self.task_type == "induction":
            pairs = info["pairs"]
            if len(pairs) <= self.shown:
                return f"{len(pairs)} input/output pairs leave none hidden (shown: {self.shown})"
            meta |= {"message": info["message"], "shown": shown_pairs(pairs[: self.shown]),
                     "hidden": pairs[self.shown :]}  # fmt: skip
        else:
            meta |= {"input": info["input"], "output": info["output"]}
        return Problem("", "", meta["output"] if self.task_type == "deduction" else None, meta)
