"""Clipped surrogate losses (PPO, Schulman et al., 2017) and how per-token losses become one number.

Per-token tensors are (B, T) with a 0/1 ``mask`` of completion tokens. Every aggregation used by GRPO-family
papers gives each token of sequence i the same weight w_i, so ``sequence_weights`` computes w once for a whole
batch; a micro-batch's loss is then ``sum(loss * mask * w)`` and gradients accumulated over micro-batches (and
processes) add up to exactly the full batch's gradient.
"""

from __future__ import annotations

from typing import Literal

import torch

Aggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]


def sequence_weights(lengths: torch.Tensor, mode: Aggregation, max_length: int | None = None) -> torch.Tensor:
    """Per-sequence token weights (B,) for the aggregations veRL names:

    - ``token-mean``: every token of the batch counts equally (DAPO; TRL ``bnpo``);
    - ``seq-mean-token-mean``: mean over each sequence, then over sequences (GRPO paper; TRL ``grpo``);
    - ``seq-mean-token-sum``: sum over each sequence, mean over sequences (REINFORCE on whole sequences);
    - ``seq-mean-token-sum-norm``: sum over the batch / (B x max_length) (Dr. GRPO; TRL ``dr_grpo``).
    """
    lengths = lengths.to(torch.float32)
    b = lengths.numel()
    if mode == "token-mean":
        return torch.full_like(lengths, 1.0) / lengths.sum().clamp(min=1)
    if mode == "seq-mean-token-mean":
        return 1.0 / (lengths.clamp(min=1) * b)
    if mode == "seq-mean-token-sum":
        return torch.full_like(lengths, 1.0 / b)
    if mode == "seq-mean-token-sum-norm":
        if not max_length:
            raise ValueError("seq-mean-token-sum-norm needs max_length")
        return torch.full_like(lengths, 1.0 / (b * max_length))
    raise ValueError(f"unknown loss aggregation {mode!r}")


def clipped_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``-min(ratio A, clip(ratio, 1 - eps_low, 1 + eps_high) A)`` and where the clip is active.

    ``advantages`` is (B,) or (B, T). The clip is active (gradient zero) where ratio > 1 + eps_high with A > 0,
    or ratio < 1 - eps_low with A < 0. ``eps_high`` defaults to ``eps_low`` (DAPO's clip-higher sets it apart).
    """
    eps_high = eps_low if eps_high is None else eps_high
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logps - old_logps)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantages
    active = ((ratio > 1 + eps_high) & (advantages > 0)) | ((ratio < 1 - eps_low) & (advantages < 0))
    return -torch.min(unclipped, clipped), active


def importance_weights(train_logps: torch.Tensor, sampler_logps: torch.Tensor, cap: float = 3.0) -> torch.Tensor:
    """Per-token ``min(exp(train - sampler), cap)``: truncated importance sampling, which corrects an update for
    tokens another engine (vLLM) sampled with slightly different numbers than the trainer computes. A NaN log-prob
    from the sampler gives ratio 1 (vLLM can report one) rather than a NaN in every gradient."""
    return torch.exp(torch.nan_to_num(train_logps - sampler_logps, nan=0.0)).clamp(max=cap)


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float | None = 0.2
) -> torch.Tensor:
    """Per-token ``0.5 max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)``: PPO's clipped value loss."""
    loss = (values - returns) ** 2
    if clip is not None:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return 0.5 * loss


def role_sequence_weights(
    lengths: torch.Tensor,
    roles: list[str],
    loss_weights: torch.Tensor,
    mode: Aggregation,
    max_length: int | None = None,
    per_role: bool = False,
) -> torch.Tensor:
    """``sequence_weights`` for a minibatch whose sequences come from several roles, each times its role's weight.

    ``per_role=False`` aggregates over the whole minibatch (one loss over every role's sequences, AZR);
    ``per_role=True`` aggregates each role's sequences on their own and sums the roles' losses (LSP's
    ``L_Sol + alpha L_Ch``, each a mean over its own role).
    """
    if not per_role:
        return sequence_weights(lengths, mode, max_length) * loss_weights
    out = torch.zeros(lengths.shape, dtype=torch.float32)
    for role in dict.fromkeys(roles):
        rows = torch.tensor([r == role for r in roles])
        out[rows] = sequence_weights(lengths[rows], mode, max_length)
    return out * loss_weights
