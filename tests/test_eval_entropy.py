"""Token entropy logged during generation: log V for a uniform policy, and equal to a separate forward pass."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import build_tiny_model

from selfimprove.generators import Request
from selfimprove.generators.hf import HFGenerator
from selfimprove.models import Policy
from selfimprove.progress import Tracker
from selfimprove.prompts import render_chat


def _outputs(gen: HFGenerator, model: str, requests: list[Request]) -> list:
    batches = gen.generate(Policy(model), requests, seed=0, done=set(), tracker=Tracker(None, None))
    return [o for batch in batches for o in batch]


def _requests(n: int) -> list[Request]:
    return [Request(f"r{i}", [{"role": "user", "content": "ab" * (i + 1)}]) for i in range(n)]


def test_a_uniform_policy_has_entropy_log_v(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    path = build_tiny_model(tmp_path / "uniform")
    model = AutoModelForCausalLM.from_pretrained(path)
    model.lm_head.weight.data.zero_()  # every logit 0: the next token is uniform over the vocabulary
    model.save_pretrained(path)
    outputs = _outputs(HFGenerator(temperature=1.0, max_new_tokens=5, batch_size=4), str(path), _requests(3))
    vocab = model.config.vocab_size
    assert all(o.entropy == pytest.approx(math.log(vocab), rel=1e-5) for o in outputs)


def test_logged_entropy_equals_a_forward_pass_over_the_completion(tiny_model: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    outputs = _outputs(HFGenerator(temperature=0.0, max_new_tokens=6, batch_size=4), tiny_model, _requests(4))
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for request, out in zip(_requests(4), sorted(outputs, key=lambda o: o.id), strict=True):
        prompt = tokenizer(render_chat(tokenizer, request.messages), add_special_tokens=False)["input_ids"]
        completion = tokenizer(out.text, add_special_tokens=False)["input_ids"]
        completion += [tokenizer.eos_token_id] * (out.num_tokens - len(completion))  # decoding drops the EOS
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : len(prompt) - 1 + len(completion)]
        expected = torch.special.entr(torch.softmax(logits, -1)).sum(-1).mean().item()
        assert out.entropy == pytest.approx(expected, rel=1e-4)


def test_entropy_can_be_switched_off(tiny_model: str) -> None:
    outputs = _outputs(HFGenerator(max_new_tokens=3, entropy=False), tiny_model, _requests(2))
    assert all(o.entropy is None for o in outputs)


def test_recorder_matches_the_definition_with_masked_logits() -> None:
    import torch

    from selfimprove.generators.hf import EntropyRecorder

    logits = torch.randn(3, 50)
    logits[0, :10] = float("-inf")  # tokens an earlier processor banned: probability 0, no contribution
    logits[2] = 0.0  # uniform over 50 tokens
    recorder = EntropyRecorder()
    assert recorder(None, logits) is logits
    recorder(None, logits)
    expected = torch.special.entr(torch.softmax(logits, dim=-1)).sum(-1)
    got = recorder.means([2, 1, 2])
    assert got == pytest.approx(expected.tolist(), rel=1e-5) and got[2] == pytest.approx(math.log(50), rel=1e-6)
    assert recorder.means([0, 1, 1])[0] is None
