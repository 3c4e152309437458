"""The records that flow through the loop and land in the run directory as JSONL.

Every record has an ``id`` unique within its file, and rollouts carry the
``role`` that produced them, so self-play methods (a proposer and a solver in one
iteration) share one record type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from selfimprove.errors import UserError

Messages = list[dict[str, str]]
# A problem, the prompt it is asked with, and the prompt an update trains on (None: the same)
Job = tuple["Problem", Messages, Messages | None]


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
    """One generated completion for one problem, by one role.

    Online runs add what the step learned about it: the verdicts of a role's further verifiers (``verdicts``, by
    label; ``verdict`` is the first verifier's), the reward and its parts from the rewards stage, and, when a later
    role could not turn it into a problem, why (``rejected``).
    """

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
    completion_ids: list[int] | None = None  # the sampled tokens, so an online update scores exactly them
    sampler_logps: list[float] | None = None  # their log-probs in the engine that sampled them (vLLM)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    reward: float | None = None  # None: no reward could be computed (see reward_error); left out of the update
    reward_parts: dict[str, float | None] = field(default_factory=dict)
    reward_error: str | None = None
    rejected: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if k not in OPTIONAL or v not in (None, {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rollout:
        verdict = data.get("verdict")
        verdicts = {k: Verdict(**v) for k, v in data.get("verdicts", {}).items()}
        return cls(**{**data, "verdict": Verdict(**verdict) if verdict else None, "verdicts": verdicts})

    def group_key(self, group_by: list[str]) -> str:
        """The key an advantage baseline is computed over: ``role``, ``problem_id`` and ``meta.<key>`` fields,
        joined (GRPO: role and problem; AZR: ``[meta.task_type, role]``)."""
        parts = []
        for key in group_by:
            if key in ("role", "problem_id"):
                parts.append(str(getattr(self, key)))
            elif key.startswith("meta.") and key[5:] in self.meta:
                parts.append(str(self.meta[key[5:]]))
            else:
                raise UserError(f"group_by '{key}': rollout {self.id} has no such field (role, problem_id, meta.*)")
        return "/".join(parts)


# Rollout fields left out of its JSON while unset, so offline records stay as they were.
OPTIONAL = {"completion_ids", "sampler_logps", "verdicts", "reward", "reward_parts", "reward_error", "rejected"}


@dataclass
class Example:
    """A selected training example: the prompt the update sees and the target completion.

    One record type serves every updater: SFT reads ``completion``; preference updaters (DPO, SPIN) also read
    ``rejected``; policy-gradient updaters read ``reward``, ``group``, the key their baseline is computed over (GRPO:
    the problem; AZR: task type x role), and ``weight``, the loss weight of the example's role (LSP's alpha).
    """

    id: str
    prompt: Messages
    completion: str
    weight: float = 1.0
    role: str = ""
    rejected: str | None = None
    reward: float | None = None
    group: str | None = None
    completion_ids: list[int] | None = None  # the sampled tokens (online runs), else the text is tokenized
    sampler_logps: list[float] | None = None  # the sampling engine's log-probs of them, when it is not the trainer
