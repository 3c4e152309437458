"""Pulling the answer out of a completion: the helpers verifiers share, exported to plugins by selfimprove.api."""

from __future__ import annotations

import re

from selfimprove.verifiers.numeric import last_number

_ANSWER_IS = re.compile(r"(?:answer is|answer:|####)\s*:?\s*(.+)", re.IGNORECASE)
_FENCE = re.compile(r"```([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


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
    """The last fenced code block; with ``language``, the last one tagged so (or untagged), else any last one."""
    blocks = _FENCE.findall(text)
    if language:
        tagged = [code for tag, code in blocks if tag.lower() in (language.lower(), "")]
        if tagged:
            return tagged[-1]
    return blocks[-1][1] if blocks else None
