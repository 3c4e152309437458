"""The live trainer of an online run: made once, kept for the whole run.

It owns the policy (LoRA, QLoRA or full), its optimizer and learning-rate schedule, the reference for the KL term
(LoRA: the same model with its adapter switched off; full fine-tuning: a frozen copy, loaded only when a KL term
needs it) and PPO's value head with its own optimizer. ``step`` runs one update on one step's examples;
generators sample from ``policy``, a view of the live weights, so nothing goes through the disk between steps.

One step:

1. tokenizes each example (prompt through the chat template, the sampled completion ids when the generator kept
   them);
2. scores the completions without gradients when the objective needs it: log-probs under the weights that
   generated them (the ratio's denominator), under the reference (KL), the critic's values (PPO);
3. turns rewards into per-token advantages (the objective: group baselines, whitening, GAE);
4. runs ``epochs`` passes over the step's data in shuffled minibatches, one optimizer step per minibatch, each
   split into micro-batches by a token budget whose gradients accumulate; under ``accelerate launch`` each process
   takes a share of every minibatch and DDP averages the gradients, which gives the single-process update.

With ``sharding="fsdp"`` (``trainer.sharding: fsdp`` in the recipe) the policy, the full fine-tuning reference and
PPO's value head are sharded over the processes instead (``training.sharding``): each keeps a slice of the
parameters, gradients and optimizer moments; generation gathers the weights (``TrainedPolicy.gathered``), and a
checkpoint adds the sharded state (torch.distributed.checkpoint) to the consolidated policy folder.

The learning rate follows the schedule over the run's steps (one scheduler step per online step).
"""

from __future__ import annotations

import dataclasses
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from selfimprove.config.schema import Adapter
from selfimprove.objectives.losses import importance_weights, role_sequence_weights
from selfimprove.objectives.policy_gradient import PolicyGradient, RolloutBatch
from selfimprove.records import Example
from selfimprove.tokens import collate, encode, micro_batches, model_inputs, pad_rows
from selfimprove.training import sharding as fsdp
from selfimprove.training.actor import Actor, disable_dropout
from selfimprove.training.weights import checkpoint_names

STATE = "trainer.pt"
POLICY = "policy"


