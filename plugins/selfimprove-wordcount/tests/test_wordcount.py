"""The plugin's own tests: selfimprove's contract test, then its behaviour pinned on hand-counted texts."""

from __future__ import annotations

import pytest
from selfimprove_wordcount import WordCount

from selfimprove.api import Rollout, UserError
from selfimprove.testing import check_verifier

ARGS = {"min_words": 3, "max_words": 8, "keywords": ["light"]}


def test_contract():
    records = [
        {"id": "ok", "completion": "Plants turn light into sugar.", "expect": True},  # 5 words, has "light"
        {"id": "long", "completion": "Plants turn light into sugar, water and air too.", "expect": False},  # 9
        {"id": "no-keyword", "completion": "Plants make sugar.", "expect": False},
    ]
    check_verifier(WordCount, records, ARGS)


@pytest.mark.parametrize(
    "text, words, missing, score",
    [
        ("Light it up", 3, [], 1.0),
        ("It's well-lit: LIGHT!", 3, [], 1.0),  # contractions and hyphens are one word; case is ignored
        ("Sunlight helps", 2, ["light"], 0.0),  # a keyword is a whole word, and 2 < min_words
        ("one two three four", 4, ["light"], 0.5),
    ],
)
def test_counts(text, words, missing, score):
    (verdict,) = WordCount(**ARGS).verify([Rollout("r", "solver", "p", [], text)])
    assert verdict.info == {"words": words, "missing": missing} and verdict.score == score


def test_bad_limits():
    with pytest.raises(UserError, match="min_words <= max_words"):
        WordCount(min_words=5, max_words=2)
