"""Updaters: how the policy learns from what the loop selected or rewarded.

Offline updaters (``sft``, ``dpo``) train on a whole iteration's examples and write a standard checkpoint
(``Updater.update``). Online updaters (``grpo``, ``reinforce_pp``, ``ppo``; ``online = True``) are objectives of the
live trainer (``selfimprove.training.trainer``): one update per step of an online run, on the live policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from selfimprove.config.schema import Adapter
from selfimprove.records import Example


@dataclass
class UpdateContext:
    base: str  # base model folder or hub id
    adapter: Adapter
    init: str | None  # checkpoint to start from; None = the base model
    examples: list[Example]
    output_dir: Path  # where the final checkpoint goes (PEFT adapter or HF model folder)
    work_dir: Path  # scratch space for resumable trainer state; may hold state from a killed attempt
    seed: int
    iteration: int
    previous: str | None = None  # the checkpoint that generated this iteration's data (None = the base model)
    show_progress: bool = True
    processes: int = 1  # processes sharing the update (accelerate launch): each takes its part of every batch


class Updater(Protocol):
    def update(self, ctx: UpdateContext) -> dict[str, float]:
        """Train, save the checkpoint into ``ctx.output_dir``, and return metrics (loss, steps, ...)."""
        ...
