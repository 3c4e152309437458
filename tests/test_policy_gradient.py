"""The policy-gradient updaters on a tiny model: checkpoints, metrics, micro-batching, critic, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from selfimprove.config.schema import Adapter
from selfimprove.errors import UserError
from selfimprove.records import Example
from selfimprove.updaters import UpdateContext
from selfimprove.updaters.grpo import GRPO
from selfimprove.updaters.policy_gradient import micro_batches
from selfimprove.updaters.ppo import PPO
from selfimprove.updaters.reinforce_pp import ReinforcePP

LORA = Adapter(r=4, alpha=8)


def examples(n: int = 8) -> list[Example]:
    return [
        Example(f"e{i}", [{"role": "user", "content": f"{i % 3} + 1 = ?"}], f"{i % 3 + 1}" + "0" * (i % 4),
                reward=float(i % 2), group=f"p{i % 3}")
        for i in range(n)
    ]  # fmt: skip


def context(model: str, out: Path, exs: list[Example] | None = None, adapter: Adapter = LORA, **kw) -> UpdateContext:
    return UpdateContext(
        base=model, adapter=adapter, init=kw.pop("init", None), examples=exs or examples(), output_dir=out,
        work_dir=out.parent / "work", seed=0, iteration=1, show_progress=False, **kw,
    )  # fmt: skip


def adapter_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")


def test_micro_batches_respect_the_token_budget():
    lengths = [5, 1, 3, 3, 8]
    parts = micro_batches([0, 1, 2, 3, 4], lengths, max_tokens=6)
    assert sorted(i for p in parts for i in p) == [0, 1, 2, 3, 4]
    assert all(len(p) * max(lengths[i] for i in p) <= 6 or len(p) == 1 for p in parts)
    assert parts == [[1, 2], [3], [0], [4]]  # sorted by length; the 8 alone exceeds the budget


@pytest.mark.parametrize(
    "updater",
    [GRPO(learning_rate=1e-2, epochs=2, mini_batch_size=4), ReinforcePP(learning_rate=1e-2, whiten_by="group"),
     ReinforcePP(learning_rate=1e-2, kl_coef=0.1, beta=0.01)],
    ids=["grpo", "reinforce_pp-task-relative", "reinforce_pp-kl"],
)  # fmt: skip
def test_update_trains_the_adapter_and_reports_metrics(tiny_model: str, tmp_path: Path, updater) -> None:
    metrics = updater.update(context(tiny_model, tmp_path / "out"))
    weights = adapter_weights(tmp_path / "out")
    # a fresh LoRA adapter starts with B = 0: any nonzero B was learnt
    assert any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k)
    assert (tmp_path / "out" / "tokenizer_config.json").is_file()
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["steps"] == updater.epochs * math.ceil(8 / (updater.mini_batch_size or 8))
    assert metrics["mean_reward"] == pytest.approx(0.5) and metrics["examples"] == 8
    assert ("kl" in metrics) == updater.needs_reference()


def test_first_on_policy_step_has_ratio_one(tiny_model: str, tmp_path: Path) -> None:
    # one epoch, one minibatch: the ratio is exactly 1, nothing is clipped and the KL to the base is 0
    metrics = GRPO(learning_rate=1e-2).update(context(tiny_model, tmp_path / "out"))
    assert metrics["clip_fraction"] == 0.0 and metrics["kl"] == pytest.approx(0.0, abs=1e-7)
    # several epochs move the policy off the data's: later passes see ratios away from 1
    metrics = GRPO(learning_rate=5e-2, epochs=4, epsilon=0.01).update(context(tiny_model, tmp_path / "out2"))
    assert metrics["clip_fraction"] > 0 and metrics["kl"] > 0


def test_micro_batch_split_does_not_change_the_update(tiny_model: str, tmp_path: Path) -> None:
    outs = []
    for budget in (1, 10_000):  # every row alone, or the whole batch at once
        out = tmp_path / f"out-{budget}"
        GRPO(learning_rate=1e-2, max_tokens_per_micro_batch=budget).update(context(tiny_model, out))
        outs.append(adapter_weights(out))
    for key in outs[0]:
        assert torch.allclose(outs[0][key], outs[1][key], atol=1e-6), key


def test_full_fine_tuning_scores_the_reference_with_the_base(tiny_model: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    metrics = GRPO(learning_rate=1e-3, epochs=2).update(context(tiny_model, tmp_path / "out", adapter=Adapter("full")))
    before = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "out").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert metrics["kl"] > 0  # the second epoch has moved away from the reference


def test_ppo_warms_up_the_critic_then_trains_both(tiny_model: str, tmp_path: Path) -> None:
    first = tmp_path / "it1"
    metrics = PPO(learning_rate=1e-2, critic_warmup_steps=2).update(context(tiny_model, first))
    assert all(v.abs().max() == 0 for k, v in adapter_weights(first).items() if "lora_B" in k)  # actor frozen
    head = torch.load(first / "value_head.pt")
    assert head["steps"] == 1 and head["head"]["weight"].abs().max() > 0  # the critic learnt
    assert metrics["value_loss"] > 0 and math.isfinite(metrics["loss"])
    # the next iteration continues from the checkpoint (online RL) with its critic: warm-up ends there
    second = tmp_path / "it2"
    PPO(learning_rate=1e-2, critic_warmup_steps=2, epochs=2).update(
        context(tiny_model, second, init=str(first), previous=str(first))
    )
    assert torch.load(second / "value_head.pt")["steps"] == 3
    assert any(v.abs().max() > 0 for k, v in adapter_weights(second).items() if "lora_B" in k)


def test_updaters_refuse_off_policy_data_and_unrewarded_examples(tiny_model: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="loop.init: previous"):
        GRPO().update(context(tiny_model, tmp_path / "out", previous=str(tmp_path / "elsewhere")))
    unrewarded = [Example("a", [{"role": "user", "content": "q"}], "c")]
    with pytest.raises(UserError, match="selector scored"):
        GRPO().update(context(tiny_model, tmp_path / "out", exs=unrewarded))


@pytest.mark.parametrize(
    "bad",
    [lambda: GRPO(learning_rate=0), lambda: GRPO(epsilon=0), lambda: ReinforcePP(beta=-1), lambda: PPO(lam=2.0),
     lambda: GRPO(mini_batch_size=0)],
)  # fmt: skip
def test_bad_arguments_are_user_errors(bad) -> None:
    with pytest.raises(UserError):
        bad()


def test_qlora_needs_cuda(tiny_model: str, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: covered by the gpu test")
    with pytest.raises(UserError, match="qlora needs a CUDA GPU"):
        GRPO().update(context(tiny_model, tmp_path / "out", adapter=Adapter("qlora")))


@pytest.mark.gpu
def test_qlora_grpo_step_on_cuda(tiny_model: str, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("bitsandbytes")
    metrics = GRPO(learning_rate=1e-2).update(context(tiny_model, tmp_path / "out", adapter=Adapter("qlora")))
    assert math.isfinite(metrics["loss"])
    assert any(v.abs().max() > 0 for k, v in adapter_weights(tmp_path / "out").items() if "lora_B" in k)


def test_chunked_log_probs_equal_the_direct_ones_with_gradients() -> None:
    from selfimprove.updaters.policy_gradient import token_logps

    torch.manual_seed(0)
    head = torch.nn.Linear(4, 11, bias=False)
    hidden = torch.randn(10, 4, requires_grad=True)
    targets = torch.randint(0, 11, (10,))
    direct = torch.log_softmax(head(hidden) / 0.7, -1).gather(-1, targets[:, None]).squeeze(-1)
    chunked = token_logps(head, hidden, targets, 0.7, chunk=3)
    assert torch.allclose(direct, chunked, atol=1e-6)
    grads = [torch.autograd.grad(x.sum(), [hidden, head.weight]) for x in (direct, chunked)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads, strict=True))


def test_models_with_scaled_logits_use_their_own_forward(tiny_model: str) -> None:
    from transformers import AutoModelForCausalLM

    from selfimprove.updaters.policy_gradient import Actor, collate

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    split = Actor(model)
    model.config.final_logit_softcapping = 30.0  # Llama ignores it; the actor then takes the model's forward
    whole = Actor(model)
    assert split.split is not None and whole.split is None
    inputs = collate([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14, 15]], 0)
    with torch.no_grad():
        a, b = split(**inputs)[0], whole(**inputs)[0]
    assert torch.allclose(a, b, atol=1e-5) and (a[0, 2:] == 0).all()
