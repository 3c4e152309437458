"""Our GRPO loss equals TRL's GRPOTrainer loss on the same batch, model and settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfimprove.objectives.advantages import group_advantages
from selfimprove.objectives.losses import sequence_weights
from selfimprove.objectives.policy_gradient import RolloutBatch
from selfimprove.tokens import pad_rows
from selfimprove.training.actor import Actor
from selfimprove.updaters.grpo import GRPO

MAX_COMPLETION = 7


def trl_trainer(model_path: str, tmp: Path, loss_type: str, beta: float, epsilon: float):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(tmp / "trl"), per_device_train_batch_size=4, num_generations=2, beta=beta, epsilon=epsilon,
        loss_type=loss_type, max_completion_length=MAX_COMPLETION, temperature=1.0, use_cpu=True, report_to="none",
        logging_steps=1, bf16=False,  # TRL defaults to bf16 autocast, on CPU too
        use_bias_correction_kl=False,  # TRL's default weights the KL by the ratio; the GRPO paper does not
    )  # fmt: skip
    return GRPOTrainer(
        model=model_path,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["hi"] * 4}),
    )


@pytest.mark.parametrize(
    ("loss_type", "aggregation", "beta"),
    [("grpo", "seq-mean-token-mean", 0.04), ("bnpo", "token-mean", 0.0), ("dr_grpo", "seq-mean-token-sum-norm", 0.1)],
)
def test_our_grpo_loss_equals_trl(tiny_model: str, tmp_path: Path, loss_type: str, aggregation: str, beta: float):
    trainer = trl_trainer(tiny_model, tmp_path, loss_type, beta, epsilon=0.2)
    model = trainer.model
    torch.manual_seed(0)
    # two groups of two; prompts of one length (TRL left-pads prompts and does not shift positions)
    prompts = [[5, 6, 7], [5, 6, 7], [8, 9, 10], [8, 9, 10]]
    completions = [[11, 12, 13, 14, 15], [16, 17], [18, 19, 20, 21, 22, 23, 24], [25, 26, 27]]
    rewards = torch.tensor([1.0, 0.0, 0.5, 2.0])
    advantages = group_advantages(rewards, torch.tensor([0, 0, 1, 1]))
    width = max(map(len, completions))
    mask = pad_rows([torch.ones(len(c)) for c in completions], width)
    with torch.no_grad():
        ours = GRPO(beta=beta, loss_aggregation=aggregation, max_completion_length=MAX_COMPLETION, epsilon=0.2)
        actor = Actor(model)
        batch = RolloutBatch(prompts, completions, 0, mask, rewards, ["a", "a", "b", "b"], torch.zeros(4, width))
        batch.advantages = advantages[:, None] * mask
        weights = sequence_weights(mask.sum(-1), aggregation, MAX_COMPLETION)
        current, _ = actor(**_inputs(prompts, completions))
        # old and reference log-probs away from the current ones, so that clipping and KL both matter
        batch.old_logps = (current + 0.3 * torch.randn_like(current)) * mask
        batch.ref_logps = (current + 0.5 * torch.randn_like(current)) * mask

    inputs = {
        "prompt_ids": torch.tensor(prompts),
        "prompt_mask": torch.ones(4, 3, dtype=torch.long),
        "completion_ids": _inputs(prompts, completions)["completion_ids"],
        "completion_mask": mask.long(),
        "advantages": advantages,
        "old_per_token_logps": batch.old_logps,
        "ref_per_token_logps": batch.ref_logps,
    }
    theirs = trainer.compute_loss(model, inputs)
    loss, stats = ours.loss(actor, batch, [0, 1, 2, 3], weights)
    assert stats[2] > 0, "the batch should exercise the clip"
    assert loss.item() == pytest.approx(theirs.item(), abs=1e-5)
    # and the same gradient
    grads = []
    for value in (loss, theirs):
        model.zero_grad()
        value.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def _inputs(prompts, completions):
    from selfimprove.tokens import collate

    return collate(prompts, completions, 0)
