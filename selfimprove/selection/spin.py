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
            real = real_response(r, self.real, "spin")
            if real.strip() == r.completion.strip():
                continue
            examples.append(Example(r.id, r.train_prompt or r.prompt, real, role=r.role, rejected=r.completion))
        return examples


def real_response(rollout: Rollout, field: str, selector: str) -> str:
    """The problem's real response, from its meta field ``field``; a user error naming the fields it has when not."""
    real = rollout.meta.get(field)
    if not isinstance(real, str) or not real.strip():
        fields = ", ".join(sorted(rollout.meta)) or "none"
        raise UserError(
            f"{selector}: problem {rollout.problem_id} has no real response in field '{field}' (its fields: {fields}); "
            "set selector.real to the field that holds it"
        )
    return real


class Real:
    """The problems' real responses as SFT examples, one per problem: SPIN's control, one more epoch of plain SFT on
    the same data (Chen et al., 2024, Table 3). The generations only name the problems; they are not trained on."""

    def __init__(self, real: str = "full_solution"):
        if not real:
            raise UserError("real: real must name the problem field that holds the real response")
        self.real = real

    def select(self, rollouts: list[Rollout]) -> list[Example]:
        firsts = {r.problem_id: r for r in reversed(rollouts)}  # one per problem: its first rollout
        return [
            Example(f"{r.problem_id}/real", r.train_prompt or r.prompt, real_response(r, self.real, "real"))
            for r in sorted(firsts.values(), key=rollouts.index)
        ]
