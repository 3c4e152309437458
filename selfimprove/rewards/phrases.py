"""Whether a completion shows a behaviour, by the phrases it uses: a metric more than a reward (weight 0)."""

from __future__ import annotations

import re

from selfimprove.errors import UserError
from selfimprove.records import Rollout
from selfimprove.rewards import NoReward, StepRollouts

# Backtracking and self-verification, the behaviours RLSP reports emerging ("wait", "let me check", ...).
REFLECTION = (
    "wait", "let me check", "let me verify", "let me double-check", "double check", "alternatively",
    "on second thought", "i made a mistake", "that's not right", "let me recheck", "let me reconsider", "hmm",
)  # fmt: skip


class Phrases:
    """1.0 when the completion contains any of ``phrases`` (whole words, any case), else 0.0. With ``weight: 0`` in a
    role's rewards it changes nothing in the reward and its mean per step is the share of such completions
    (``<role>/reward:<label>`` in metrics.jsonl, a line in the report). Default phrases: backtracking and
    verification (``REFLECTION``)."""

    def __init__(self, phrases: list[str] | None = None):
        words = list(REFLECTION if phrases is None else phrases)
        if not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise UserError("phrases: give a non-empty list of non-empty phrases")
        self.pattern = re.compile("|".join(rf"\b{re.escape(w.strip())}\b" for w in words), re.IGNORECASE)

    def __call__(self, rollouts: list[Rollout], step: StepRollouts) -> list[float | NoReward]:
        return [1.0 if self.pattern.search(r.completion) else 0.0 for r in rollouts]
