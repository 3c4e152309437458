"""Keep verified-correct rollouts: STaR's and ReST-EM's filter."""

from __future__ import annotations

from collections import defaultdict

from selfimprove.errors import UserError
from selfimprove.records import Example, Rollout


class Correct:
    """Verified-correct rollouts only, at most ``max_per_prompt`` per problem, duplicates dropped."""

    def __init__(self, max_per_prompt: int | None = None, dedupe: bool = True):
        if max_per_prompt is not None and max_per_prompt < 1:
            raise UserError(f"correct: max_per_prompt must be at least 1, got {max_per_prompt}")
        self.max_per_prompt = max_per_prompt
        self.dedupe = dedupe

    def select(self, rollouts: list[Rollout]) -> list[Example]:
        kept: dict[str, list[Example]] = defaultdict(list)
        seen: set[tuple[str, str]] = set()
        for r in rollouts:
            if not (r.verdict and r.verdict.passed):
                continue
            text = r.completion.strip()
            if self.dedupe and (r.problem_id, text) in seen:
                continue
            if self.max_per_prompt is not None and len(kept[r.problem_id]) >= self.max_per_prompt:
                continue
            seen.add((r.problem_id, text))
            kept[r.problem_id].append(Example(r.id, r.train_prompt or r.prompt, r.completion, role=r.role))
        return [e for examples in kept.values() for e in examples]