class Trainer:
    def __init__(
        self, base: str, adapter: Adapter, objective: PolicyGradient, *, seed: int, total_steps: int,
        sharding: str = "none",
    ):  # fmt: skip
        from accelerate import Accelerator
        from transformers import get_scheduler, set_seed

        from selfimprove.models.loading import load_for_training, load_tokenizer

        cuda = torch.cuda.is_available()
        self.accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda else "no")
        self.base, self.adapter, self.objective, self.seed = base, adapter, objective, seed
        self.sharding = sharding  # "fsdp": checkpoints carry the sharded state, whatever the number of processes
        # sharded within a process group: one process alone keeps the whole model (nothing to shard)
        self.sharded = sharding == "fsdp" and torch.distributed.is_available() and torch.distributed.is_initialized()
        if self.sharded and objective.share_prefix:
            # each row runs the shared prompt prefix: its keys and values would reach the loss without passing through
            # its layers' outputs, where FSDP re-gathers a layer's weights for the backward pass
            self.objective = objective = dataclasses.replace(objective, share_prefix=False)
        self.tokenizer = load_tokenizer(base)
        set_seed(seed)  # before the adapter and the value head are created
        model = load_for_training(base, adapter, None)
        disable_dropout(model)
        head = objective.value_head(model.config.get_text_config().hidden_size)
        actor = Actor(model, objective.temperature, head)
        self.reference: Actor | None = None
        if objective.needs_reference() and adapter.type == "full":
            self.reference = Actor(_frozen_copy(base), objective.temperature)
        if sharding == "fsdp":
            actor.to(self.accelerator.device)  # the value head (accelerate's prepare moves it otherwise)
        if self.sharded:
            for module in filter(None, (actor, self.reference)):
                fsdp.shard(module, bf16=cuda)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizers = [torch.optim.AdamW(trainable, lr=objective.learning_rate, weight_decay=objective.weight_decay)]
        if head is not None:
            optimizers.append(torch.optim.AdamW(head.parameters(), lr=objective.critic_learning_rate))
        self.schedulers = [
            get_scheduler(objective.lr_scheduler, o, num_warmup_steps=objective.warmup_steps,
                          num_training_steps=max(total_steps, 1))
            for o in optimizers
        ]  # fmt: skip
        if sharding == "fsdp":
            self.actor, self.optimizers = actor, optimizers
        else:
            self.actor, *self.optimizers = self.accelerator.prepare(actor, *optimizers)
        self.optimizer_steps = 0  # over the whole run
        self.version = 0  # the number of updates so far: what a generator checks to see the weights moved
        self.policy = TrainedPolicy(self)

    @property
    def model(self) -> Any:
        """The policy model itself (PEFT or plain), outside any DDP wrapper."""
        return self.accelerator.unwrap_model(self.actor).policy

    @contextmanager
    def gathered(self) -> Iterator[Any]:
        """The policy model (PEFT or plain) with its whole parameters for the block: under FSDP all-gathered (in
        bf16 on CUDA) and freed after; else the model as it is. Collective: every process must enter it."""
        if not self.sharded:
            yield self.model
            return
        with fsdp.gathered(self.actor):
            yield self.model

    # -- one update ----------------------------------------------------------------------------------------------
    def step(self, examples: list[Example], seed: int) -> dict[str, float]:
        """One update on ``examples`` (rewarded, grouped, each with its role's loss weight); metrics of the update.

        Every process must call it with the same examples. No examples: no update, but the schedule still moves.
        """
        o = self.objective
        metrics: dict[str, float] = {"examples": len(examples), "lr": self.schedulers[0].get_last_lr()[0]}
        if examples:
            start = time.perf_counter()
            batch = self.score(examples)
            scoring = time.perf_counter() - start
            o.advantages(batch)
            metrics |= self._train(batch, seed)
            # the model's passes, for the share of a step spent elsewhere (on CUDA, without a sync: approximate)
            metrics["forward_backward_seconds"] = scoring + metrics.pop("passes_seconds")
            self.version += 1
        with warnings.catch_warnings():  # a step without an actor update (no examples, critic warm-up) is expected
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*optimizer.step")
            for scheduler in self.schedulers:
                scheduler.step()
        return metrics

    def score(self, examples: list[Example]) -> RolloutBatch:
        """Tokenize the examples and compute what the objective needs before training."""
        o = self.objective
        prompts, completions = [], []
        for e in examples:
            prompt, completion = encode(self.tokenizer, e.prompt, e.completion, e.completion_ids)
            prompts.append(prompt[-o.max_prompt_length :])
            completions.append(completion[: o.max_completion_length] or [self.tokenizer.eos_token_id])
        pad_id = self.tokenizer.pad_token_id
        actor = self.accelerator.unwrap_model(self.actor)
        old_logps = old_values = reference = None
        sampled_elsewhere = any(e.sampler_logps is not None for e in examples)
        if sampled_elsewhere or o.needs_old_scores(len(examples)):  # the ratio to the sampler needs ours
            old_logps, old_values = self._score(actor, prompts, completions, pad_id)
        if o.needs_reference():
            if self.reference is not None:
                reference = self._score(self.reference, prompts, completions, pad_id)[0]
            else:
                with actor.policy.disable_adapter():  # LoRA's reference is the base model, without a second copy
                    reference = self._score(actor, prompts, completions, pad_id)[0]
        width = max(map(len, completions))
        is_weights = None
        if sampled_elsewhere:  # vLLM sampled the tokens: weigh each by min(trainer / sampler, 3)
            rows = []
            for e, logps in zip(examples, old_logps, strict=True):
                weights = torch.ones_like(logps)  # a token without the sampler's log-prob keeps its weight
                if e.sampler_logps:
                    sampler = torch.tensor(e.sampler_logps[: len(logps)], dtype=logps.dtype)
                    weights[: len(sampler)] = importance_weights(logps[: len(sampler)], sampler)
                rows.append(weights)
            is_weights = pad_rows(rows, width)
        batch = RolloutBatch(
            prompts, completions, pad_id, pad_rows([torch.ones(len(c)) for c in completions], width),
            torch.tensor([float(e.reward) for e in examples]), [e.group or e.id for e in examples],
            pad_rows(old_logps, width) if old_logps is not None else None,
            pad_rows(reference, width) if reference is not None else None,
            pad_rows(old_values, width) if old_values is not None else None,
            roles=[e.role for e in examples], loss_weights=torch.tensor([float(e.weight) for e in examples]),
            is_weights=is_weights,
        )  # fmt: skip
        return batch

    @torch.no_grad()
    def _score(
        self, actor: Actor, prompts: list[list[int]], completions: list[list[int]], pad_id: int
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Log-probs (and values) of every completion, each process scoring a share, gathered to all."""
        from accelerate.utils import gather_object

        accelerator = self.accelerator
        actor.eval()
        lengths = [len(p) + len(c) for p, c in zip(prompts, completions, strict=True)]
        mine = list(range(accelerator.process_index, len(prompts), accelerator.num_processes))
        scored: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []
        o = self.objective
        grouped = prompts if o.share_prefix else None  # rows of one prompt together, to share its prefix pass
        parts = micro_batches(mine, lengths, o.max_tokens_per_micro_batch, grouped)
        if self.sharded:  # FSDP's forwards are collectives: as many on every process, the extra ones discarded
            parts += [[]] * (fsdp.pad_forward_count(len(parts), accelerator.num_processes, accelerator.device)
                             - len(parts))  # fmt: skip
        for rows in parts:
            inputs = collate([prompts[i] for i in rows or [0]], [completions[i] for i in rows or [0]], pad_id,
                             o.min_shared_prefix)  # fmt: skip
            with accelerator.autocast():
                logps, values = actor(**model_inputs(inputs, accelerator.device))
            for k, i in enumerate(rows):
                n = len(completions[i])
                scored.append((i, logps[k, :n].float().cpu(), None if values is None else values[k, :n].float().cpu()))
        if accelerator.num_processes > 1:
            scored = gather_object(scored)
        scored.sort(key=lambda s: s[0])
        return [s[1] for s in scored], None if scored[0][2] is None else [s[2] for s in scored]

    def _train(self, batch: RolloutBatch, seed: int) -> dict[str, float]:
        o, accelerator, actor = self.objective, self.accelerator, self.actor
        actor.train()
        world, rank = accelerator.num_processes, accelerator.process_index
        n = len(batch.prompts)
        size = o.mini_batch_size or n
        lengths = [len(p) + len(c) for p, c in zip(batch.prompts, batch.completions, strict=True)]
        completion_lengths = batch.mask.sum(-1)
        rng = random.Random(seed)
        # Without a KL term or a critic, a sequence whose advantages are all zero adds exactly nothing to the
        # gradient (its surrogate is 0 whatever the ratio): it is left out of the passes, while the weights of the
        # others stay those of the whole minibatch, so the update is unchanged. Early in RL most groups of a weak
        # model are all wrong, and this is most of the batch.
        silent = (
            batch.advantages.abs().sum(-1) == 0
            # with a reference: the KL metric sees every sequence
            if o.skip_zero_advantage and not o.needs_reference() and not o.uses_critic
            else torch.zeros(n, dtype=torch.bool)
        )
        totals = torch.zeros(5, dtype=torch.float64, device=accelerator.device)  # see PolicyGradient.loss
        steps, grad_norms, passes = 0, [], 0.0
        for _ in range(o.epochs):
            order = list(range(n))
            rng.shuffle(order)
            for first in range(0, n, size):
                minibatch = order[first : first + size]
                weights = torch.zeros(n)
                weights[minibatch] = role_sequence_weights(
                    completion_lengths[minibatch], [batch.roles[i] for i in minibatch], batch.loss_weights[minibatch],
                    o.loss_aggregation, o.max_completion_length, per_role=o.role_loss == "per_role",
                )  # fmt: skip
                value_weights = torch.zeros(n)
                value_weights[minibatch] = 1.0 / completion_lengths[minibatch].sum()
                warm = o.warming_up(self.version)  # PPO's critic warm-up counts rollout steps, as OpenRLHF
                # a share of the minibatch per process; equal micro-batch counts keep DDP's all-reduces paired
                active = [i for i in minibatch if not silent[i]]
                grouped = batch.prompts if o.share_prefix else None
                parts = micro_batches(active[rank::world], lengths, o.max_tokens_per_micro_batch, grouped)
                count = len(parts)
                if world > 1:
                    count = int(accelerator.gather(torch.tensor([count], device=accelerator.device)).max())
                parts += [[]] * (count - len(parts))
                for k, rows in enumerate(parts):
                    start = time.perf_counter()
                    with nullcontext() if k == count - 1 or self.sharded else accelerator.no_sync(actor):
                        scale = 1.0 if rows else 0.0  # an empty share: a zero-weight pass for DDP
                        with accelerator.autocast():
                            loss, stats = o.loss(
                                actor, batch, rows or minibatch[:1], weights * scale, value_weights * scale, warm
                            )
                        # DDP averages gradients over processes and the weights are the whole minibatch's: scale
                        # the sum back up
                        accelerator.backward(loss * world)
                        totals += stats
                    passes += time.perf_counter() - start
                if count == 0:  # nothing to learn from in this minibatch: an exact zero gradient, as a pass would give
                    for p in actor.parameters():
                        if p.requires_grad and p.grad is None:
                            p.grad = torch.zeros_like(p)
                if o.max_grad_norm and self.sharded:
                    norm = torch.nn.utils.clip_grad_norm_(actor.parameters(), o.max_grad_norm)
                    grad_norms.append(fsdp.full_norm(norm))
                elif o.max_grad_norm:
                    grad_norms.append(accelerator.clip_grad_norm_(actor.parameters(), o.max_grad_norm))
                actor_optimizer, *critic = self.optimizers
                if not warm:
                    actor_optimizer.step()
                for optimizer in critic:
                    optimizer.step()
                for optimizer in self.optimizers:
                    optimizer.zero_grad(set_to_none=True)
                steps += 1
                self.optimizer_steps += 1
        totals = accelerator.reduce(totals, reduction="sum").cpu()
        metrics = {
            "loss": totals[0].item() / steps,
            "clip_fraction": totals[2].item() / max(totals[3].item(), 1),
            "optimizer_steps": steps,
            "tokens": int(sum(lengths)),
            "passes_seconds": passes,
        }
        if grad_norms:
            metrics["grad_norm"] = torch.stack([g.float() for g in grad_norms]).mean().item()
        if batch.ref_logps is not None:
            metrics["kl"] = totals[1].item() / max(totals[3].item(), 1)
        if o.uses_critic:
            metrics["value_loss"] = totals[4].item() / steps
            metrics["critic_warmup"] = float(o.warming_up(self.version))
        return metrics

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything but the policy's weights (saved as a standard PEFT adapter or HF model folder); under
        ``sharding="fsdp"`` the optimizers and the value head are in the sharded state instead (``save``)."""
        state: dict[str, Any] = {
            "schedulers": [s.state_dict() for s in self.schedulers],
            "optimizer_steps": self.optimizer_steps,
            "version": self.version,
            "rng": rng_state(),
        }
        if self.sharding != "fsdp":
            head = self.accelerator.unwrap_model(self.actor).value_head
            state["optimizers"] = [o.state_dict() for o in self.optimizers]
            state["value_head"] = head.state_dict() if head is not None else None
        return state

    def save(self, directory: Path) -> None:
        """``directory/policy`` (PEFT adapter or HF model, with the tokenizer) and ``directory/trainer.pt``; under
        ``sharding="fsdp"`` also ``directory/sharded`` (torch.distributed.checkpoint: every process writes its
        slices of the trained parameters, value head included, and of the optimizers' moments), from which a run
        resumes with any number of processes. Every process must call it, with the same ``directory``."""
        self.accelerator.wait_for_everyone()
        policy = None
        if self.sharding == "fsdp":
            import torch.distributed.checkpoint as dcp

            policy = self._full_policy_state()
            dcp.save(self._sharded_state(), checkpoint_id=directory / fsdp.DISTRIBUTED)
        if self.accelerator.is_main_process:
            self.model.save_pretrained(directory / POLICY, state_dict=policy)
            self.tokenizer.save_pretrained(directory / POLICY)
            torch.save(self.state_dict(), directory / STATE)
        self.accelerator.wait_for_everyone()

    def _sharded_state(self) -> dict[str, Any]:
        """The trainable parameters and the optimizers' state, keyed by parameter name (so that they reshard to
        another number of processes); LoRA's frozen base weights are left out (the base model has them)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        model, optimizers = get_state_dict(
            self.actor, self.optimizers, options=StateDictOptions(ignore_frozen_params=True)
        )
        return {"model": model, "optimizers": optimizers}

    def _full_policy_state(self) -> dict[str, torch.Tensor]:
        """The policy's whole trained weights on the main process's CPU (gathered; collective)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
        state = get_model_state_dict(self.actor, options=options)
        prefix = "policy."
        return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}

    def load(self, directory: Path) -> None:
        """Continue from a checkpoint ``save`` wrote: weights, optimizers, schedules, value head, counters."""
        state = torch.load(directory / STATE, map_location="cpu", weights_only=False)
        sharded = directory / fsdp.DISTRIBUTED
        if sharded.is_dir() != (self.sharding == "fsdp"):
            from selfimprove.errors import UserError

            raise UserError(f"{directory} was written with another trainer.sharding than this run's "
                            f"({self.sharding}): resume with the sharding it was written with")  # fmt: skip
        if self.sharding == "fsdp":
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

            saved = self._sharded_state()
            dcp.load(saved, checkpoint_id=sharded)
            set_state_dict(self.actor, self.optimizers, model_state_dict=saved["model"],
                           optim_state_dict=saved["optimizers"],
                           options=StateDictOptions(ignore_frozen_params=True, strict=False))  # fmt: skip
        else:
            load_weights(self.model, directory / POLICY, self.adapter.type != "full")
            for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
                optimizer.load_state_dict(saved)
            head = self.accelerator.unwrap_model(self.actor).value_head
            if head is not None:
                head.load_state_dict(state["value_head"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        self.optimizer_steps, self.version = state["optimizer_steps"], state["version"]
        set_rng_state(state["rng"])


class TrainedPolicy:
    """The trainer's live weights as a policy generators sample from (``selfimprove.models.live.LivePolicy``), and
    as the weights it offers them (``selfimprove.capabilities.LiveWeights``).

    LoRA (not QLoRA) generates from a merged copy refreshed only when an update has happened since the last
    sync (``training.merged``), unless the objective's ``merged_generation`` is off; full fine-tuning and QLoRA
    generate with the trained model itself. Under FSDP each generate call gathers the weights (``gathered``).
    """

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.tokenizer = trainer.tokenizer
        self._merged: Any = None
        self._synced = -1
        self._reference: StartingPolicy | None = None
        self._gathered: fsdp.GatheredModel | None = None

    @property
    def version(self) -> int:
        return self.trainer.version

    @property
    def base(self) -> str:
        return self.trainer.base

    @property
    def adapter_only(self) -> bool:
        return self.trainer.adapter.type != "full"

    @contextmanager
    def named_weights(self, adapted_only: bool = False) -> Iterator[Iterator[tuple[str, torch.Tensor]]]:
        """The trained model's weights under the base checkpoint's names, LoRA merged on the fly (no merged copy),
        whole for the block (under FSDP all-gathered: collective)."""
        with self.trainer.gathered() as model:
            yield checkpoint_names(model, adapted_only=adapted_only)

    def inference_model(self) -> Any:
        if self.trainer.sharded:
            raise RuntimeError("the trainer's weights are sharded: generate inside TrainedPolicy.gathered()")
        model = self.trainer.model
        if self.trainer.adapter.type != "lora" or not self.trainer.objective.merged_generation:
            return model.eval()
        if self._merged is None:
            from selfimprove.training.merged import MergedCopy

            self._merged = MergedCopy(model, _frozen_copy(self.trainer.base))
        if self._synced != self.version:
            self._merged.sync()
            self._synced = self.version
        return self._merged.model

    @contextmanager
    def gathered(self) -> Iterator[Any]:
        """The model to generate with for the block (``models.live.generation_model``): ``inference_model()``, or
        under FSDP a plain model given the gathered weights (LoRA merged), emptied after. Collective under FSDP."""
        if not self.trainer.sharded:
            yield self.inference_model()
            return
        if self._gathered is None:
            self._gathered = fsdp.GatheredModel(self.trainer.model)
        with self.trainer.gathered() as model, self._gathered.filled(model) as plain:
            yield plain

    def reference(self) -> StartingPolicy:
        """The frozen starting model as a policy generators sample from (LSP's self-reward judge)."""
        if self._reference is None:
            self._reference = StartingPolicy(self.trainer)
        return self._reference


class StartingPolicy:
    """The frozen starting weights (``LivePolicy``): with LoRA the trained model's own base weights, shared into a
    plain model (no second copy); with full fine-tuning the trainer's frozen reference, or one made on first use."""

    version = 0

    def __init__(self, trainer: Trainer):
        self.trainer, self.tokenizer, self.base = trainer, trainer.tokenizer, trainer.base
        self._model: Any = None

    def inference_model(self) -> Any:
        if self._model is None:
            kind = self.trainer.adapter.type
            if self.trainer.sharded:
                from selfimprove.errors import UserError

                raise UserError("the starting model as a judge is not available under trainer.sharding: fsdp")
            if kind == "qlora":
                from selfimprove.errors import UserError

                raise UserError("the starting model as a judge needs LoRA or full fine-tuning, not QLoRA")
            if kind == "lora":
                from selfimprove.training.merged import base_view

                self._model = base_view(self.trainer.model, _frozen_copy(self.trainer.base))
            elif self.trainer.reference is not None:
                self._model = self.trainer.reference.policy
            else:
                self._model = _frozen_copy(self.trainer.base)
        return self._model


def rng_state() -> dict[str, Any]:
    """The global random generators (Python, NumPy, torch): components that draw from them continue as they were."""
    import numpy as np

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _frozen_copy(base: str) -> Any:
    from selfimprove.models import Policy
    from selfimprove.models.loading import load_for_inference

    model = load_for_inference(Policy(base)).requires_grad_(False)
    disable_dropout(model)
    return model


def load_weights(model: Any, folder: Path, adapter: bool) -> None:
    """Load a saved adapter (``adapter_model.safetensors``) or full model (one or several safetensors files) into
    ``model`` in place."""
    from safetensors.torch import load_file

    if adapter:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
        return
    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")}
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"checkpoint {folder} does not fit the model: missing {missing}, unexpected {unexpected}")
