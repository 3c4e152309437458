"""The records that flow through the loop and land in the run directory as JSONL.

Every record has an ``id`` unique within its file, and rollouts carry the
``role`` that produced them, so self-play methods (a proposer and a solver in one
iteration) share one record type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Messages = list[dict[str, str]]


@dataclass
class Problem:
    """One task instance: a question and, when the source has one, its reference answer."""

    id: str
    question: str
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """A verifier's judgement of one rollout. ``info`` says why (parsed answer, error, ...)."""

    score: float
    passed: bool
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rollout:
    """One generated completion for one problem, by one role."""

    id: str
    role: str
    problem_id: str
    prompt: Messages
    completion: str
    answer: str | None = None
    train_prompt: Messages | None = None  # what the update sees, when it differs from ``prompt`` (STaR's hint)
    num_tokens: int = 0
    verdict: Verdict | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # the problem's meta: unit tests, program input, ...
    entropy: float | None = None  # mean per-token policy entropy of the completion, in nats

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rollout:
        verdict = data.get("verdict")
        return cls(**{**data, "verdict": Verdict(**verdict) if verdict else None})


@dataclass
class Example:
    """A selected training example: the prompt the update sees and the target completion.

    One record type serves every updater: SFT reads ``completion`` (and ``weight``); preference
    updaters (DPO, SPIN) also read ``rejected``; policy-gradient updaters read ``reward`` and
    ``group``, the key their baseline is computed over (GRPO: the problem; AZR: task type x role).
    """

    id: str
    prompt: Messages
    completion: str
    weight: float = 1.0
    role: str = ""
    rejected: str | None = None
    reward: float | None = None
    group: str | None = None
