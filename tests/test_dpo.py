"""The dpo updater: SPIN's loss at the opponent, every way of holding the reference, LoRA and full updates."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from selfimprove.config.schema import Adapter
from selfimprove.errors import UserError
from selfimprove.records import Example
from selfimprove.updaters import UpdateContext
from selfimprove.updaters.dpo import DPO, ReferencePlan, plan_reference

LORA = Adapter(type="lora", r=4, alpha=8)
FULL = Adapter(type="full")
PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


def pairs(n: int = 4) -> list[Example]:
    return [
        Example(f"e{i}", [{"role": "user", "content": f"What is {i} + 3?"}], f"{i} + 3 = {i + 3}.", rejected=f"{i}!")
        for i in range(n)
    ]


def context(tmp_path: Path, base: str, adapter: Adapter = LORA, init: str | None = None, **kw) -> UpdateContext:
    kw.setdefault("examples", pairs())
    return UpdateContext(
        base=base, adapter=adapter, init=init, output_dir=tmp_path / "out", work_dir=tmp_path / "work",
        seed=0, iteration=1, show_progress=False, **kw,
    )  # fmt: skip


def dpo(**kw) -> DPO:
    return DPO(**{"learning_rate": 1e-2, "batch_size": 2, "max_steps": 2, "save_steps": 1, **kw})


@pytest.fixture(scope="module")
def trained_adapter(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LoRA adapter that differs from the base: one DPO update from the base."""
    tmp = tmp_path_factory.mktemp("adapter")
    dpo(reference="base").update(context(tmp, tiny_model))
    return str(tmp / "out")


def batch_loss(trainer, rows: int = 2) -> torch.Tensor:
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(rows)])
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, batch)


