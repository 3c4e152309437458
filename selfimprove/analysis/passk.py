"""pass@k curves: does training raise pass@k at every k, or only at small k while the base model keeps the lead at
large k (the "bounded by the base model" check of the self-play and RLVR analyses)?"""

from __future__ import annotations

from collections.abc import Sequence

from selfimprove.eval.evaluate import passed
from selfimprove.eval.metrics import pass_at_k
from selfimprove.records import Rollout


def counts(samples: Sequence[Rollout]) -> list[tuple[int, int]]:
    """(n, c) per problem, in first-seen order."""
    by_problem: dict[str, list[int]] = {}
    for r in samples:
        nc = by_problem.setdefault(r.problem_id, [0, 0])
        nc[0] += 1
        nc[1] += passed(r)
    return [(n, c) for n, c in by_problem.values()]


def curve_ks(n: int, largest: int = 256) -> list[int]:
    """1, 2, 4, ... up to min(n, largest), and that bound itself: the k of a log-scale curve."""
    top = min(n, largest)
    ks = [1 << i for i in range(top.bit_length()) if 1 << i <= top]
    return ks if ks[-1] == top else [*ks, top]


def curve(problem_counts: Sequence[tuple[int, int]], ks: Sequence[int]) -> list[float]:
    """Mean pass@k over problems for each k (every problem needs n >= k)."""
    if not problem_counts:
        return [float("nan")] * len(ks)
    return [sum(pass_at_k(n, c, k) for n, c in problem_counts) / len(problem_counts) for k in ks]
