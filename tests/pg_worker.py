"""Two online steps of GRPO and of PPO on fixed examples; launched by test_pg_distributed.py, alone or under
torchrun with two processes. Usage: pg_worker.py MODEL OUT_DIR"""

from __future__ import annotations

import sys
from pathlib import Path

from selfimprove.config.schema import Adapter
from selfimprove.records import Example
from selfimprove.training.trainer import Trainer
from selfimprove.updaters.grpo import GRPO
from selfimprove.updaters.ppo import PPO


def examples(step: int) -> list[Example]:
    # uneven lengths, so the two processes' shares split into different numbers of micro-batches
    return [
        Example(f"e{i}", [{"role": "user", "content": f"{i % 3} + {i} = ?"}], "7" * (1 + 3 * (i % 4)),
                reward=float((i + step) % 2), group=f"p{i % 3}", role="solver")
        for i in range(10)
    ]  # fmt: skip


def main(model: str, out: Path) -> None:
    objectives = {
        "grpo": GRPO(learning_rate=1e-2, epochs=2, mini_batch_size=5, max_tokens_per_micro_batch=40),
        "ppo": PPO(learning_rate=1e-2, critic_learning_rate=1e-2, critic_warmup_steps=1, epochs=2,
                   max_tokens_per_micro_batch=40),
    }  # fmt: skip
    for name, objective in objectives.items():
        trainer = Trainer(model, Adapter(r=4, alpha=8), objective, seed=3, total_steps=2)
        for step in range(2):
            trainer.step(examples(step), seed=step)
        trainer.save(out / name)
    if trainer.accelerator.is_main_process:  # so the test can tell that the processes did form one group
        (out / "processes").write_text(str(trainer.accelerator.num_processes))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
