"""Fenced code blocks (```` ```python ... ``` ````) in model-written text: the one extractor for the whole project.

The rule: an opening fence is three backticks, anywhere on a line, followed by an info string up to the end of
that line; its first word, lower-cased, is the block's language (``py`` and ``python3`` read as ``python``; none:
``""``), and an info string holding a backtick opens nothing. The block's body is everything from the next line
up to the next three backticks, wherever they stand; scanning goes on after them. An opening fence that is never
closed gives no block.

Hand-written rather than a regular expression: the patterns this replaces (``` ```[ \\t]*(\\w+)?[ \\t]*\\n(.*?)``` ```)
backtrack, and a completion of a fence, 28,000 spaces and no closing fence took them 8-10 s. This is one forward
scan with ``str.find``: each character is looked at a bounded number of times, so the time is linear in a text
whose length is capped besides (``MAX_CHARS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

FENCE = "```"
MAX_CHARS = 1 << 22  # characters of text scanned; a longer text raises FenceError
ALIASES = {"py": "python", "python3": "python", "py3": "python"}


class FenceError(ValueError):
    """The text is too long to scan."""


class Block(NamedTuple):
    language: str  # the info string's first word, lower-cased, aliases resolved; "" without one
    body: str


def fenced_blocks(text: str, languages: Iterable[str] | None = None, max_chars: int = MAX_CHARS) -> list[Block]:
    """The fenced blocks of ``text`` in order; with ``languages``, only those whose language is one of them
    (``""`` for untagged ones; names are read through ``ALIASES``)."""
    if len(text) > max_chars:
        raise FenceError(f"text longer than {max_chars} characters")
    wanted = None if languages is None else {_language(name) for name in languages}
    blocks = []
    line_end = -1  # the end of the line that holds position ``at``, found once per line
    at = text.find(FENCE)
    while at >= 0:
        info_start = at + len(FENCE)
        if line_end < info_start:
            line_end = text.find("\n", info_start)
            if line_end < 0:
                break  # an opening fence needs a line after it
        if text.find("`", info_start, line_end) >= 0:  # not an opening fence; a later one on this line may be
            at = text.find(FENCE, info_start)
            continue
        info = text[info_start:line_end]
        close = text.find(FENCE, line_end + 1)
        if close < 0:
            break  # never closed, and no fence follows that could open another block
        language = _language(info.split(maxsplit=1)[0] if info.strip() else "")
        if wanted is None or language in wanted:
            blocks.append(Block(language, text[line_end + 1 : close]))
        at = text.find(FENCE, close + len(FENCE))
    return blocks


def last_block(text: str, languages: Iterable[str], untagged: bool = True, max_chars: int = MAX_CHARS) -> str | None:
    """The body of the last block in one of ``languages``; failing that (and with ``untagged``), of the last
    untagged block; else None."""
    languages = tuple(languages)
    blocks = fenced_blocks(text, (*languages, ""), max_chars)
    tagged = [block.body for block in blocks if block.language]
    bare = [block.body for block in blocks if not block.language] if untagged else []
    return (tagged or bare or [None])[-1]


def _language(name: str) -> str:
    name = name.lower()
    return ALIASES.get(name, name)