def sequence_logps(model, trainer, rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion log-probs of (chosen, rejected), by hand from the logits."""
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(rows)])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    logps = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (logps * batch["completion_mask"][:, 1:]).sum(-1).chunk(2)


def test_reference_plans() -> None:
    assert plan_reference("lora", "previous", None, None) == ReferencePlan("disable")
    assert plan_reference("lora", "base", "/a", "/a") == ReferencePlan("disable")
    assert plan_reference("full", "previous", "/a", "/a") == ReferencePlan("policy")
    assert plan_reference("full", "base", None, "/a") == ReferencePlan("policy")
    assert plan_reference("full", "previous", None, "/a") == ReferencePlan("model", "/a")
    assert plan_reference("full", "base", "/a", "/a") == ReferencePlan("model", None)


def test_lora_reference_plans_with_adapters(trained_adapter: str) -> None:
    assert plan_reference("lora", "previous", trained_adapter, trained_adapter) == ReferencePlan("copy")
    assert plan_reference("qlora", "previous", None, trained_adapter) == ReferencePlan("adapter", trained_adapter)
    with pytest.raises(UserError, match="full checkpoint"):
        plan_reference("lora", "previous", None, "/not/an/adapter")


def test_spin_loss_is_log_2_when_policy_and_opponent_are_equal(tiny_model: str, trained_adapter: str, tmp_path):
    # SPIN: init = previous = the opponent. Every log-ratio is 0, so the loss is -log sigmoid(0) = log 2.
    trainer, plan, _ = dpo().trainer(context(tmp_path, tiny_model, init=trained_adapter, previous=trained_adapter))
    assert plan.how == "copy"
    assert batch_loss(trainer).item() == pytest.approx(math.log(2), abs=1e-7)


def test_spin_loss_is_log_2_with_full_fine_tuning(tiny_model: str, tmp_path: Path) -> None:
    trainer, plan, _ = dpo().trainer(context(tmp_path, tiny_model, adapter=FULL))
    assert plan.how == "policy" and trainer.ref_model is None  # scored before training, no second model
    assert batch_loss(trainer).item() == pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_base_reference_is_the_adapter_disabled_model(tiny_model: str, trained_adapter: str, tmp_path, beta):
    trainer, plan, _ = dpo(reference="base", beta=beta).trainer(
        context(tmp_path, tiny_model, init=trained_adapter, previous=trained_adapter)
    )
    assert plan.how == "disable" and list(trainer.model.peft_config) == ["default"]
    chosen, rejected = sequence_logps(trainer.model, trainer)
    with trainer.model.disable_adapter():
        ref_chosen, ref_rejected = sequence_logps(trainer.model, trainer)
    expected = -F.logsigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()
    assert abs(expected.item() - math.log(2)) > 1e-3  # the adapter moved the policy away from the base
    assert batch_loss(trainer).item() == pytest.approx(expected.item(), abs=1e-5)


def test_previous_reference_is_loaded_as_a_second_adapter(tiny_model: str, trained_adapter: str, tmp_path):
    # init: base (a fresh adapter, equal to the base), reference: the previous iterate's adapter
    trainer, plan, _ = dpo().trainer(context(tmp_path, tiny_model, previous=trained_adapter))
    assert plan == ReferencePlan("adapter", trained_adapter)
    model = trainer.model
    assert model.active_adapter == "default"
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".ref." in n)
    assert any(p.requires_grad for n, p in model.named_parameters() if ".default." in n)
    with model.disable_adapter():
        chosen, rejected = sequence_logps(model, trainer)
    model.set_adapter("ref")
    ref_chosen, ref_rejected = sequence_logps(model, trainer)
    model.set_adapter("default")
    expected = -F.logsigmoid(0.1 * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()
    assert abs(expected.item() - math.log(2)) > 1e-3
    assert batch_loss(trainer).item() == pytest.approx(expected.item(), abs=1e-5)


def test_lora_update_trains_and_saves_only_the_policy_adapter(tiny_model: str, trained_adapter: str, tmp_path):
    from safetensors.torch import load_file

    ctx = context(tmp_path, tiny_model, init=trained_adapter, previous=trained_adapter)
    metrics = dpo().update(ctx)
    assert metrics["steps"] == 2 and metrics["examples"] == 4
    assert all(math.isfinite(metrics[k]) for k in ("loss", "reward_margin", "reward_accuracy"))
    assert not (ctx.output_dir / "ref").exists()
    before = load_file(Path(trained_adapter) / "adapter_model.safetensors")
    after = load_file(ctx.output_dir / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_full_update_changes_the_weights(tiny_model: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    ctx = context(tmp_path, tiny_model, adapter=FULL)
    metrics = DPO(learning_rate=1e-3, batch_size=2, max_steps=1, loss_type=["sigmoid", "sft"]).update(ctx)
    assert metrics["steps"] == 1 and math.isfinite(metrics["loss"])
    before = load_file(Path(tiny_model) / "model.safetensors")
    after = load_file(ctx.output_dir / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("spin", [False, True], ids=["fresh-adapter", "spin-frozen-copy"])
def test_resumed_update_ends_with_the_same_weights(tiny_model: str, trained_adapter: str, tmp_path, spin) -> None:
    from safetensors.torch import load_file

    start = {"init": trained_adapter, "previous": trained_adapter} if spin else {}
    whole = context(tmp_path / "a", tiny_model, **start)
    dpo().update(whole)
    killed = context(tmp_path / "b", tiny_model, **start)
    dpo(max_steps=1).update(killed)  # leaves checkpoint-1 in the work folder, as a kill after step 1 would
    metrics = dpo().update(killed)
    assert metrics["resumed_from_step"] == 1 and metrics["steps"] == 2
    a, b = (load_file(c.output_dir / "adapter_model.safetensors") for c in (whole, killed))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_pairs_are_needed(tiny_model: str, tmp_path: Path) -> None:
    examples = [Example("e0", PROMPT, "5"), *pairs(1)]
    with pytest.raises(UserError, match="1 examples have no rejected completion.*spin"):
        dpo().update(context(tmp_path, tiny_model, examples=examples))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss_type": "sigmod"}, "unknown loss_type"),
        ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}, "1 loss_weights for 2 loss types"),
        ({"beta": 0.0}, "beta, learning_rate, epochs must be positive, got 0.0"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be at least 1"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        DPO(**kwargs)


def test_an_unknown_optimizer_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="dpo: .*nope"):
        DPO(optimizer="nope").config(context(tmp_path, "unused"), precompute=False)


def test_a_prompt_longer_than_max_length_is_refused(tiny_model: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="max_length is 8"):
        dpo(max_length=8).update(context(tmp_path, tiny_model))


def test_qlora_needs_cuda(tiny_model: str, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the gpu test runs QLoRA")
    with pytest.raises(UserError, match="qlora needs a CUDA GPU"):
        dpo().update(context(tmp_path, tiny_model, adapter=Adapter(type="qlora", r=4, alpha=8)))


@pytest.mark.gpu
def test_qlora_update_on_cuda(tiny_model: str, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("bitsandbytes")
    ctx = context(tmp_path, tiny_model, adapter=Adapter(type="qlora", r=4, alpha=8))
    metrics = dpo().update(ctx)
    assert metrics["steps"] == 2 and math.isfinite(metrics["loss"])
    assert (ctx.output_dir / "adapter_model.safetensors").is_file()
