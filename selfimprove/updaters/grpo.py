"""GRPO (Shao et al., 2024, DeepSeekMath, arXiv 2402.03300): group-relative advantages, clipped ratio, KL."""

from __future__ import annotations

from dataclasses import dataclass

from selfimprove.objectives.advantages import group_advantages, group_ids
from selfimprove.objectives.policy_gradient import PolicyGradient, RolloutBatch


@dataclass(kw_only=True)
class GRPO(PolicyGradient):
    """Group-relative policy optimisation: rewards against their group's mean and std, clipped ratio, KL.

    ``A_i = (r_i - mean_g r) / (std_g r + 1e-4)`` over each group g (the samples of one prompt), then the
    clipped surrogate plus ``beta * KL(pi || pi_ref)`` per token.

    ``scale_rewards: false`` drops the std (Dr. GRPO; LSP's group-mean baseline). ``mu`` of the paper is
    ``epochs``. Defaults follow the paper: beta 0.04 with the k3 estimator, mean over tokens then sequences.
    """

    name = "grpo"
    beta: float = 0.04
    scale_rewards: bool = True

    def advantages(self, batch: RolloutBatch) -> None:
        advantages = group_advantages(batch.rewards, group_ids(batch.groups), scale=self.scale_rewards)
        batch.advantages = advantages[:, None] * batch.mask
