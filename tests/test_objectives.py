"""The policy-gradient math, pinned by values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from selfimprove.objectives.advantages import (
    discounted_returns,
    gae,
    group_advantages,
    group_ids,
    reinforce_pp_advantages,
    terminal_rewards,
    whiten,
)
from selfimprove.objectives.kl import kl_estimate
from selfimprove.objectives.losses import clipped_policy_loss, clipped_value_loss, sequence_weights


def close(a: torch.Tensor, b: list, tol: float = 1e-5) -> bool:
    return torch.allclose(a.float(), torch.tensor(b, dtype=torch.float32), atol=tol)


def test_group_ids_number_keys_in_order_of_appearance():
    assert group_ids(["b", "a", "b", "c"]).tolist() == [0, 1, 0, 2]


def test_grpo_advantages_are_zero_when_a_group_agrees():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 2.0, 2.0, 7.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    # group 0: mean 0.5, unbiased std sqrt(1/3); group 1 all equal; group 2 a single sample
    a = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    assert close(group_advantages(rewards, groups), [a, -a, a, -a, 0, 0, 0])
    # Dr. GRPO / LSP: the mean baseline only
    assert close(group_advantages(rewards, groups, scale=False), [0.5, -0.5, 0.5, -0.5, 0, 0, 0])


def test_kl_estimators_on_hand_values():
    logp, ref = torch.tensor([math.log(0.5), -1.0]), torch.tensor([math.log(0.25), -1.0])
    ln2 = math.log(2)
    assert close(kl_estimate(logp, ref, "k1"), [ln2, 0])
    assert close(kl_estimate(logp, ref, "k2"), [ln2**2 / 2, 0])
    assert close(kl_estimate(logp, ref, "k3"), [0.5 - 1 + ln2, 0])
    assert (kl_estimate(ref, logp, "k3") >= 0).all()  # k3 is non-negative either way round
    with pytest.raises(ValueError):
        kl_estimate(logp, ref, "k4")


def expected_kl_gradient(theta: torch.Tensor, ref: torch.Tensor, estimator: str) -> torch.Tensor:
    """The exact expectation over x ~ pi_theta of the gradient of the estimator placed in the loss: the sample x is
    fixed (no gradient through the sampling), the estimator's log pi(x) carries the gradient."""
    logp = torch.log_softmax(theta, -1)
    loss = sum(logp[x].exp().detach() * kl_estimate(logp[x], ref[x], estimator) for x in range(theta.numel()))
    return torch.autograd.grad(loss, theta)[0]


def test_only_k2_in_the_loss_has_the_gradient_of_kl_and_k1_has_none():
    # pi = (0.5, 0.5) (logits 0), pi_ref = (0.8, 0.2). By hand: KL(pi || ref) = 0.5 ln(0.625) + 0.5 ln(2.5) = ln 1.25,
    # d KL / d theta_j = pi_j (ln(pi_j / ref_j) - KL) = 0.5 (ln 0.625 - ln 1.25) = -0.5 ln 2, and +0.5 ln 2.
    theta = torch.zeros(2, requires_grad=True)
    ref = torch.log(torch.tensor([0.8, 0.2]))
    ln2 = math.log(2)
    assert close(expected_kl_gradient(theta, ref, "k2"), [-ln2 / 2, ln2 / 2])  # the KL's own gradient
    assert close(expected_kl_gradient(theta, ref, "k1"), [0.0, 0.0])  # beta grad log pi: zero in expectation
    # k3: sum_x (pi_x - ref_x) grad log pi_x = pi - ref = (-0.3, 0.3), the gradient of KL(ref || pi)
    assert close(expected_kl_gradient(theta, ref, "k3"), [-0.3, 0.3])
    # the same on a random 5-way policy, against autograd of the exact KL(pi || ref) and KL(ref || pi)
    torch.manual_seed(0)
    theta, ref = torch.randn(5, requires_grad=True), torch.log_softmax(torch.randn(5), -1)
    pi = torch.softmax(theta, -1)
    forward = torch.autograd.grad((pi * (pi.log() - ref)).sum(), theta, retain_graph=True)[0]
    reverse = torch.autograd.grad((ref.exp() * (ref - pi.log())).sum(), theta)[0]
    assert torch.allclose(expected_kl_gradient(theta, ref, "k2"), forward, atol=1e-6)
    assert torch.allclose(expected_kl_gradient(theta, ref, "k3"), reverse, atol=1e-6)
    assert torch.allclose(expected_kl_gradient(theta, ref, "k1"), torch.zeros(5), atol=1e-6)
    # a gradient step on k2 or k3 pulls toward the reference: the KL falls
    for estimator in ("k2", "k3"):
        step = theta.detach() - 0.1 * expected_kl_gradient(theta, ref, estimator)
        after = torch.softmax(step, -1)
        assert (after * (after.log() - ref)).sum() < (pi * (pi.log() - ref)).sum()


@pytest.mark.parametrize(
    ("ratio", "advantage", "clipped"),
    [(1.19, 1.0, False), (1.21, 1.0, True), (1.5, -1.0, False), (0.81, -1.0, False), (0.79, -1.0, True),
     (0.5, 1.0, False)],
)  # fmt: skip
def test_clipping_activates_exactly_past_one_plus_minus_epsilon(ratio: float, advantage: float, clipped: bool):
    logps = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, active = clipped_policy_loss(logps, torch.zeros(1, 1), torch.tensor([advantage]), eps_low=0.2)
    loss.sum().backward()
    assert active.item() is clipped
    assert loss.item() == pytest.approx(-advantage * (min(max(ratio, 0.8), 1.2) if clipped else ratio))
    # gradient of -ratio * A w.r.t. log-prob is -ratio * A inside, exactly zero where the clip is active
    assert logps.grad.item() == pytest.approx(0.0 if clipped else -ratio * advantage)


def test_clip_higher_uses_its_own_upper_bound():
    logps = torch.log(torch.tensor([[1.25, 1.3]]))
    _, active = clipped_policy_loss(logps, torch.zeros(1, 2), torch.tensor([1.0]), eps_low=0.2, eps_high=0.28)
    assert active.tolist() == [[False, True]]


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, max_length: int | None = None) -> torch.Tensor:
    """A whole batch's loss as the trainer sums it: each token weighted by its sequence's weight."""
    return (per_token * mask * sequence_weights(mask.sum(-1), mode, max_length)[:, None]).sum()


def test_aggregations_on_hand_values():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # the 9s are padding
    assert aggregate(per_token, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(per_token, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(per_token, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert aggregate(per_token, mask, "seq-mean-token-sum-norm", max_length=4).item() == pytest.approx(10 / 8)
    with pytest.raises(ValueError):
        sequence_weights(mask.sum(-1), "seq-mean-token-sum-norm")


def test_weights_split_over_micro_batches_add_up_to_the_full_batch():
    torch.manual_seed(0)
    per_token, mask = torch.randn(6, 5), (torch.rand(6, 5) > 0.3).float()
    for mode in ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]:
        w = sequence_weights(mask.sum(-1), mode)
        parts = sum((per_token[s] * mask[s] * w[s, None]).sum() for s in [slice(0, 2), slice(2, 6)])
        assert parts.item() == pytest.approx(aggregate(per_token, mask, mode).item(), abs=1e-6)


def test_clipped_value_loss():
    values, old, returns = torch.tensor([1.5, 0.9]), torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.5])
    # first: the clipped value 1.2 is further from the return (0.64 > 0.25); second: inside the clip range
    assert close(clipped_value_loss(values, old, returns, clip=0.2), [0.32, 0.08])
    assert close(clipped_value_loss(values, old, returns, clip=None), [0.125, 0.08])


def test_gae_matches_a_hand_computed_sequence():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.4, 0.8], [1.0, 1.0, 9.0]])  # 9: padding, ignored
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # row 0: deltas (-0.1, 0.4, 0.2); A2 = 0.2, A1 = 0.4 + 0.5 * 0.2, A0 = -0.1 + 0.5 * 0.5
    assert close(advantages, [[0.15, 0.5, 0.2], [0.5, 1.0, 0.0]])
    assert close(returns, [[0.65, 0.9, 1.0], [1.5, 2.0, 0.0]])
    # lambda = 1: advantages are the discounted returns minus the values
    advantages, _ = gae(rewards[:1], values[:1], mask[:1], gamma=0.5, lam=1.0)
    assert close(advantages, [[0.25 - 0.5, 0.5 - 0.4, 1.0 - 0.8]])
    assert close(discounted_returns(rewards[:1], mask[:1], gamma=0.5), [[0.25, 0.5, 1.0]])


def test_terminal_rewards_sit_on_the_last_completion_token():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    assert close(terminal_rewards(torch.tensor([3.0, -1.0]), mask), [[0, 3, 0], [0, 0, -1]])


def test_whitening_uses_the_masked_entries_only():
    values, mask = torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    s = 1 / math.sqrt(2 + 1e-8)  # mean 2, unbiased variance 2
    assert close(whiten(values, mask), [[-s, s, 0]])


def test_task_relative_whitening_uses_per_group_statistics():
    # one-token completions: rewards 1, 3 in group "code_i/propose", 0, 6 in group "code_o/solve"
    rewards = terminal_rewards(torch.tensor([1.0, 0.0, 3.0, 6.0]), torch.ones(4, 1))
    mask, groups = torch.ones(4, 1), group_ids(["code_i/propose", "code_o/solve", "code_i/propose", "code_o/solve"])
    s = 1 / math.sqrt(2)  # group 1: mean 2, var 2; group 2: mean 3, var 18 -> (0-3)/sqrt(18) = -s
    assert close(reinforce_pp_advantages(rewards, mask, groups).squeeze(1), [-s, -s, s, s], tol=1e-4)
    # the batch-whitened variant mixes the groups: mean 2.5, var 7
    batch = reinforce_pp_advantages(rewards, mask).squeeze(1)
    assert close(batch, [(r - 2.5) / math.sqrt(7) for r in [1.0, 0.0, 3.0, 6.0]], tol=1e-4)


def test_reinforce_pp_whitens_over_tokens():
    # a two-token completion counts twice in the statistics (veRL's token-level whitening)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = reinforce_pp_advantages(terminal_rewards(torch.tensor([1.0, 0.0]), mask), mask)
    mean, var = 2 / 3, ((1 / 3) ** 2 * 2 + (2 / 3) ** 2) / 2
    hi, lo = (1 - mean) / math.sqrt(var), (0 - mean) / math.sqrt(var)
    assert close(adv, [[hi, hi], [lo, 0.0]], tol=1e-4)
