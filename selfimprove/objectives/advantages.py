"""Advantages and returns from rewards: group baselines (GRPO), whitening (REINFORCE++), GAE (PPO).

Sequence rewards are tensors of shape (B,); per-token quantities are (B, T) with a 0/1 ``mask`` of the
completion tokens (right-padded).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def group_ids(keys: Sequence[str]) -> torch.Tensor:
    """Integer ids (B,) for group keys, numbered in order of first appearance."""
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(k, len(index)) for k in keys])


def group_advantages(
    rewards: torch.Tensor, groups: torch.Tensor, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """GRPO (Shao et al., 2024): ``(r - mean_g) / (std_g + eps)`` within each group g.

    ``scale=False`` keeps only the mean baseline (Dr. GRPO, Liu et al., 2025; LSP). The std is the unbiased
    sample std, 0 for a group of one, as in TRL, so a group whose rewards are all equal has advantage 0.
    """
    n = groups.max().item() + 1 if groups.numel() else 0
    count = torch.zeros(n, dtype=rewards.dtype).index_add_(0, groups, torch.ones_like(rewards))
    mean = torch.zeros(n, dtype=rewards.dtype).index_add_(0, groups, rewards) / count
    centred = rewards - mean[groups]
    if not scale:
        return centred
    sq = torch.zeros(n, dtype=rewards.dtype).index_add_(0, groups, centred**2)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    return centred / (std[groups] + eps)


def whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(v - mean) / sqrt(var + eps)`` over the masked entries (unbiased variance), as veRL's ``masked_whiten``."""
    n = mask.sum()
    mean = (values * mask).sum() / n
    var = (((values - mean) ** 2) * mask).sum() / (n - 1).clamp(min=1)
    return (values - mean) * torch.rsqrt(var + eps) * mask


def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """``G_t = sum_{s >= t} gamma^(s-t) r_s`` over each completion's tokens."""
    returns = torch.zeros_like(token_rewards)
    running = torch.zeros(token_rewards.size(0), dtype=token_rewards.dtype)
    for t in reversed(range(token_rewards.size(1))):
        running = token_rewards[:, t] * mask[:, t] + gamma * running
        returns[:, t] = running
    return returns * mask


def terminal_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) token rewards with each sequence's reward on its last completion token, 0 elsewhere."""
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    out = torch.zeros(mask.shape, dtype=rewards.dtype)
    out[torch.arange(mask.size(0)), last] = rewards
    return out * mask


def reinforce_pp_advantages(
    token_rewards: torch.Tensor, mask: torch.Tensor, groups: torch.Tensor | None = None, gamma: float = 1.0
) -> torch.Tensor:
    """REINFORCE++ (Hu, 2025): discounted returns whitened over the batch's tokens.

    With ``groups``, each group is whitened with its own statistics: AZR's task-relative REINFORCE++ (Zhao et
    al., 2025, eq. 8) uses one group per task type x role. Whitening is over tokens, as in veRL's
    ``reinforce_plus_plus`` estimator that AZR runs, so longer completions weigh more in the statistics.
    """
    returns = discounted_returns(token_rewards, mask, gamma)
    if groups is None:
        return whiten(returns, mask)
    out = torch.zeros_like(returns)
    for g in groups.unique():
        rows = groups == g
        out[rows] = whiten(returns[rows], mask[rows])
    return out


def gae(
    token_rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016): ``(advantages, returns)``.

    ``delta_t = r_t + gamma V_{t+1} - V_t`` and ``A_t = delta_t + gamma lam A_{t+1}``; the state after the last
    completion token is terminal (value 0). Returns are ``A + V``, the critic's regression targets.
    """
    rewards, values = token_rewards * mask, values * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros(values.size(0), dtype=values.dtype)
    for t in reversed(range(values.size(1))):
        next_value = values[:, t + 1] if t + 1 < values.size(1) else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask
