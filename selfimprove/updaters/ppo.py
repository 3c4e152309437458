"""PPO with a critic (Schulman et al., 2017), as RLSP runs it (Ye et al., 2025, arXiv 2502.06773)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from selfimprove.errors import UserError
from selfimprove.objectives.advantages import gae, terminal_rewards, whiten
from selfimprove.objectives.kl import Estimator, kl_estimate
from selfimprove.objectives.losses import Aggregation, clipped_value_loss
from selfimprove.updaters import UpdateContext
from selfimprove.updaters.policy_gradient import Actor, PolicyGradient, RolloutBatch

VALUE_HEAD = "value_head.pt"


class PPO(PolicyGradient):
    """PPO with a value head: GAE advantages, clipped policy and value losses, KL to the base in the reward.

    Token rewards ``r_t = -kl_coef * (log pi_old - log pi_ref)_t``, plus the verifier's reward on the last
    token; GAE(gamma, lambda) on the critic's values gives advantages (whitened) and returns; the loss is the
    clipped surrogate plus ``value_coef`` times the clipped value loss.

    The critic is a linear value head on the policy's last hidden state (a shared backbone, as in TRL's
    value-head models), with its own learning rate. It travels with the checkpoint (``value_head.pt``) so an
    online run keeps its critic from one iteration to the next. The run's first ``critic_warmup_steps``
    optimizer steps train only the value head (OpenRLHF's ``freezing_actor_steps``).
    """

    name = "ppo"
    uses_critic = True

    def __init__(
        self,
        learning_rate: float = 1e-6,
        critic_learning_rate: float = 1e-5,
        epochs: int = 1,
        mini_batch_size: int | None = None,
        max_tokens_per_micro_batch: int = 8192,
        max_prompt_length: int = 1024,
        max_completion_length: int = 1024,
        epsilon: float = 0.2,
        epsilon_high: float | None = None,
        kl_coef: float = 0.05,
        kl_estimator: Estimator = "k1",
        gamma: float = 1.0,
        lam: float = 0.95,
        value_clip: float | None = 0.2,
        value_coef: float = 0.5,
        whiten_advantages: bool = True,
        critic_warmup_steps: int = 0,
        loss_aggregation: Aggregation = "token-mean",
        temperature: float = 1.0,
        max_grad_norm: float | None = 1.0,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            learning_rate, epochs, mini_batch_size, max_tokens_per_micro_batch, max_prompt_length,
            max_completion_length, epsilon, epsilon_high, 0.0, kl_estimator, loss_aggregation, temperature,
            max_grad_norm, weight_decay,
        )  # fmt: skip
        if critic_learning_rate <= 0 or not 0 <= lam <= 1 or not 0 <= gamma <= 1 or critic_warmup_steps < 0:
            raise UserError("ppo: critic_learning_rate > 0, gamma and lam in [0, 1], critic_warmup_steps >= 0")
        self.critic_learning_rate, self.kl_coef, self.gamma, self.lam = critic_learning_rate, kl_coef, gamma, lam
        self.value_clip, self.value_coef, self.whiten_advantages = value_clip, value_coef, whiten_advantages
        self.critic_warmup_steps = critic_warmup_steps
        self.steps_before = 0  # optimizer steps of earlier iterations, read from the checkpoint's value head

    def needs_reference(self) -> bool:
        return self.kl_coef > 0

    def value_head(self, policy: Any, init: str | None) -> torch.nn.Module:
        head = torch.nn.Linear(policy.config.get_text_config().hidden_size, 1)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        saved = Path(init) / VALUE_HEAD if init else None
        if saved and saved.is_file():
            state = torch.load(saved, map_location="cpu")
            head.load_state_dict(state["head"])
            self.steps_before = int(state["steps"])
        return head

    def warming_up(self, step: int) -> bool:
        return self.steps_before + step < self.critic_warmup_steps

    def advantages(self, batch: RolloutBatch) -> None:
        token_rewards = terminal_rewards(batch.rewards, batch.mask)
        if self.kl_coef > 0:
            token_rewards = token_rewards - self.kl_coef * kl_estimate(batch.old_logps, batch.ref_logps, "k1")
        advantages, batch.returns = gae(token_rewards, batch.old_values, batch.mask, self.gamma, self.lam)
        batch.advantages = whiten(advantages, batch.mask) if self.whiten_advantages else advantages

    def critic_loss(self, values: torch.Tensor, batch: RolloutBatch, rows: list[int], weights: torch.Tensor) -> Any:
        c = values.size(1)
        old, returns = batch.old_values[rows, :c].to(values.device), batch.returns[rows, :c].to(values.device)
        return (clipped_value_loss(values, old, returns, self.value_clip) * weights).sum()

    def save_extra(self, actor: Actor, ctx: UpdateContext, steps: int) -> None:
        state = {"head": actor.value_head.state_dict(), "steps": self.steps_before + steps}
        torch.save(state, Path(ctx.output_dir) / VALUE_HEAD)
