"""Per-token estimators of KL(pi || pi_ref) from samples of pi (Schulman, "Approximating KL divergence", 2020).

With ``log_ratio = log pi(x) - log pi_ref(x)`` for x ~ pi:

- k1 = log_ratio: unbiased, high variance, can be negative (LSP's KL term, PPO's KL-in-reward);
- k2 = log_ratio**2 / 2: biased, low variance;
- k3 = exp(-log_ratio) - 1 + log_ratio: unbiased, non-negative, low variance (GRPO).
"""

from __future__ import annotations

from typing import Literal

import torch

Estimator = Literal["k1", "k2", "k3"]


def kl_estimate(logps: torch.Tensor, ref_logps: torch.Tensor, estimator: Estimator = "k3") -> torch.Tensor:
    """Per-token KL estimate between the policy (``logps``) and the reference (``ref_logps``)."""
    log_ratio = logps - ref_logps
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.exp(-log_ratio) - 1 + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}: use k1, k2 or k3")
