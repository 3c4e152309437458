"""Supervised fine-tuning on selected examples with TRL's SFTTrainer (loss on completion tokens only)."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

from selfimprove.errors import UserError
from selfimprove.progress import track
from selfimprove.records import Example
from selfimprove.updaters import UpdateContext


class SFT:
    """SFT on prompt/completion pairs, completion-only loss (STaR, ReST-EM's M-step)."""

    def __init__(
        self,
        learning_rate: float = 2e-4,
        epochs: float = 1.0,
        max_steps: int | None = None,
        steps_growth: float = 1.0,
        batch_size: int = 8,
        gradient_accumulation_steps: int = 1,
        max_length: int = 1024,
        lr_scheduler: str = "constant",
        warmup: float = 0.0,
        weight_decay: float = 0.0,
        save_steps: int = 25,
    ):
        if learning_rate <= 0 or epochs <= 0 or batch_size < 1:
            raise UserError("sft: learning_rate and epochs must be positive, batch_size at least 1")
        self.learning_rate, self.epochs, self.max_steps, self.steps_growth = (
            learning_rate,
            epochs,
            max_steps,
            steps_growth,
        )
        self.batch_size, self.gradient_accumulation_steps, self.max_length = (
            batch_size,
            gradient_accumulation_steps,
            max_length,
        )
        self.lr_scheduler, self.warmup, self.weight_decay, self.save_steps = (
            lr_scheduler,
            warmup,
            weight_decay,
            save_steps,
        )

    def update(self, ctx: UpdateContext) -> dict[str, float]:
        import torch
        from datasets import Dataset
        from transformers import PrinterCallback, set_seed
        from trl import SFTConfig, SFTTrainer

        from selfimprove.models.loading import load_for_training, load_tokenizer

        # STaR grows the number of steps by a constant factor each outer iteration.
        growth = self.steps_growth ** max(ctx.iteration - 1, 0)
        per_step = self.batch_size * self.gradient_accumulation_steps
        if self.max_steps:
            total = round(self.max_steps * growth) * per_step
        else:
            total = math.ceil(len(ctx.examples) * self.epochs * growth / per_step) * per_step
        rows = [
            {"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.completion}]}
            for e in epoch_order(ctx.examples, total, ctx.seed)
        ]
        cuda = torch.cuda.is_available()
        config = SFTConfig(
            output_dir=str(ctx.work_dir),
            learning_rate=self.learning_rate,
            num_train_epochs=1,
            train_sampling_strategy="sequential",  # the order is ours: see epoch_order
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            max_length=self.max_length,
            lr_scheduler_type=self.lr_scheduler,
            warmup_steps=self.warmup,
            weight_decay=self.weight_decay,
            completion_only_loss=True,
            gradient_checkpointing=False,
            bf16=cuda,
            use_cpu=not cuda,
            seed=ctx.seed,
            data_seed=ctx.seed,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=1,
            logging_steps=1,
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        tokenizer = load_tokenizer(ctx.base)
        set_seed(ctx.seed)  # before the adapter is created: LoRA's A matrices are drawn at random
        model = load_for_training(ctx.base, ctx.adapter, ctx.init)
        trainer = SFTTrainer(
            model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
        )
        trainer.remove_callback(PrinterCallback)  # our progress bar replaces the printed log dicts
        losses: list[float] = []
        resume = last_complete_checkpoint(ctx.work_dir)
        start = time.perf_counter()
        steps = total // per_step
        tokens_per_step = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) / steps
        with track(f"update {ctx.iteration}", steps, ctx.show_progress) as tracker:
            trainer.add_callback(_progress_callback(tracker, losses, tokens_per_step))
            trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        trainer.model.save_pretrained(ctx.output_dir)
        tokenizer.save_pretrained(ctx.output_dir)
        return {
            "loss": sum(losses[-10:]) / max(len(losses[-10:]), 1),
            "steps": trainer.state.global_step,
            "examples": len(ctx.examples),
            "seconds": time.perf_counter() - start,
            "resumed_from_step": int(resume.name.split("-")[1]) if resume else 0,
        }


def epoch_order(examples: list[Example], total: int, seed: int) -> list[Example]:
    """``total`` examples as successive seeded shuffles of the data (one per epoch), laid out in advance.

    The Trainer then reads them in order, so resuming from a checkpoint only has to skip the batches
    already seen, and a resumed update ends with exactly the weights of an uninterrupted one, without
    depending on how the Trainer's own sampler replays its shuffles.
    """
    rng = random.Random(seed)
    out: list[Example] = []
    while len(out) < total:
        epoch = list(examples)
        rng.shuffle(epoch)
        out.extend(epoch)
    return out[:total]


def last_complete_checkpoint(work_dir: Path) -> Path | None:
    """The newest Trainer checkpoint that was fully written; a kill mid-save leaves one without a valid state file.

    The Trainer writes ``trainer_state.json`` last, so its presence (and validity) marks a complete checkpoint.
    """
    complete = []
    for path in work_dir.glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text())
            complete.append((int(path.name.split("-")[1]), path))
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
    return max(complete)[1] if complete else None


def _progress_callback(tracker: Any, losses: list[float], tokens_per_step: float) -> Any:
    """A TrainerCallback that drives the rich progress bar and collects losses."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            tracker.reset(total=state.max_steps, completed=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            tracker.advance(1, round(tokens_per_step))

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    return Progress()
