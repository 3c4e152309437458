"""What the policy-gradient updaters (GRPO, REINFORCE++, PPO) share: their options and their loss.

An online updater is an *objective*: it says which scores a step needs (old log-probs, reference log-probs, the
critic's values), turns rewards into per-token advantages, and gives the loss of a micro-batch. The online
trainer (``selfimprove.training.trainer``) owns the model, the optimizer and the loop over minibatches, and keeps
them alive for the whole run; the updaters (``selfimprove.updaters.grpo`` etc.) subclass ``PolicyGradient``.

Every minibatch's loss weights are computed for the whole minibatch before it is split (see
``objectives.losses``), so the gradient does not depend on how it is split into micro-batches or over processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from selfimprove.errors import UserError
from selfimprove.objectives.kl import Estimator, kl_estimate
from selfimprove.objectives.losses import Aggregation, clipped_policy_loss
from selfimprove.tokens import MIN_SHARED_PREFIX, collate, model_inputs

RoleLoss = Literal["joint", "per_role"]
SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")


@dataclass
class RolloutBatch:
    """One step's data after scoring: per-token tensors (N, C), right-padded to the longest completion."""

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
    roles: list[str] | None = None
    loss_weights: torch.Tensor | None = None  # per sequence: its role's loss weight
    is_weights: torch.Tensor | None = None  # per token: the truncated trainer/sampler ratio (another sampling engine)


