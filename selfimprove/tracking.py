"""Optional metric backends (TensorBoard, Weights & Biases): every line of ``metrics.jsonl`` is also sent to them.

Off by default and never required: ``logging: {tensorboard: true}`` in a recipe turns one on, and a missing package
is a clear error at the start of the run, not an import failure halfway through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfimprove.config.schema import Logging
from selfimprove.errors import UserError


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """``{"stage": "eval:gsm8k", "pass@4": 0.5}`` -> ``{"eval:gsm8k/pass@4": 0.5}``: the numbers of one record."""
    return {
        f"{record['stage']}/{key}": float(value)
        for key, value in record.items()
        if key not in ("stage", "iteration", "step") and isinstance(value, int | float) and not isinstance(value, bool)
    }


class Trackers:
    def __init__(self, config: Logging, run_dir: Path, recipe: dict[str, Any]):
        problems = config.missing_packages()
        if problems:
            raise UserError("; ".join(f"logging.{backend}: {msg}" for backend, msg in problems.items()))
        self.tensorboard = self.wandb = None
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if config.wandb:
            import wandb

            self.wandb = wandb.init(
                project=config.wandb_project, name=run_dir.name, dir=str(run_dir), config=recipe, resume="allow"
            )

    def log(self, record: dict[str, Any]) -> None:
        values = scalars(record)
        step = record["step"] if "step" in record else record["iteration"]
        if self.tensorboard:
            for key, value in values.items():
                self.tensorboard.add_scalar(key, value, step)
            self.tensorboard.flush()
        if self.wandb:
            self.wandb.log({**values, "step" if "step" in record else "iteration": step})

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
        if self.wandb:
            self.wandb.finish()
