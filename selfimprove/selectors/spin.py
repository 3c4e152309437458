"""SPIN's pairs (Chen et al., 2024, arXiv 2401.01335): the data's real response against the model's own."""

from __future__ import annotations

from selfimprove.errors import UserError
from selfimprove.records import Example, Rollout


class SPIN:
    """One pair per generated rollout: chosen = the problem's real response, rejected = the generation.

    The real response is read from the problem's meta under ``real`` (GSM8K: ``full_solution``, the human
    solution with its ``#### N`` line). No verifier is involved: SPIN uses every pair. A generation identical to
    the real response is left out, since its pair has no gradient.
    """

    def __init__(self, real: str = "full_solution"):
        if not real:
            raise UserError("spin: real must name the problem field that holds the real response")
        self.real = real

    def select(self, rollouts: list[Rollout]) -> list[Example]:
        examples = []
        for r in rollouts:
            real = r.meta.get(self.real)
            if not isinstance(real, str) or not real.strip():
                fields = ", ".join(sorted(r.meta)) or "none"
                raise UserError(
                    f"spin: problem {r.problem_id} has no real response in field '{self.real}' (its fields: {fields}); "
                    "set selector.real to the field that holds it"
                )
            if real.strip() == r.completion.strip():
                continue
            examples.append(Example(r.id, r.train_prompt or r.prompt, real, role=r.role, rejected=r.completion))
        return examples
