"""The CUDA path (``pytest -m gpu``): greedy generation against transformers' own, one update of every updater with
LoRA and full fine-tuning, and bf16 log-probs against fp32.

NOT YET RUN ON A GPU: written for the first session that has one; without CUDA every test here is skipped.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from selfimprove.config.schema import Adapter
from selfimprove.records import Example

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

LORA, FULL = Adapter(type="lora", r=4, alpha=8), Adapter(type="full")
# bf16 keeps 8 bits of mantissa: a log-prob of about -4.6 (a near-uniform tiny model) is off by up to ~0.02 per
# rounding, and a few roundings add up through two layers
BF16_MEAN_TOLERANCE, BF16_MAX_TOLERANCE = 0.03, 0.15


def rollouts(n: int = 8) -> list[Example]:
    return [
        Example(f"e{i}", [{"role": "user", "content": f"{i % 3} + 1 = ?"}], f"{i % 3 + 1}" + "0" * (i % 4),
                reward=float(i % 2), group=f"p{i % 3}", role="solver", rejected=f"{i}!")
        for i in range(n)
    ]  # fmt: skip


def test_greedy_generation_equals_transformers_own(tiny_model: str) -> None:
    from selfimprove.generators import Request
    from selfimprove.generators.hf import HFGenerator
    from selfimprove.models import Policy
    from selfimprove.models.loading import load_for_inference, load_tokenizer
    from selfimprove.progress import Tracker
    from selfimprove.prompts import render_chat

    requests = [Request(f"r{i}", [{"role": "user", "content": "ab" * (i + 1)}]) for i in range(4)]
    model, tokenizer = load_for_inference(Policy(tiny_model)), load_tokenizer(tiny_model)
    assert next(model.parameters()).dtype == torch.bfloat16
    expected = {}
    for r in requests:
        ids = tokenizer(render_chat(tokenizer, r.messages), return_tensors="pt", add_special_tokens=False).to("cuda")
        out = model.generate(**ids, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
        expected[r.id] = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    generator = HFGenerator(temperature=0.0, max_new_tokens=12, batch_size=1, share_prefix=False)
    got = {}
    for batch in generator.generate(Policy(tiny_model), requests, seed=0, done=set(), tracker=Tracker(None, None)):
        got.update({o.id: o.text for o in batch})
    assert got == expected


@pytest.mark.parametrize("adapter", [LORA, FULL], ids=["lora", "full"])
@pytest.mark.parametrize("name", ["grpo", "reinforce_pp", "ppo"])
def test_one_online_update_changes_the_weights(tiny_model: str, adapter: Adapter, name: str) -> None:
    from selfimprove import registry
    from selfimprove.training.trainer import Trainer

    t = Trainer(tiny_model, adapter, registry.get("updater", name)(learning_rate=1e-2), seed=0, total_steps=2)
    before = {k: v.detach().clone() for k, v in t.model.named_parameters() if v.requires_grad}
    metrics = t.step(rollouts(), seed=0)
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    after = dict(t.model.named_parameters())
    assert any(not torch.equal(before[k], after[k].detach()) for k in before)


@pytest.mark.parametrize("adapter", [LORA, FULL], ids=["lora", "full"])
@pytest.mark.parametrize("name", ["sft", "dpo"])
def test_one_offline_update_changes_the_weights(tiny_model: str, tmp_path: Path, adapter: Adapter, name: str) -> None:
    from safetensors.torch import load_file

    from selfimprove import registry
    from selfimprove.updaters import UpdateContext

    updater = registry.get("updater", name)(learning_rate=1e-2, batch_size=2, max_steps=1)
    ctx = UpdateContext(base=tiny_model, adapter=adapter, init=None, examples=rollouts(4), output_dir=tmp_path / "out",
                        work_dir=tmp_path / "work", seed=0, iteration=1, show_progress=False)  # fmt: skip
    metrics = updater.update(ctx)
    assert math.isfinite(metrics["loss"]) and metrics["steps"] == 1
    if adapter.type == "lora":
        weights = load_file(ctx.output_dir / "adapter_model.safetensors")
        assert any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k)  # B starts at zero
    else:
        trained = load_file(ctx.output_dir / "model.safetensors")
        start = load_file(Path(tiny_model) / "model.safetensors")
        # saved in bf16 from fp32 weights: unchanged weights would equal the start rounded the same way
        assert any(not torch.equal(trained[k], start[k].to(trained[k].dtype)) for k in start)


def test_bf16_log_probs_agree_with_fp32(tiny_model: str) -> None:
    from transformers import AutoModelForCausalLM

    from selfimprove.tokens import encode
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    t = Trainer(tiny_model, FULL, GRPO(), seed=0, total_steps=1)
    examples = rollouts()
    pairs = [encode(t.tokenizer, e.prompt, e.completion, None) for e in examples]
    prompts, completions = [p for p, _ in pairs], [c for _, c in pairs]
    bf16 = t._score(t.accelerator.unwrap_model(t.actor), prompts, completions, t.tokenizer.pad_token_id)[0]
    reference = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    errors = []
    with torch.no_grad():
        for p, c, got in zip(prompts, completions, bf16, strict=True):
            logits = reference(torch.tensor([p + c])).logits[0, len(p) - 1 : -1]
            want = logits.log_softmax(-1).gather(-1, torch.tensor(c)[:, None]).squeeze(-1)
            errors.append((got - want).abs())
    errors = torch.cat(errors)
    assert errors.mean() <= BF16_MEAN_TOLERANCE and errors.max() <= BF16_MAX_TOLERANCE, (errors.mean(), errors.max())
