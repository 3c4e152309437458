"""Response length against problem difficulty, difficulty being the base model's solve rate on the problem.

Do trained models write longer solutions for the problems the base model found hard, and where does the length
change come from?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from selfimprove.eval.evaluate import passed
from selfimprove.records import Rollout


@dataclass
class Bin:
    low: float
    high: float
    problems: int
    base_tokens: float | None  # mean response length of the base model on these problems
    tokens: float | None  # ... and of the compared model


def solve_rates(rollouts: Sequence[Rollout]) -> dict[str, float]:
    runs: dict[str, list[bool]] = {}
    for r in rollouts:
        runs.setdefault(r.problem_id, []).append(passed(r))
    return {pid: sum(v) / len(v) for pid, v in runs.items()}


def mean_tokens(rollouts: Sequence[Rollout]) -> dict[str, float]:
    lengths: dict[str, list[int]] = {}
    for r in rollouts:
        lengths.setdefault(r.problem_id, []).append(r.num_tokens)
    return {pid: sum(v) / len(v) for pid, v in lengths.items()}


def length_vs_difficulty(base: Sequence[Rollout], other: Sequence[Rollout], bins: int = 5) -> list[Bin]:
    """Problems binned by the base solve rate into ``bins`` equal intervals of [0, 1] (the last one closed)."""
    rate = solve_rates(base)
    base_len, other_len = mean_tokens(base), mean_tokens(other)
    grouped: list[list[str]] = [[] for _ in range(bins)]
    for pid, r in rate.items():
        grouped[min(int(r * bins), bins - 1)].append(pid)
    out = []
    for i, pids in enumerate(grouped):
        mine = [other_len[p] for p in pids if p in other_len]
        out.append(Bin(
            i / bins, (i + 1) / bins, len(pids),
            sum(base_len[p] for p in pids) / len(pids) if pids else None,
            sum(mine) / len(mine) if mine else None,
        ))  # fmt: skip
    return out
