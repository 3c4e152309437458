"""The training loop shared by the policy-gradient updaters (GRPO, REINFORCE++, PPO).

The loop trains on rollouts that were already generated and verified. It

1. tokenizes each example as chat-templated prompt + completion (+ end of turn);
2. scores the completions once, without gradients: log-probs under the policy that generated them (the
   importance ratio's denominator), under the reference (for KL), and the critic's values (PPO);
3. turns rewards into per-token advantages (the subclass: group baselines, whitening, GAE);
4. runs ``epochs`` passes over the batch in shuffled minibatches, one optimizer step per minibatch, each
   split into micro-batches by a token budget whose gradients accumulate.

Every minibatch's loss weights are computed for the whole minibatch before it is split (see
``objectives.losses``), so the gradient does not depend on how it is split into micro-batches or over
processes: under ``accelerate launch`` each process takes a share of every minibatch and DDP averages the
gradients, which gives the single-process update.

An update killed midway restarts from scratch when the run resumes (nothing is kept in ``work_dir``): a
policy-gradient update is a few optimizer steps on one batch, cheap next to generating that batch.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from selfimprove.errors import UserError
from selfimprove.objectives.kl import Estimator, kl_estimate
from selfimprove.objectives.losses import Aggregation, clipped_policy_loss, sequence_weights
from selfimprove.progress import track
from selfimprove.prompts import render_chat
from selfimprove.records import Example
from selfimprove.updaters import UpdateContext


@dataclass
class RolloutBatch:
    """The batch after step 2 and 3: per-token tensors (N, C), right-padded to the longest completion."""

    prompts: list[list[int]]
    completions: list[list[int]]
    pad_id: int
    mask: torch.Tensor
    rewards: torch.Tensor
    groups: list[str]
    old_logps: torch.Tensor | None  # None: a single on-policy step, the current log-probs detached
    ref_logps: torch.Tensor | None = None
    old_values: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None


class Actor(torch.nn.Module):
    """The policy (and PPO's value head on its last hidden state) as one module, so DDP sees every parameter."""

    def __init__(self, policy: Any, temperature: float = 1.0, value_head: torch.nn.Module | None = None):
        super().__init__()
        self.policy, self.temperature, self.value_head = policy, temperature, value_head
        model = policy.get_base_model() if hasattr(policy, "get_base_model") else policy  # PEFT or plain
        text = model.config.get_text_config()
        # Models that scale or soft-cap their logits go through their own forward, which knows how.
        plain_head = not any(getattr(text, k, None) for k in ("final_logit_softcapping", "logit_scale"))
        self.split = (model.get_decoder(), model.get_output_embeddings()) if plain_head else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        completion_ids: torch.Tensor,
        mask: torch.Tensor,
        detach_values: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs (B, C) of the completion tokens (0 on padding), and the critic's values if any.

        Prompts are left-padded and completions right-padded, so the completion is predicted from the last
        C + 1 positions. Only its real tokens go through the LM head, in chunks (see ``token_logps``).
        """
        c = completion_ids.size(1)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
        if self.split is None:
            out = self.policy(**inputs, logits_to_keep=c + 1, output_hidden_states=True, use_cache=False)
            logits = out.logits[:, :-1].float() / self.temperature
            logps = (logits.gather(-1, completion_ids[..., None]).squeeze(-1) - logits.logsumexp(-1)) * mask
            hidden = out.hidden_states[-1][:, -(c + 1) : -1]
        else:
            backbone, head = self.split
            hidden = backbone(**inputs, use_cache=False).last_hidden_state[:, -(c + 1) : -1]
            valid = mask.bool()
            per_token = token_logps(head, hidden[valid], completion_ids[valid], self.temperature)
            logps = torch.zeros(mask.shape, dtype=per_token.dtype, device=mask.device).masked_scatter(valid, per_token)
        if self.value_head is None:
            return logps, None
        hidden = hidden.float()
        return logps, self.value_head(hidden.detach() if detach_values else hidden).squeeze(-1)


def token_logps(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, chunk: int | None = None
) -> torch.Tensor:
    """``log softmax(head(hidden) / T)[target]`` for (N, H) hidden states, without holding all N x V logits.

    Beyond ``chunk`` tokens (default: 256 MB of float32 logits) the tokens go in chunks, each recomputed in the
    backward pass (activation checkpointing) instead of kept: a large vocabulary (Qwen's 152k) would otherwise
    dominate memory.
    """
    chunk = chunk or max(1, 2**26 // head.weight.size(0))
    if hidden.size(0) <= chunk:
        return _chunk_logps(head, hidden, targets, temperature)
    from torch.utils.checkpoint import checkpoint

    parts = []
    for s in range(0, hidden.size(0), chunk):
        args = (head, hidden[s : s + chunk], targets[s : s + chunk], temperature)
        parts.append(checkpoint(_chunk_logps, *args, use_reentrant=False) if torch.is_grad_enabled() else
                     _chunk_logps(*args))  # fmt: skip
    return torch.cat(parts)


def _chunk_logps(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    logits = head(hidden).float() / temperature
    return logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(-1)


def tokenize(
    tokenizer: Any, example: Example, max_prompt_length: int, max_completion_length: int
) -> tuple[list[int], list[int]]:
    """Prompt through the chat template (its last ``max_prompt_length`` tokens), completion + end of turn."""
    prompt = tokenizer(render_chat(tokenizer, example.prompt), add_special_tokens=False)["input_ids"]
    completion = tokenizer(example.completion + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    return prompt[-max_prompt_length:], completion[:max_completion_length]


def collate(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts followed by right-padded completions, with positions that skip the padding."""
    p, c = max(map(len, prompts)), max(map(len, completions))
    ids, attention, comp, mask = [], [], [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        pad_left, pad_right = p - len(prompt), c - len(completion)
        ids.append([pad_id] * pad_left + prompt + completion + [pad_id] * pad_right)
        attention.append([0] * pad_left + [1] * (len(prompt) + len(completion)) + [0] * pad_right)
        comp.append(completion + [pad_id] * pad_right)
        mask.append([1] * len(completion) + [0] * pad_right)
    attention_mask = torch.tensor(attention)
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": attention_mask,
        "position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0),
        "completion_ids": torch.tensor(comp),
        "mask": torch.tensor(mask, dtype=torch.float32),
    }


def pad_rows(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    return torch.stack([torch.nn.functional.pad(r, (0, width - r.numel())) for r in rows])


def micro_batches(indices: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Pack ``indices`` into micro-batches whose padded size (rows x longest row) stays within ``max_tokens``.

    Sorting by length first keeps padding low; a single row longer than the budget gets a micro-batch of its own.
    """
    out: list[list[int]] = []
    for i in sorted(indices, key=lambda i: lengths[i]):
        if out and (len(out[-1]) + 1) * lengths[i] <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


class PolicyGradient:
    """Shared options and loop; subclasses define ``advantages`` (and PPO adds a critic)."""

    name = "policy-gradient"
    uses_critic = False

    def __init__(
        self,
        learning_rate: float = 1e-6,
        epochs: int = 1,
        mini_batch_size: int | None = None,
        max_tokens_per_micro_batch: int = 8192,
        max_prompt_length: int = 1024,
        max_completion_length: int = 1024,
        epsilon: float = 0.2,
        epsilon_high: float | None = None,
        beta: float = 0.0,
        kl_estimator: Estimator = "k3",
        loss_aggregation: Aggregation = "seq-mean-token-mean",
        temperature: float = 1.0,
        max_grad_norm: float | None = 1.0,
        weight_decay: float = 0.0,
    ):
        if learning_rate <= 0 or epochs < 1 or (mini_batch_size is not None and mini_batch_size < 1):
            raise UserError(f"{self.name}: learning_rate must be positive, epochs and mini_batch_size at least 1")
        if epsilon <= 0 or beta < 0 or temperature <= 0 or max_tokens_per_micro_batch < 1:
            raise UserError(
                f"{self.name}: epsilon, temperature, max_tokens_per_micro_batch must be positive, beta >= 0"
            )
        self.learning_rate, self.epochs, self.mini_batch_size = learning_rate, epochs, mini_batch_size
        self.max_tokens = max_tokens_per_micro_batch
        self.max_prompt_length, self.max_completion_length = max_prompt_length, max_completion_length
        self.epsilon, self.epsilon_high = epsilon, epsilon_high
        self.beta, self.kl_estimator, self.loss_aggregation = beta, kl_estimator, loss_aggregation
        self.temperature, self.max_grad_norm, self.weight_decay = temperature, max_grad_norm, weight_decay

    # -- what subclasses define ------------------------------------------------------------------------------
    def needs_reference(self) -> bool:
        return self.beta > 0

    def advantages(self, batch: RolloutBatch) -> None:
        """Fill ``batch.advantages`` (N, C) (and, with a critic, ``batch.returns``)."""
        raise NotImplementedError

    def value_head(self, policy: Any, init: str | None) -> torch.nn.Module | None:
        return None

    def critic_loss(self, values: torch.Tensor, batch: RolloutBatch, rows: list[int], weights: torch.Tensor) -> Any:
        return None

    def save_extra(self, actor: Actor, ctx: UpdateContext, steps: int) -> None:
        """Save what the checkpoint needs besides the policy (PPO: the value head)."""

    def warming_up(self, step: int) -> bool:
        """True while only the critic trains (PPO's critic warm-up); ``step`` counts this update's steps."""
        return False

    # -- the loop --------------------------------------------------------------------------------------------
    def update(self, ctx: UpdateContext) -> dict[str, float]:
        from accelerate import Accelerator
        from transformers import set_seed

        from selfimprove.models.loading import load_for_training, load_tokenizer

        if ctx.init != ctx.previous:
            raise UserError(
                f"updater {self.name} trains on-policy, from the checkpoint that generated the rollouts: "
                "set loop.init: previous"
            )
        if any(e.reward is None for e in ctx.examples):
            raise UserError(f"updater {self.name} needs rewarded examples: use selector scored")
        start = time.perf_counter()
        cuda = torch.cuda.is_available()
        accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda else "no")
        tokenizer = load_tokenizer(ctx.base)
        pairs = [tokenize(tokenizer, e, self.max_prompt_length, self.max_completion_length) for e in ctx.examples]
        prompts, completions = [p for p, _ in pairs], [c for _, c in pairs]
        pad_id = tokenizer.pad_token_id

        reference = None
        if self.needs_reference() and ctx.adapter.type == "full":
            # Full fine-tuning has no adapter to switch off: score with the base model once, before the policy
            # is loaded, so the two are never in memory together.
            base = Actor(load_for_training(ctx.base, ctx.adapter, None), self.temperature)
            reference = self._score(accelerator, base, prompts, completions, pad_id)[0]
            del base
        set_seed(ctx.seed)  # before the adapter and the value head are created
        policy = load_for_training(ctx.base, ctx.adapter, ctx.init)
        _disable_dropout(policy)
        actor = Actor(policy, self.temperature, self.value_head(policy, ctx.init))
        batch, metrics = self.fit(accelerator, actor, ctx, prompts, completions, pad_id, reference)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(actor)
            unwrapped.policy.save_pretrained(ctx.output_dir)
            tokenizer.save_pretrained(ctx.output_dir)
            self.save_extra(unwrapped, ctx, int(metrics["steps"]))
        accelerator.wait_for_everyone()
        del actor, policy
        accelerator.free_memory()  # the generator loads the new policy next: leave it the GPU memory
        return {
            **metrics,
            "examples": len(ctx.examples),
            "mean_reward": batch.rewards.mean().item(),
            "reward_std": batch.rewards.std().item() if len(ctx.examples) > 1 else 0.0,
            "seconds": time.perf_counter() - start,
        }

    def fit(
        self,
        accelerator: Any,
        actor: Actor,
        ctx: UpdateContext,
        prompts: list[list[int]],
        completions: list[list[int]],
        pad_id: int,
        reference: list[torch.Tensor] | None = None,
    ) -> tuple[RolloutBatch, dict[str, float]]:
        """Score the rollouts, compute advantages and train the loaded ``actor``: the update without I/O."""
        old_logps = old_values = None
        if self.needs_old_scores(len(prompts)):
            old_logps, old_values = self._score(accelerator, actor, prompts, completions, pad_id)
        if self.needs_reference() and reference is None:
            with actor.policy.disable_adapter():  # LoRA's reference is the base model, without a second copy
                reference = self._score(accelerator, actor, prompts, completions, pad_id)[0]
        width = max(map(len, completions))
        batch = RolloutBatch(
            prompts, completions, pad_id, pad_rows([torch.ones(len(c)) for c in completions], width),
            torch.tensor([float(e.reward) for e in ctx.examples]), [e.group or e.id for e in ctx.examples],
            pad_rows(old_logps, width) if old_logps is not None else None,
            pad_rows(reference, width) if reference is not None else None,
            pad_rows(old_values, width) if old_values is not None else None,
        )  # fmt: skip
        self.advantages(batch)
        return batch, self._train(accelerator, actor, batch, ctx)

    def needs_old_scores(self, n: int) -> bool:
        """Whether the data's log-probs must be computed before training. A single step on the whole batch
        sees the weights that generated it, so its old log-probs are the current ones, detached (as in TRL)."""
        return self.uses_critic or self.epochs > 1 or (self.mini_batch_size or n) < n

    @torch.no_grad()
    def _score(
        self, accelerator: Any, actor: Actor, prompts: list[list[int]], completions: list[list[int]], pad_id: int
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Log-probs (and values) of every completion, each process scoring a share, gathered to all."""
        from accelerate.utils import gather_object

        actor = actor.to(accelerator.device).eval()
        lengths = [len(p) + len(c) for p, c in zip(prompts, completions, strict=True)]
        mine = list(range(accelerator.process_index, len(prompts), accelerator.num_processes))
        scored: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []
        for rows in micro_batches(mine, lengths, self.max_tokens):
            inputs = collate([prompts[i] for i in rows], [completions[i] for i in rows], pad_id)
            with accelerator.autocast():
                logps, values = actor(**_model_inputs(inputs, accelerator.device))
            for k, i in enumerate(rows):
                n = len(completions[i])
                scored.append((i, logps[k, :n].cpu(), None if values is None else values[k, :n].float().cpu()))
        if accelerator.num_processes > 1:
            scored = gather_object(scored)
        scored.sort(key=lambda s: s[0])
        logps_out = [s[1] for s in scored]
        return logps_out, None if scored[0][2] is None else [s[2] for s in scored]

    def _optimizer(self, actor: Actor) -> torch.optim.Optimizer:
        groups = [{"params": [p for p in actor.policy.parameters() if p.requires_grad], "lr": self.learning_rate}]
        if actor.value_head is not None:
            groups.append({"params": list(actor.value_head.parameters()), "lr": self.critic_learning_rate})
        return torch.optim.AdamW(groups, weight_decay=self.weight_decay)

    def _train(self, accelerator: Any, actor: Actor, batch: RolloutBatch, ctx: UpdateContext) -> dict[str, float]:
        optimizer = self._optimizer(actor)
        actor.train()
        actor, optimizer = accelerator.prepare(actor, optimizer)
        world, rank = accelerator.num_processes, accelerator.process_index
        n = len(batch.prompts)
        size = self.mini_batch_size or n
        lengths = [len(p) + len(c) for p, c in zip(batch.prompts, batch.completions, strict=True)]
        completion_lengths = batch.mask.sum(-1)
        steps = self.epochs * math.ceil(n / size)
        rng = random.Random(ctx.seed)
        totals = torch.zeros(5, dtype=torch.float64)  # policy loss, kl sum, clipped tokens, tokens, value loss
        step = 0
        tokens = int(sum(lengths))
        with track(f"update {ctx.iteration}", steps, ctx.show_progress and accelerator.is_main_process) as tracker:
            for _ in range(self.epochs):
                order = list(range(n))
                rng.shuffle(order)
                for first in range(0, n, size):
                    minibatch = order[first : first + size]
                    weights = torch.zeros(n)
                    weights[minibatch] = sequence_weights(
                        completion_lengths[minibatch], self.loss_aggregation, self.max_completion_length
                    )
                    value_weights = torch.zeros(n)
                    value_weights[minibatch] = 1.0 / completion_lengths[minibatch].sum()
                    warm = self.warming_up(step)
                    # a share of the minibatch per process; equal micro-batch counts keep DDP's all-reduces paired
                    parts = micro_batches(minibatch[rank::world], lengths, self.max_tokens)
                    count = int(accelerator.gather(torch.tensor([len(parts)], device=accelerator.device)).max())
                    parts += [[]] * (count - len(parts))
                    for k, rows in enumerate(parts):
                        sync = k == count - 1
                        with nullcontext() if sync else accelerator.no_sync(actor):
                            scale = 1.0 if rows else 0.0  # an empty share: a zero-weight pass for DDP
                            with accelerator.autocast():
                                loss, stats = self.loss(
                                    actor, batch, rows or minibatch[:1], weights * scale, value_weights * scale, warm
                                )
                            # DDP averages gradients over processes, and the weights are the whole minibatch's:
                            # scale the sum back up
                            accelerator.backward(loss * world)
                            totals += stats
                    if self.max_grad_norm:
                        accelerator.clip_grad_norm_(actor.parameters(), self.max_grad_norm)
                    self._set_actor_lr(optimizer, 0.0 if warm else self.learning_rate)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    tracker.advance(1, round(tokens * len(minibatch) / n))
        totals = accelerator.reduce(totals.to(accelerator.device), reduction="sum").cpu()
        metrics = {
            "loss": totals[0].item() / step,
            "clip_fraction": totals[2].item() / max(totals[3].item(), 1),
            "steps": step,
            "tokens": tokens,
        }
        if batch.ref_logps is not None:
            metrics["kl"] = totals[1].item() / max(totals[3].item(), 1)
        if self.uses_critic:
            metrics["value_loss"] = totals[4].item() / step
        return metrics

    def loss(
        self,
        actor: Any,
        batch: RolloutBatch,
        rows: list[int],
        weights: torch.Tensor,
        value_weights: torch.Tensor | None = None,
        warm: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of micro-batch ``rows`` under the minibatch's per-sequence ``weights`` (N,), and its share of
        the metric sums: policy loss, KL x tokens, clipped tokens, tokens, value loss."""
        device = next(actor.parameters()).device
        inputs = collate([batch.prompts[i] for i in rows], [batch.completions[i] for i in rows], batch.pad_id)
        c = inputs["completion_ids"].size(1)
        mask = inputs["mask"].to(device)
        w = weights[rows].to(device)[:, None] * mask
        logps, values = actor(**_model_inputs(inputs, device), detach_values=warm)
        old = logps.detach() if batch.old_logps is None else batch.old_logps[rows, :c].to(device)
        per_token, clipped = clipped_policy_loss(
            logps, old, batch.advantages[rows, :c].to(device), self.epsilon, self.epsilon_high
        )
        kl = torch.zeros_like(logps)
        if batch.ref_logps is not None:
            kl = kl_estimate(logps, batch.ref_logps[rows, :c].to(device), self.kl_estimator)
            if self.beta > 0:
                per_token = per_token + self.beta * kl
        policy_loss = (per_token * w).sum()
        loss, value_loss = policy_loss, torch.zeros((), device=device)
        if values is not None:
            value_loss = self.critic_loss(values, batch, rows, value_weights[rows].to(device)[:, None] * mask)
            # During the critic's warm-up the policy term has weight 0: the actor gets an exact zero gradient
            # and DDP still reduces every parameter's gradient.
            loss = (0.0 if warm else 1.0) * policy_loss + self.value_coef * value_loss
        counted = mask * (weights[rows].to(device)[:, None] > 0)  # a padding micro-batch counts nothing
        stats = torch.stack([
            policy_loss.detach(), (kl.detach() * counted).sum(), (clipped.float() * counted).sum(), counted.sum(),
            value_loss.detach(),
        ]).double().cpu()  # fmt: skip
        return loss, stats

    def _set_actor_lr(self, optimizer: Any, lr: float) -> None:
        optimizer.param_groups[0]["lr"] = lr


def _model_inputs(inputs: dict[str, torch.Tensor], device: Any) -> dict[str, torch.Tensor]:
    keys = ("input_ids", "attention_mask", "position_ids", "completion_ids", "mask")
    return {k: inputs[k].to(device) for k in keys}


def _disable_dropout(model: Any) -> None:
    """Log-probs must be deterministic: the ratio compares two forward passes of the same weights."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
