"""pass@k and maj@k from ``n`` samples per problem.

Both are the expectation, over a uniformly drawn k-subset of the ``n`` samples, of "the subset solves the problem"
(pass@k: any sample is correct, Chen et al., 2021) or "the subset's majority answer is correct" (maj@k, Wang et al.,
2023; Lewkowycz et al., 2022). Computing the expectation over all subsets instead of scoring the first ``k`` samples
makes both unbiased and lets one set of ``n`` samples report every ``k <= n``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k), as the product 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms
    the huge binomials (Chen et al., 2021, "Evaluating Large Language Models Trained on Code")."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def maj_at_k(votes: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> float:
    """Expected majority-vote correctness of a random k-subset of the samples.

    ``votes[i]`` is sample i's final answer (``None``: it gave none and does not vote); ``correct[i]`` is the
    verifier's verdict. Samples the verifier passes count as one answer, the reference. The subset's answer is its
    most frequent vote; a tie for the most votes is broken uniformly at random, so a correct answer tied with ``t``
    others earns 1/(t+1).

    Exact: counts subsets by how many votes the reference gets (x) and, with a polynomial over the wrong answers,
    how many ways the rest of the subset leaves every wrong answer at most x votes and how many reach exactly x.
    """
    n = len(votes)
    if len(correct) != n or not 1 <= k <= n:
        raise ValueError(f"maj@k needs one verdict per vote and 1 <= k <= n, got n={n} k={k}")
    c = sum(map(bool, correct))
    wrong = Counter(v for v, ok in zip(votes, correct, strict=True) if not ok and v is not None)
    abstain = n - c - sum(wrong.values())
    total = 0.0
    for x in range(1, min(c, k) + 1):
        # ways[s][t]: choices of s wrong samples with every wrong answer at most x votes, t of them tied at x
        ways: dict[tuple[int, int], int] = {(0, 0): 1}
        for m in wrong.values():
            nxt: dict[tuple[int, int], int] = {}
            for (s, t), w in ways.items():
                for y in range(0, min(m, x, k - x - s) + 1):
                    key = (s + y, t + (y == x))
                    nxt[key] = nxt.get(key, 0) + w * comb(m, y)
            ways = nxt
        rest = k - x
        won = sum(w * comb(abstain, rest - s) / (t + 1) for (s, t), w in ways.items() if rest - s <= abstain)
        total += comb(c, x) * won
    return total / comb(n, k)
