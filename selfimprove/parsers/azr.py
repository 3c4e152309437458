"""Absolute Zero's formats (Zhao et al., 2025, arXiv 2505.03335) as the reference code reads them (``paper`` branch:
``rewards/custom_evaluate.py``, ``rewards/code_reward.py``, ``rewards/reward_managers.py``), and the parser that turns
a validated proposal into a solver's problem.

Every AZR completion reasons in ``<think>...</think>`` and answers in ``<answer>...</answer>``; the answer holds
fenced blocks: ``python`` (a program), ``input``, ``output``, ``message``. Three task types, as the paper names them:

- deduction: given a program and an input, predict the output (a buffer of triplets program, input, output);
- abduction: given a program and an output, give an input that produces it (the same triplets);
- induction: given input/output pairs and a message, write the program (a program with several pairs).

The reference keeps two questions apart. *Is it well formed* (``well_formed``): the text, stripped, matches
``<think>.*?</think>\\s*<answer>.*?</answer>`` from its start (``re.match``, not a full match: text after
``</answer>`` is allowed); it decides between -1 and the role's reward. *What does it say* (``answer``): the text
after the last ``<answer>`` up to the next ``</answer>`` (or the end), empty without an ``<answer>``; the blocks are
read from that, whether or not the completion is well formed, so a valid program still joins the buffer and a
learnability sample still counts when the frame is broken.

Everything here is linear in the text: plain ``str.find`` scans, the project's fence extractor
(``selfimprove.parsers.fences``), and one regular expression whose only repetition, ``\\s*`` after a ``</think>``,
never overlaps itself between two matches.
"""

from __future__ import annotations

import re
from typing import Any

from selfimprove.errors import UserError
from selfimprove.parsers.fences import FENCE, FenceError, fenced_blocks
from selfimprove.records import Problem, Rollout

TASK_TYPES = ("deduction", "abduction", "induction")
_THINK_THEN_ANSWER = re.compile(r"</think>\s*<answer>")


def well_formed(completion: str) -> bool:
    """The reference's format rule: ``<think>.*?</think>\\s*<answer>.*?</answer>`` matched at the start of the
    stripped text. The prompt may end with the opening ``<think>`` (the paper's template), so a completion that
    starts inside the reasoning counts too. Lazy ``.*?`` means: the first ``</think>`` followed by ``<answer>``, and a
    ``</answer>`` somewhere after it (a later ``</think><answer>`` could only leave less text for ``</answer>``)."""
    text = completion.strip()
    found = _THINK_THEN_ANSWER.search(text, 7 if text.startswith("<think>") else 0)
    return found is not None and text.find("</answer>", found.end()) >= 0


def answer(completion: str) -> str | None:
    """The reference's ``extract_answer``: the text after the last ``<answer>`` up to the next ``</answer>`` (or the
    end), stripped; None without an ``<answer>``."""
    start = completion.rfind("<answer>")
    if start < 0:
        return None
    start += len("<answer>")
    end = completion.find("</answer>", start)
    return completion[start : end if end >= 0 else len(completion)].strip()


def fences(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of ``text`` in order, as (language, body stripped), by the project's one extractor (an
    unclosed fence ends the scan; ``py`` reads as ``python``); none for a text too long to scan."""
    try:
        return [(block.language, block.body.strip()) for block in fenced_blocks(text)]
    except FenceError:
        return []


def blocks(text: str, tag: str) -> list[str]:
    """The bodies of the ``tag`` fenced blocks of ``text``, in order."""
    return [body for kind, body in fences(text) if kind == tag]


def parse_proposal(text: str, task_type: str, inputs: int = 10) -> dict[str, Any] | str:
    """A proposer's program and input (deduction, abduction: the first fenced block, which must be ``python`` or
    untagged, and the first ``input`` block), or the last ``inputs`` input blocks and the first message block
    (induction), read from ``text`` (the answer, or during seeding the whole completion); else why not."""
    found = fences(text)
    if task_type == "induction":
        given = [body for kind, body in found if kind == "input"]
        message = next((body for kind, body in found if kind == "message"), None)
        if len(given) < inputs or message is None:
            return f"expected {inputs} input blocks and a message block, got {len(given)} and {int(bool(message))}"
        return {"inputs": given[-inputs:], "message": message}
    program = found[0] if found else None
    given = next((body for kind, body in found if kind == "input"), None)
    if program is None or program[0] not in ("python", "") or given is None:
        return "expected a python block first and an input block"
    return {"program": program[1], "input": given}


def parse_solution(completion: str, task_type: str, open_block: bool = False) -> str | None:
    """A solver's answer, as the reference reads it from the answer text: the last ``output`` block (deduction) or
    ``input`` block (abduction), else the whole answer text; the last ``python`` or untagged block (induction). None
    when there is no ``<answer>`` (or, induction, no code block). ``open_block`` (not the reference's rule) reads a
    block the answer text ends inside as closed there: a small model often ends its turn right after the value."""
    body = answer(completion)
    if body is None:
        return None
    # A fence added after the text closes an open block; after a closed one it opens nothing (no line follows it).
    scanned = body + "\n" + FENCE if open_block else body
    if task_type == "induction":
        code = [text for kind, text in fences(scanned) if kind in ("python", "")]
        return code[-1] if code else None
    found = blocks(scanned, "output" if task_type == "deduction" else "input")
    return found[-1] if found else body


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
