"""Verification records (``selfimprove verify``'s input, ``selfimprove.testing``'s cases) as Rollouts."""

from __future__ import annotations

from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Rollout

# Keys with a place of their own in a Rollout; every other key goes into ``Rollout.meta`` (code: ``tests``,
# executor: ``input``, a plugin's own fields).
OWN_KEYS = {"id", "completion", "answer", "prompt", "meta"}


def rollout_from_record(record: Any, where: str, default_id: str) -> Rollout:
    """``{"id", "completion", "answer"?, "prompt"?, ...}`` as a Rollout; bad records raise UserError at ``where``."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if not isinstance(record.get("completion"), str):
        raise UserError(f"{where}: needs a string 'completion'")
    prompt = record.get("prompt", [])
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not all(isinstance(m, dict) and "content" in m for m in prompt):
        raise UserError(f"{where}: 'prompt' must be a string or a list of chat messages ({{role, content}})")
    meta = record.get("meta", {})
    if not isinstance(meta, dict):
        raise UserError(f"{where}: 'meta' must be an object")
    rid = str(record.get("id", default_id))
    answer = record.get("answer")
    return Rollout(
        id=rid,
        role="verify",
        problem_id=rid,
        prompt=prompt,
        completion=record["completion"],
        answer=None if answer is None else str(answer),
        meta={**meta, **{k: v for k, v in record.items() if k not in OWN_KEYS}},
    )
