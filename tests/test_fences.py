"""The one code-fence extractor: its rule, and linear time on the texts that made the old regexes backtrack."""

from __future__ import annotations

import time

import pytest

from selfimprove.parsers.fences import Block, FenceError, fenced_blocks, last_block


def test_blocks_in_order_with_their_languages():
    text = "intro ```python\na = 1\n```\n```\nbare\n```\nmid ```Input  extra words\n1, 2\n```\n```py\nb```"
    assert fenced_blocks(text) == [
        Block("python", "a = 1\n"),
        Block("", "bare\n"),
        Block("input", "1, 2\n"),
        Block("python", "b"),  # py reads as python; the closing fence may end a line
    ]
    assert fenced_blocks(text, ["input"]) == [Block("input", "1, 2\n")]
    assert fenced_blocks(text, ["PYTHON3"]) == [Block("python", "a = 1\n"), Block("python", "b")]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("no fence at all", []),
        ("```python\nnever closed", []),
        ("```python", []),  # no line after the opening fence
        ("inline ```code``` only\n", []),  # an info string with a backtick opens nothing
        ("```a``` then ```python\nx\n```", [Block("python", "x\n")]),
        ("```python\r\nx = 1\r\n```", [Block("python", "x = 1\r\n")]),
        ("```python\none\n```python\ntwo\n```", [Block("python", "one\n")]),  # a fence closes, then opens nothing
    ],
)
def test_edges(text, expected):
    assert fenced_blocks(text) == expected


def test_last_block_prefers_the_languages_then_untagged():
    assert last_block("```python\ntagged\n```\n```\nbare\n```", ["python"]) == "tagged\n"
    assert last_block("```text\nout\n```\n```\nbare\n```", ["python"]) == "bare\n"
    assert last_block("```\nbare\n```", ["python"], untagged=False) is None
    assert last_block("```text\nout\n```", ["python"]) is None


@pytest.mark.parametrize(
    "text",
    [
        "```" + " " * 200_000 + "x" * 200_000,  # the backtracking case of the old regexes (28,000 each took 8-10 s)
        "```python\n" + "`" * 400_000,
        "``` ```" * 100_000 + "\n",
        "```\n" * 100_000,
        ("```" + " " * 1000 + "\n") * 400,
    ],
)
def test_linear_time_on_hostile_text(text):
    start = time.perf_counter()
    fenced_blocks(text)
    last_block(text, ["python"])
    assert time.perf_counter() - start < 0.5


def test_length_is_capped():
    with pytest.raises(FenceError, match="longer than 10"):
        fenced_blocks("x" * 11, max_chars=10)
