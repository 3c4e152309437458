"""Preference optimization on chosen/rejected pairs through TRL's DPOTrainer (DPO, and SPIN's self-play loss).

The log-ratios are taken against a reference model (``reference``):

- ``previous``: the checkpoint that generated this iteration's data, SPIN's opponent. With LoRA and
  ``init: previous`` that is the adapter training starts from: TRL keeps a frozen copy of it as a second
  adapter, named ``ref``, on the same base weights. With ``init: base`` the previous adapter is loaded as
  that second adapter.
- ``base``: the base model. With LoRA the adapters are switched off for the reference pass, so no second
  copy of anything is held.

With full fine-tuning, a reference equal to the starting weights is scored once before training
(``precompute_ref_log_probs``), so no second model is held either; any other reference is loaded as a
second, frozen model.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from selfimprove.errors import UserError
from selfimprove.progress import track
from selfimprove.records import Example
from selfimprove.tokens import encode_completion, encode_prompt
from selfimprove.updaters import UpdateContext
from selfimprove.updaters.sft import (
    _progress_callback,
    epoch_order,
    last_complete_checkpoint,
    loop_trainer_settings,
    per_device,
)

# TRL 1.16's ``DPOConfig.loss_type`` values (checked here, at recipe validation, without importing TRL).
LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip


@dataclass(frozen=True)
class ReferencePlan:
    """How the reference log-probs are obtained (see the module docstring).

    ``how``: ``disable`` (LoRA, adapters off), ``copy`` (LoRA, TRL's frozen copy of the starting adapter),
    ``adapter`` (LoRA, ``path`` loaded as a frozen second adapter), ``policy`` (full, the starting weights
    scored before training), ``model`` (full, ``path`` or the base loaded as a second model).
    """

    how: Literal["disable", "copy", "adapter", "policy", "model"]
    path: str | None = None


def plan_reference(adapter_type: str, reference: str, init: str | None, previous: str | None) -> ReferencePlan:
    """``init`` and ``previous`` are checkpoints (None = the base model)."""
    from selfimprove.models.loading import is_adapter

    target = previous if reference == "previous" else None
    if adapter_type == "full":
        return ReferencePlan("policy") if target == init else ReferencePlan("model", target)
    if target is None:
        return ReferencePlan("disable")
    if not is_adapter(target):
        raise UserError(f"dpo: reference '{reference}' is a full checkpoint ({target}); a LoRA update needs an adapter")
    return ReferencePlan("copy") if target == init else ReferencePlan("adapter", target)


class DPO:
    """Preference pairs (``completion`` chosen over ``rejected``) with TRL's DPO losses: DPO, SPIN, IPO, ...

    ``loss_type`` is one of TRL's (``sigmoid`` is DPO and SPIN's logistic loss; ``hinge``, ``ipo``, ``robust``,
    ...), or a list combined with ``loss_weights``. Log-probs are summed over the completion's tokens.
    """

    def __init__(
        self,
        beta: float = 0.1,
        loss_type: str | list[str] = "sigmoid",
        loss_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
        reference: Literal["previous", "base"] = "previous",
        learning_rate: float = 1e-6,
        epochs: float = 1.0,
        max_steps: int | None = None,
        batch_size: int = 8,
        gradient_accumulation_steps: int = 1,
        max_length: int = 1024,
        optimizer: str = "adamw_torch",
        lr_scheduler: str = "constant",
        warmup: float = 0.0,
        weight_decay: float = 0.0,
        gradient_checkpointing: bool = False,
        save_steps: int = 25,
    ):
        losses = [loss_type] if isinstance(loss_type, str) else list(loss_type)
        unknown = [t for t in losses if t not in LOSS_TYPES]
        if unknown or not losses:
            raise UserError(f"dpo: unknown loss_type {unknown or losses}; choose from {', '.join(LOSS_TYPES)}")
        if loss_weights is not None and len(loss_weights) != len(losses):
            raise UserError(f"dpo: {len(loss_weights)} loss_weights for {len(losses)} loss types")
        if beta <= 0 or learning_rate <= 0 or epochs <= 0:
            raise UserError(f"dpo: beta, learning_rate, epochs must be positive, got {beta}, {learning_rate}, {epochs}")
        if batch_size < 1 or gradient_accumulation_steps < 1 or max_length < 2:
            raise UserError("dpo: batch_size and gradient_accumulation_steps must be at least 1, max_length at least 2")
        if max_steps is not None and max_steps < 1:
            raise UserError(f"dpo: max_steps must be at least 1, got {max_steps}")
        self.beta, self.losses, self.loss_weights, self.label_smoothing = beta, losses, loss_weights, label_smoothing
        self.reference = reference
        self.learning_rate, self.epochs, self.max_steps = learning_rate, epochs, max_steps
        self.batch_size, self.gradient_accumulation_steps = batch_size, gradient_accumulation_steps
        self.max_length, self.optimizer, self.lr_scheduler = max_length, optimizer, lr_scheduler
        self.warmup, self.weight_decay = warmup, weight_decay
        self.gradient_checkpointing, self.save_steps = gradient_checkpointing, save_steps

    def config(self, ctx: UpdateContext, precompute: bool) -> Any:
        from trl import DPOConfig

        try:
            return DPOConfig(
                **loop_trainer_settings(ctx, self.save_steps),
                beta=self.beta,
                loss_type=self.losses,
                loss_weights=self.loss_weights,
                label_smoothing=self.label_smoothing,
                max_length=self.max_length,
                precompute_ref_log_probs=precompute,
                learning_rate=self.learning_rate,
                per_device_train_batch_size=per_device(self.batch_size, ctx, "dpo"),
                gradient_accumulation_steps=self.gradient_accumulation_steps,
                optim=self.optimizer,
                lr_scheduler_type=self.lr_scheduler,
                warmup_steps=self.warmup,
                weight_decay=self.weight_decay,
                gradient_checkpointing=self.gradient_checkpointing,
            )
        except ValueError as exc:  # an optimizer or scheduler name transformers does not know, ...
            raise UserError(f"dpo: {exc}") from None

    def trainer(self, ctx: UpdateContext) -> tuple[Any, ReferencePlan, int]:
        """TRL's trainer on this update's pairs, its reference in place; and the number of optimizer steps."""
        from transformers import PrinterCallback, set_seed

        from selfimprove.models import Policy
        from selfimprove.models.loading import load_for_inference, load_for_training, load_tokenizer

        missing = [e.id for e in ctx.examples if e.rejected is None]
        if missing:
            raise UserError(
                f"dpo: {len(missing)} examples have no rejected completion (first: {missing[0]}); "
                "use a selector that makes pairs, such as spin"
            )
        plan = plan_reference(ctx.adapter.type, self.reference, ctx.init, ctx.previous)
        per_step = self.batch_size * self.gradient_accumulation_steps
        steps = self.max_steps or math.ceil(len(ctx.examples) * self.epochs / per_step)
        tokenizer = load_tokenizer(ctx.base)
        rows = [tokenize_pair(tokenizer, e) for e in epoch_order(ctx.examples, steps * per_step, ctx.seed)]
        longest = max(len(r["prompt_ids"]) for r in rows)
        if longest >= self.max_length:  # TRL's collator would cut the pair's completions away entirely
            raise UserError(f"dpo: a prompt has {longest} tokens, max_length is {self.max_length}; raise max_length")
        from datasets import Dataset

        set_seed(ctx.seed)  # before the adapter is created: LoRA's A matrices are drawn at random
        model = load_for_training(ctx.base, ctx.adapter, ctx.init)
        ref_model = load_for_inference(Policy(ctx.base, plan.path)) if plan.how == "model" else None
        with _quiet_tqdm():  # TRL's bar while it scores the reference (precompute)
            trainer = _trainer_class()(
                model=model,
                ref_model=ref_model,
                args=self.config(ctx, precompute=plan.how == "policy"),
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
            )
        if plan.how in ("disable", "adapter"):  # TRL made "ref" a copy of the starting adapter; replace it
            trainer.model.delete_adapter("ref")
        if plan.how == "adapter":
            trainer.model.load_adapter(plan.path, adapter_name="ref", is_trainable=False)
            trainer.model.set_adapter("default")
        trainer.remove_callback(PrinterCallback)  # our progress bar replaces the printed log dicts
        return trainer, plan, steps

    def update(self, ctx: UpdateContext) -> dict[str, float]:
        trainer, plan, steps = self.trainer(ctx)
        losses: list[float] = []
        logs: list[dict[str, float]] = []
        resume = last_complete_checkpoint(ctx.work_dir)
        start = time.perf_counter()
        tokens = sum(
            2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in trainer.train_dataset
        )
        with track(f"update {ctx.iteration}", steps, ctx.show_progress) as tracker:
            trainer.add_callback(_progress_callback(tracker, losses, tokens / steps))
            trainer.add_callback(_log_callback(logs))
            trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        if trainer.args.should_save:  # the main process alone: the loop commits the directory once it returns
            # leave the reference adapter out of the checkpoint
            adapters = {"selected_adapters": ["default"]} if plan.how in ("copy", "adapter") else {}
            trainer.model.save_pretrained(ctx.output_dir, **adapters)
            trainer.processing_class.save_pretrained(ctx.output_dir)
        recent = logs[-10:]

        def mean(key: str) -> float:
            values = [log[key] for log in recent if key in log]
            return sum(values) / max(len(values), 1)

        return {
            "loss": sum(losses[-10:]) / max(len(losses[-10:]), 1),
            "reward_margin": mean("rewards/margins"),
            "reward_accuracy": mean("rewards/accuracies"),
            "steps": trainer.state.global_step,
            "examples": len(ctx.examples),  # pairs
            "seconds": time.perf_counter() - start,
            "resumed_from_step": int(resume.name.split("-")[1]) if resume else 0,
        }


def tokenize_pair(tokenizer: Any, example: Example) -> dict[str, list[int]]:
    """Prompt through the chat template (as the generator saw it), each completion + end-of-turn, as in SFT."""
    return {
        "prompt_ids": encode_prompt(tokenizer, example.prompt),
        "chosen_ids": encode_completion(tokenizer, example.completion),
        "rejected_ids": encode_completion(tokenizer, example.rejected or ""),
    }


def _trainer_class() -> type:
    from trl import DPOTrainer

    class PairsTrainer(DPOTrainer):
        """DPOTrainer on pairs we tokenized ourselves.

        DPOTrainer always re-tokenizes its dataset (``_prepare_dataset``): text prompts through the tokenizer
        with its special tokens (a second BOS on Llama-style templates), or messages through the chat template
        including the end of the assistant turn. Our pairs are tokenized exactly as the generator saw the prompt
        and as the SFT updater trains, so that step is skipped; TRL's collator truncates to ``max_length``.

        A step costs about 1.2x a bare PyTorch DPO step on CPU (benchmarks/dpo_step.py, SmolLM2-135M with LoRA,
        4 pairs of 133 tokens: 42.7 vs 36.6 s, measured under load); the difference is mostly its LM head also
        computing entropy and logged metrics. That is kept for TRL's losses, reference handling and checkpoints.
        """

        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset

    return PairsTrainer


@contextlib.contextmanager
def _quiet_tqdm() -> Iterator[None]:
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TQDM_DISABLE"]
        else:
            os.environ["TQDM_DISABLE"] = old


def _log_callback(records: list[dict[str, float]]) -> Any:
    """Keeps every training log (loss, rewards/margins, rewards/accuracies, ...)."""
    from transformers import TrainerCallback

    class Logs(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                records.append({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})

    return Logs()
