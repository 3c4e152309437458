"""PPO with a critic (Schulman et al., 2017), as RLSP runs it (Ye et al., 2025, arXiv 2502.06773)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from selfimprove.errors import UserError
from selfimprove.objectives.advantages import gae, terminal_rewards, whiten
from selfimprove.objectives.kl import Estimator, kl_estimate
from selfimprove.objectives.losses import Aggregation, clipped_value_loss
from selfimprove.objectives.policy_gradient import PolicyGradient, RolloutBatch


@dataclass(kw_only=True)
class PPO(PolicyGradient):
    """PPO with a value head: GAE advantages, clipped policy and value losses, KL to the start in the reward.

    Token rewards ``r_t = -kl_coef * (log pi_old - log pi_ref)_t``, plus the sequence's reward on the last
    token, that reward first clipped to ``reward_clip_range`` (OpenRLHF's ``compute_reward`` clamps the scalar
    reward to its default [-10, 10] before it adds the per-token KL, so the KL term is never clipped); GAE(gamma,
    lambda) on the critic's values gives advantages (whitened) and returns; the loss is the clipped surrogate plus
    ``value_coef`` times the clipped value loss.

    The critic is a linear value head on the policy's last hidden state (a shared backbone, as in TRL's
    value-head models), with its own optimizer and learning rate; it lives with the policy for the whole run
    and is saved in every checkpoint. The run's first ``critic_warmup_steps`` rollout steps (each with all its
    optimizer steps) train only the value head: OpenRLHF's ``freezing_actor_steps``, which its trainer compares
    with the rollout step counter (``global_steps > freezing_actor_steps`` trains the actor), not with optimizer
    steps.
    """

    name = "ppo"
    uses_critic = True
    critic_learning_rate: float = 1e-5
    kl_coef: float = 0.05
    kl_estimator: Estimator = "k1"
    gamma: float = 1.0
    lam: float = 0.95
    value_clip: float | None = 0.2
    value_coef: float = 0.5
    whiten_advantages: bool = True
    critic_warmup_steps: int = 0
    reward_clip_range: tuple[float, float] | None = (-10.0, 10.0)
    loss_aggregation: Aggregation = "token-mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critic_learning_rate <= 0 or not 0 <= self.lam <= 1 or not 0 <= self.gamma <= 1:
            raise UserError("ppo: critic_learning_rate > 0, gamma and lam in [0, 1]")
        if self.critic_warmup_steps < 0 or self.kl_coef < 0:
            raise UserError("ppo: critic_warmup_steps and kl_coef must be 0 or more")
        clip = self.reward_clip_range
        if clip is not None and (len(clip) != 2 or not clip[0] < clip[1]):
            raise UserError(f"ppo: reward_clip_range is [low, high] with low < high (or null), got {clip}")
        if self.beta:
            raise UserError("ppo: the KL to the start is in the reward (kl_coef), not in the loss: leave beta at 0")

    def needs_reference(self) -> bool:
        return self.kl_coef > 0 or self.kl_metric

    def value_head(self, hidden_size: int) -> torch.nn.Module:
        head = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        return head

    def warming_up(self, rollout_steps: int) -> bool:
        return rollout_steps < self.critic_warmup_steps

    def advantages(self, batch: RolloutBatch) -> None:
        rewards = batch.rewards
        if self.reward_clip_range is not None:
            rewards = rewards.clamp(min=self.reward_clip_range[0], max=self.reward_clip_range[1])
        token_rewards = terminal_rewards(rewards, batch.mask)
        if self.kl_coef > 0:
            token_rewards = token_rewards - self.kl_coef * kl_estimate(batch.old_logps, batch.ref_logps, "k1")
        advantages, batch.returns = gae(token_rewards, batch.old_values, batch.mask, self.gamma, self.lam)
        batch.advantages = whiten(advantages, batch.mask) if self.whiten_advantages else advantages

    def critic_loss(self, values: torch.Tensor, batch: RolloutBatch, rows: list[int], weights: torch.Tensor) -> Any:
        c = values.size(1)
        old, returns = batch.old_values[rows, :c].to(values.device), batch.returns[rows, :c].to(values.device)
        return (clipped_value_loss(values, old, returns, self.value_clip) * weights).sum()
