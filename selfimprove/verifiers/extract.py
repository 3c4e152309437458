"""Pulling the answer out of a completion: the helpers verifiers share, exported to plugins by selfimprove.api."""

from __future__ import annotations

import re

from selfimprove.parsers.fences import fenced_blocks, last_block
from selfimprove.verifiers.numeric import last_number

_ANSWER_IS = re.compile(r"(?:answer is|answer:|####)\s*:?\s*(.+)", re.IGNORECASE)


def _boxed_at(text: str, start: int) -> str | None:
    """The contents of the ``\\boxed{`` at ``start``, nested braces balanced; None when they never close."""
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}``, with nested braces balanced."""
    start = text.rfind("\\boxed{")
    return None if start < 0 else _boxed_at(text, start)


def first_boxed(text: str) -> tuple[int, str] | None:
    """Where the first ``\\boxed{...}`` starts and its contents (RLSP grades only the first box, and the reasoning
    is the text before it); None without one, or when its braces never close."""
    start = text.find("\\boxed{")
    if start < 0:
        return None
    contents = _boxed_at(text, start)
    return None if contents is None else (start, contents)


def final_answer(text: str) -> str | None:
    """The stated final answer: the last ``\\boxed{}``, else what follows the last "The answer is", "Answer:" or
    "####" on its line (a trailing full stop dropped); None when the completion states none."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    matches = _ANSWER_IS.findall(text)
    return matches[-1].strip().removesuffix(".").strip() if matches else None


def extract_final_number(text: str) -> float | None:
    """The number in the stated final answer, else the last number in the text."""
    stated = final_answer(text)
    number = last_number(stated) if stated is not None else None
    return number if number is not None else last_number(text)


def last_code_block(text: str, language: str | None = "python") -> str | None:
    """The last fenced code block tagged ``language``, else the last untagged one, else (and with
    ``language=None``) the last block of any language; None without one. The project's one fence rule
    (``selfimprove.parsers.fences``)."""
    found = last_block(text, [language]) if language else None
    blocks = fenced_blocks(text) if found is None else []
    return found if found is not None else blocks[-1].body if blocks else None
