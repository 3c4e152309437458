"""REINFORCE++ (Hu, 2025, arXiv 2501.03262) and AZR's task-relative variant (Zhao et al., 2025, arXiv 2505.03335)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from selfimprove.errors import UserError
from selfimprove.objectives.advantages import group_ids, reinforce_pp_advantages, terminal_rewards
from selfimprove.objectives.kl import kl_estimate
from selfimprove.objectives.losses import Aggregation
from selfimprove.objectives.policy_gradient import PolicyGradient, RolloutBatch


@dataclass(kw_only=True)
class ReinforcePP(PolicyGradient):
    """REINFORCE++: returns whitened over the batch or per group key (AZR's task-relative variant), clipped ratio.

    Token returns ``G_t = sum_s gamma^(s-t) r_s`` (the reward on the last token, minus ``kl_coef * k1`` per
    token), whitened over the batch's tokens, then the clipped surrogate. No critic, no group baseline.

    ``whiten_by: group`` whitens each group key with its own mean and std: AZR's task-relative REINFORCE++ with
    six baselines (task type x role), from roles grouped by ``[meta.task_type, role]``. AZR's settings:
    ``kl_coef: 0``, ``beta: 0``, token-mean loss, one epoch.
    """

    name = "reinforce_pp"
    loss_aggregation: Aggregation = "token-mean"
    whiten_by: Literal["batch", "group"] = "batch"
    kl_coef: float = 0.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.whiten_by not in ("batch", "group") or self.kl_coef < 0 or not 0 <= self.gamma <= 1:
            raise UserError("reinforce_pp: whiten_by is batch or group, kl_coef >= 0, gamma in [0, 1]")

    def needs_reference(self) -> bool:
        return super().needs_reference() or self.kl_coef > 0

    def needs_old_scores(self, n: int) -> bool:
        return self.kl_coef > 0 or super().needs_old_scores(n)

    def advantages(self, batch: RolloutBatch) -> None:
        token_rewards = terminal_rewards(batch.rewards, batch.mask)
        if self.kl_coef > 0:
            token_rewards = token_rewards - self.kl_coef * kl_estimate(batch.old_logps, batch.ref_logps, "k1")
        groups = group_ids(batch.groups) if self.whiten_by == "group" else None
        batch.advantages = reinforce_pp_advantages(token_rewards, batch.mask, groups, self.gamma)
