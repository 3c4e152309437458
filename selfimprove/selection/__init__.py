"""Selectors turn verified rollouts into training examples (filters, pairs, advantages)."""

from __future__ import annotations

from typing import Protocol

from selfimprove.records import Example, Rollout


class Selector(Protocol):
    def select(self, rollouts: list[Rollout]) -> list[Example]: ...