@dataclass(kw_only=True)
class PolicyGradient:
    """Options shared by the policy-gradient objectives; subclasses define ``advantages`` (PPO adds a critic).

    ``learning_rate`` follows ``lr_scheduler`` over the run's steps (``warmup_steps`` of them first). ``epochs``
    passes over each step's data in minibatches of ``mini_batch_size`` sequences (TRL's ``num_iterations`` and
    ``steps_per_generation``). ``role_loss: per_role`` averages each role's loss over its own sequences before the
    roles' losses are summed with their ``loss_weight`` (LSP's ``L_Sol + alpha L_Ch``); ``joint`` averages over
    the whole minibatch (AZR's one update over six batches).

    ``beta`` weighs ``kl_estimator`` per token in the loss. Only k2 (``log_ratio**2 / 2``) has, in expectation over
    the policy's own samples, the gradient of KL(pi || pi_ref); k3's is the gradient of KL(pi_ref || pi) (it also
    pulls toward the reference); k1's is ``beta * grad log pi``, zero in expectation: k1 inside the loss does not
    regularise (``tests/test_objectives.py``). The ``kl`` metric is the k3 estimate of KL(pi || pi_ref) whatever
    the loss uses; ``kl_metric: true`` scores the reference with ``beta: 0`` too, to report the drift from the start.
    """

    name: ClassVar[str] = "policy-gradient"
    uses_critic: ClassVar[bool] = False

    learning_rate: float = 1e-6
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    epochs: int = 1
    mini_batch_size: int | None = None
    max_tokens_per_micro_batch: int = 8192
    max_prompt_length: int = 1024
    max_completion_length: int = 1024
    epsilon: float = 0.2
    epsilon_high: float | None = None
    beta: float = 0.0
    kl_estimator: Estimator = "k3"
    kl_metric: bool = False
    loss_aggregation: Aggregation = "seq-mean-token-mean"
    role_loss: RoleLoss = "joint"
    temperature: float = 1.0
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0
    # Exact shortcuts, each on by default and each a switch, so that a benchmark can measure what it buys
    # (benchmarks/online_grpo_vs_trl.py): the prompts' shared prefix runs once in the training passes; rows whose
    # advantages are all zero (no KL, no critic) skip the passes; LoRA generates from a merged copy of the weights.
    share_prefix: bool = True
    skip_zero_advantage: bool = True
    merged_generation: bool = True

    def __post_init__(self) -> None:
        small_batch = self.mini_batch_size is not None and self.mini_batch_size < 1
        if self.learning_rate <= 0 or self.epochs < 1 or small_batch:
            raise UserError(f"{self.name}: learning_rate must be positive, epochs and mini_batch_size at least 1")
        if self.epsilon <= 0 or self.beta < 0 or self.temperature <= 0 or self.max_tokens_per_micro_batch < 1:
            raise UserError(
                f"{self.name}: epsilon, temperature, max_tokens_per_micro_batch must be positive, beta >= 0"
            )
        if self.lr_scheduler not in SCHEDULES or self.warmup_steps < 0:
            raise UserError(f"{self.name}: lr_scheduler is one of {', '.join(SCHEDULES)}; warmup_steps >= 0")
        if self.role_loss not in ("joint", "per_role"):
            raise UserError(f"{self.name}: role_loss is 'joint' or 'per_role', got {self.role_loss!r}")

    @property
    def min_shared_prefix(self) -> int | None:
        """What ``collate`` takes: the shortest prefix worth a pass of its own, or None (``share_prefix`` off)."""
        return MIN_SHARED_PREFIX if self.share_prefix else None

    # -- what subclasses define ------------------------------------------------------------------------------
    def needs_reference(self) -> bool:
        return self.beta > 0 or self.kl_metric

    def needs_old_scores(self, n: int) -> bool:
        """Whether the data's log-probs must be computed before training. A single step on the whole batch
        sees the weights that generated it, so its old log-probs are the current ones, detached (as in TRL)."""
        return self.uses_critic or self.epochs > 1 or (self.mini_batch_size or n) < n

    def advantages(self, batch: RolloutBatch) -> None:
        """Fill ``batch.advantages`` (N, C) (and, with a critic, ``batch.returns``)."""
        raise NotImplementedError

    def value_head(self, hidden_size: int) -> torch.nn.Module | None:
        return None

    def critic_loss(self, values: torch.Tensor, batch: RolloutBatch, rows: list[int], weights: torch.Tensor) -> Any:
        return None

    def warming_up(self, rollout_steps: int) -> bool:
        """True while only the critic trains (PPO's critic warm-up), given the rollout steps trained so far."""
        return False

    # -- the loss ----------------------------------------------------------------------------------------------
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
        inputs = collate([batch.prompts[i] for i in rows], [batch.completions[i] for i in rows], batch.pad_id,
                         self.min_shared_prefix)  # fmt: skip
        c = inputs["completion_ids"].size(1)
        mask = inputs["mask"].to(device)
        w = weights[rows].to(device)[:, None] * mask
        logps, values = actor(**model_inputs(inputs, device), detach_values=warm)
        old = logps.detach() if batch.old_logps is None else batch.old_logps[rows, :c].to(device)
        per_token, clipped = clipped_policy_loss(
            logps, old, batch.advantages[rows, :c].to(device), self.epsilon, self.epsilon_high
        )
        if batch.is_weights is not None:  # tokens another engine sampled: the surrogate weighed back to ours
            per_token = per_token * batch.is_weights[rows, :c].to(device)
        kl = torch.zeros_like(logps)
        if batch.ref_logps is not None:
            ref = batch.ref_logps[rows, :c].to(device)
            if self.beta > 0:
                per_token = per_token + self.beta * kl_estimate(logps, ref, self.kl_estimator)
            kl = kl_estimate(logps.detach(), ref, "k3")  # the metric: unbiased and non-negative
        policy_loss = (per_token * w).sum()
        loss, value_loss = policy_loss, torch.zeros((), device=device)
        if values is not None:
            value_loss = self.critic_loss(values, batch, rows, value_weights[rows].to(device)[:, None] * mask)
            # During the critic's warm-up the policy term has weight 0: the actor gets an exact zero gradient
            # and DDP still reduces every parameter's gradient.
            loss = (0.0 if warm else 1.0) * policy_loss + self.value_coef * value_loss
        counted = mask * (weights[rows].to(device)[:, None] > 0)  # a padding micro-batch counts nothing
        # kept on the device: no host sync per micro-batch
        stats = torch.stack([
            policy_loss.detach(), (kl * counted).sum(), (clipped.float() * counted).sum(), counted.sum(),
            value_loss.detach(),
        ]).double()  # fmt: skip
        return loss, stats
