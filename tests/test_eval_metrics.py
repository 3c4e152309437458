"""pass@k and maj@k against brute-force enumeration of every k-subset of the samples."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from selfimprove.eval.metrics import maj_at_k, pass_at_k


def brute_pass(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets)


def brute_maj(votes: list, correct: list[bool], k: int) -> float:
    total = 0.0
    subsets = list(itertools.combinations(range(len(votes)), k))
    for subset in subsets:
        tally = Counter("REF" if correct[i] else votes[i] for i in subset if correct[i] or votes[i] is not None)
        if not tally:
            continue
        top = max(tally.values())
        leaders = [a for a, v in tally.items() if v == top]
        total += ("REF" in leaders) / len(leaders)
    return total / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass(n, c, k), abs=1e-12)


def test_pass_at_k_hand_values_and_large_n() -> None:
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 3 of the 6 pairs hold the one correct sample
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 1, 4) == 1.0
    # the binomials here have ~300 digits; the product form stays exact to float precision
    assert pass_at_k(1024, 3, 256) == pytest.approx(1 - (768 * 767 * 766) / (1024 * 1023 * 1022))
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_maj_at_k_hand_values() -> None:
    # 2 correct and 2 of one wrong answer, all 4 drawn: a tie broken at random
    assert maj_at_k(["7", "7", "9", "9"], [True, True, False, False], 4) == pytest.approx(0.5)
    # one sample: maj@1 is the fraction correct
    assert maj_at_k(["7", "9", "8", None], [True, False, False, False], 1) == pytest.approx(0.25)
    # a sample without an answer does not vote: the single correct one wins whenever it is drawn
    assert maj_at_k(["7", None, None], [True, False, False], 2) == pytest.approx(2 / 3)
    assert maj_at_k([None, None], [False, False], 2) == 0.0


def test_maj_at_k_equals_enumeration_on_random_votes() -> None:
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 8)
        votes = [rng.choice(["a", "b", "c", None]) for _ in range(n)]
        correct = [v == "a" for v in votes]
        # a correct sample may format its answer differently ("a2"); it still votes for the reference
        votes = [v + "2" if ok and rng.random() < 0.3 else v for v, ok in zip(votes, correct, strict=True)]
        for k in range(1, n + 1):
            assert maj_at_k(votes, correct, k) == pytest.approx(brute_maj(votes, correct, k), abs=1e-12), (votes, k)
