"""GRPO (Shao et al., 2024, DeepSeekMath, arXiv 2402.03300): group-relative advantages, clipped ratio, KL."""

from __future__ import annotations

from selfimprove.objectives.advantages import group_advantages, group_ids
from selfimprove.objectives.kl import Estimator
from selfimprove.objectives.losses import Aggregation
from selfimprove.updaters.policy_gradient import PolicyGradient, RolloutBatch


class GRPO(PolicyGradient):
    """Group-relative policy optimisation: rewards against their group's mean and std, clipped ratio, KL.

    ``A_i = (r_i - mean_g r) / (std_g r + 1e-4)`` over each group g (the samples of one prompt), then the
    clipped surrogate plus ``beta * KL(pi || pi_ref)`` per token.

    ``scale_rewards: false`` drops the std (Dr. GRPO; LSP's group-mean baseline). ``mu`` of the paper is
    ``epochs``. Defaults follow the paper: beta 0.04 with the k3 estimator, mean over tokens then sequences.
    """

    name = "grpo"

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
        beta: float = 0.04,
        kl_estimator: Estimator = "k3",
        loss_aggregation: Aggregation = "seq-mean-token-mean",
        scale_rewards: bool = True,
        temperature: float = 1.0,
        max_grad_norm: float | None = 1.0,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            learning_rate, epochs, mini_batch_size, max_tokens_per_micro_batch, max_prompt_length,
            max_completion_length, epsilon, epsilon_high, beta, kl_estimator, loss_aggregation, temperature,
            max_grad_norm, weight_decay,
        )  # fmt: skip
        self.scale_rewards = scale_rewards

    def advantages(self, batch: RolloutBatch) -> None:
        advantages = group_advantages(batch.rewards, group_ids(batch.groups), scale=self.scale_rewards)
        batch.advantages = advantages[:, None] * batch.mask
