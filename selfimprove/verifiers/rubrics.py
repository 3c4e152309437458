"""Rubric prompts for the LLM judge. Most ask for a final ``<Score>k</Score>`` line, which ``parse_score`` reads; the
RLSP effort rubric asks for a JSON object with a ``grade`` (``parse_grade``).

Template fields: ``{question}`` (the prompt's last user message), ``{completion}``, ``{answer}`` (the reference,
or "(none)").
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rubric:
    template: str
    max_score: int
    description: str
    answer: str = "score"  # how the judge answers: "score" (<Score>k</Score>) or "grade" (JSON {"grade": x})


# LSP's self-reward (Kuba et al., 2025, Box 3), adapted there from Self-Rewarding Language Models: seven additive
# criteria, the first two about the instruction itself, which keeps a self-playing challenger's queries sensible.
# Our own wording of the same criteria.
ADDITIVE_7 = """\
Review the user's instruction and the assistant's response below, and score the pair with this additive \
rubric. Start from 0 and add one point for each criterion that holds:

1. The task the instruction asks for can be identified.
2. The instruction is clear and specific enough to act on.
3. The user can understand the response.
4. The response addresses a significant part of the instruction.
5. The response answers the instruction usefully and thoroughly.
6. The response is clear, concise and well organised.
7. The user will like the response's form and style.

<Instruction>
{question}
</Instruction>

<Response>
{completion}
</Response>

First check each criterion in turn inside <Calculation>...</Calculation>, then give the total, an integer \
from 0 to 7, as <Score>total</Score> on the last line."""

REFERENCE = """\
Decide whether the response below reaches the same final answer as the reference answer. Ignore differences \
of wording, formatting and units; the reasoning need not match, only the final answer.

<Question>
{question}
</Question>

<Reference>
{answer}
</Reference>

<Response>
{completion}
</Response>

Explain briefly, then write <Score>1</Score> if the final answers agree or <Score>0</Score> if they do not, \
on the last line."""

# RLSP's thinking-effort grader (Ye et al., 2025; its reward server asks gpt-4o-mini): how much genuine exploration
# the reasoning shows, explicitly not whether it is right. Our own wording of the same criteria.
EFFORT = """\
Grade how much thinking effort the response below shows while working on the problem. Judge only the \
reasoning, not whether the final answer is correct. Higher grades go to reasoning that tries more than one \
strategy, goes into depth, checks and revises its own steps, explores creatively and persists when a step fails; \
lower grades to reasoning that jumps to an answer or repeats itself.

<Problem>
{question}
</Problem>

<Response>
{completion}
</Response>

Answer with one JSON object and nothing after it: {{"rationale": "<one or two sentences>", "grade": <a number \
from 0 to 1>}}"""

# A response-only quality grade, for a reward-model stand-in where no reward model is at hand (the CPU LSP recipes):
# unlike additive7, it does not grade the instruction.
HELPFUL_10 = """\
Score how well the response below answers the instruction, from 0 (useless or wrong) to 10 (correct, complete and \
clear). Judge only the response.

<Instruction>
{question}
</Instruction>

<Response>
{completion}
</Response>

Explain in one sentence, then write the score as <Score>n</Score> on the last line."""

RUBRICS: dict[str, Rubric] = {
    "additive7": Rubric(ADDITIVE_7, 7, "LSP's 0-7 additive self-reward over instruction and response quality"),
    "reference": Rubric(REFERENCE, 1, "1 when the response's final answer agrees with the reference, else 0"),
    "helpful10": Rubric(HELPFUL_10, 10, "0-10 quality of the response alone (a stand-in for a reward model)"),
    "effort": Rubric(EFFORT, 1, "RLSP's thinking effort of the reasoning, 0 to 1, ignoring correctness", "grade"),
}

_SCORE = re.compile(r"<score>\s*(-?\d+(?:\.\d+)?)\s*</score>", re.IGNORECASE)


def parse_score(text: str, max_score: float) -> float | None:
    """The last ``<Score>k</Score>`` in ``text`` when 0 <= k <= max_score; None when there is none or it is out
    of range (a judge that writes 9 on a 0-7 rubric has not followed it)."""
    found = _SCORE.findall(text)
    if not found:
        return None
    score = float(found[-1])
    return score if 0 <= score <= max_score else None


_GRADE = re.compile(r"\{[^{}]*\"grade\"[^{}]*\}", re.DOTALL)


def parse_grade(text: str, max_score: float) -> float | None:
    """The ``grade`` of the last JSON object that has one, when it is a number in 0..max_score; None otherwise."""
    import json

    for candidate in reversed(_GRADE.findall(text)):
        try:
            grade = json.loads(candidate)["grade"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(grade, int | float) and not isinstance(grade, bool) and 0 <= grade <= max_score:
            return float(grade)
        return None
    return None
