"""REINFORCE++ (Hu, 2025, arXiv 2501.03262) and AZR's task-relative variant (Zhao et al., 2025, arXiv 2505.03335)."""

from __future__ import annotations

from typing import Literal

from selfimprove.objectives.advantages import group_ids, reinforce_pp_advantages, terminal_rewards
from selfimprove.objectives.kl import Estimator, kl_estimate
from selfimprove.objectives.losses import Aggregation
from selfimprove.updaters.policy_gradient import PolicyGradient, RolloutBatch


class ReinforcePP(PolicyGradient):
    """REINFORCE++: returns whitened over the batch or per group key (AZR's task-relative variant), clipped ratio.

    Token returns ``G_t = sum_s gamma^(s-t) r_s`` (the reward on the last token, minus ``kl_coef * k1`` per
    token), whitened over the batch's tokens, then the clipped surrogate. No critic, no group baseline.

    ``whiten_by: group`` whitens each ``Example.group`` with its own mean and std: AZR's task-relative
    REINFORCE++ with six baselines (task type x role), made by ``selector: {name: scored, group_by:
    [meta.task_type, role]}``. AZR's settings: ``kl_coef: 0``, ``beta: 0``, token-mean loss, one epoch.
    """

    name = "reinforce_pp"

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
        loss_aggregation: Aggregation = "token-mean",
        whiten_by: Literal["batch", "group"] = "batch",
        kl_coef: float = 0.0,
        gamma: float = 1.0,
        temperature: float = 1.0,
        max_grad_norm: float | None = 1.0,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            learning_rate, epochs, mini_batch_size, max_tokens_per_micro_batch, max_prompt_length,
            max_completion_length, epsilon, epsilon_high, beta, kl_estimator, loss_aggregation, temperature,
            max_grad_norm, weight_decay,
        )  # fmt: skip
        self.whiten_by, self.kl_coef, self.gamma = whiten_by, kl_coef, gamma

    def needs_reference(self) -> bool:
        return self.beta > 0 or self.kl_coef > 0

    def needs_old_scores(self, n: int) -> bool:
        return self.kl_coef > 0 or super().needs_old_scores(n)

    def advantages(self, batch: RolloutBatch) -> None:
        token_rewards = terminal_rewards(batch.rewards, batch.mask)
        if self.kl_coef > 0:
            token_rewards = token_rewards - self.kl_coef * kl_estimate(batch.old_logps, batch.ref_logps, "k1")
        groups = group_ids(batch.groups) if self.whiten_by == "group" else None
        batch.advantages = reinforce_pp_advantages(token_rewards, batch.mask, groups, self.gamma)
