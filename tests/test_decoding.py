"""The HF generator's decoding parts: the in-place key-value cache and the inverse-CDF sampler."""

from __future__ import annotations

import pytest
import torch

from selfimprove.generators.kv_cache import PreallocatedLayer, preallocated_cache
from selfimprove.generators.sampler import InverseCDFSampler, sampling_processors


def _decode(model, cache, ids: torch.Tensor, mask: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Greedy decoding by hand through ``cache``: the logits at every step, after the prompt's."""
    out = model(input_ids=ids, attention_mask=mask, cache=cache, use_cache=True)
    logits = [out.logits[:, -1]]
    for _ in range(steps):
        token = logits[-1].argmax(-1, keepdim=True)
        mask = torch.cat([mask, torch.ones_like(token)], dim=1)
        out = model(input_ids=token, attention_mask=mask, cache=out.cache, use_cache=True)
        logits.append(out.logits[:, -1])
    return logits


def test_preallocated_cache_gives_the_dynamic_cache_logits(tiny_model: str) -> None:
    from transformers import AutoModelForCausalLM, DynamicCache

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ids = torch.tensor([[0, 0, 5, 6, 7], [3, 4, 5, 6, 7]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.inference_mode():
        expected = _decode(model, DynamicCache(), ids, mask, steps=6)
        # capacity 7 < 5 + 6 positions: the layer grows its buffers mid-decode and stays exact
        cache = preallocated_cache(model.config, capacity=7)
        got = _decode(model, cache, ids, mask, steps=6)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e)
    layer = cache.layers[0]
    assert isinstance(layer, PreallocatedLayer) and layer.get_seq_length() == 11 and layer.capacity >= 11
    keys = layer._buffers[0]
    assert layer.keys.data_ptr() == keys.data_ptr()  # attention reads a view of the buffer, not a copy


def test_preallocated_cache_survives_transformers_edits(tiny_model: str) -> None:
    """Operations inherited from DynamicLayer (repeat for a shared prefix, row selection, crop) replace the
    layer's view; the next write must land after the kept positions, as in a DynamicCache."""
    from transformers import AutoModelForCausalLM, DynamicCache

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prefix, suffix = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[5, 6], [7, 8], [9, 10]])
    results = []
    with torch.inference_mode():
        for cache in (DynamicCache(), preallocated_cache(model.config, capacity=16)):
            cache = model(input_ids=prefix, cache=cache, use_cache=True).cache
            cache.batch_repeat_interleave(3)
            out = model(input_ids=suffix, cache=cache, use_cache=True)
            cache = out.cache
            cache.batch_select_indices(torch.tensor([0, 2]))
            cache.crop(-1)
            results.append(model(input_ids=torch.tensor([[11], [12]]), cache=cache, use_cache=True).logits)
            assert cache.get_seq_length() == 6
    torch.testing.assert_close(results[1], results[0])


def test_sliding_window_models_keep_transformers_cache() -> None:
    from transformers import MistralConfig

    config = MistralConfig(num_hidden_layers=2, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                           num_key_value_heads=1, sliding_window=8)  # fmt: skip
    assert preallocated_cache(config, capacity=32) is None


def test_inverse_cdf_sampler_draws_from_the_softmax() -> None:
    torch.manual_seed(0)
    logits = torch.tensor([1.0, 0.0, float("-inf"), 2.0, -1.0, 0.5])
    rows = 40_000
    tokens = InverseCDFSampler()(None, logits.repeat(rows, 1)).argmax(-1)
    counts = torch.bincount(tokens, minlength=6).double()
    p = torch.softmax(logits.double(), -1)
    assert counts[2] == 0  # a masked token is never drawn
    sigma = (rows * p * (1 - p)).sqrt()
    assert ((counts - rows * p).abs() <= 5 * sigma + 1e-9).all(), (counts / rows, p)


def test_inverse_cdf_sampler_never_draws_a_masked_last_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """At the largest uniform variate, u * total can round up to the total; the draw must stay on a token with
    probability, not fall on a masked one at the end of the vocabulary."""
    monkeypatch.setattr(torch, "rand_like", lambda t: torch.full_like(t, 1.0))  # beyond the largest: the bound
    logits = torch.tensor([[0.3, 0.1, 0.2, float("-inf"), float("-inf")]])
    out = InverseCDFSampler()(None, logits)
    assert out.argmax(-1).item() == 2 and torch.isfinite(out).sum() == 1


def test_top_k_one_samples_the_argmax() -> None:
    torch.manual_seed(1)
    logits = torch.randn(64, 50)
    scores = logits.clone()
    for processor in sampling_processors(temperature=0.7, top_k=1, top_p=1.0):
        scores = processor(None, scores)
    assert torch.equal(scores.argmax(-1), logits.argmax(-1))
    assert sampling_processors(temperature=0.0, top_k=5, top_p=0.9) == []


def test_sampling_without_top_k_reaches_the_whole_vocabulary(tiny_model: str) -> None:
    """``top_k: 0`` means no truncation: the policy-gradient update scores the full softmax, so generation must
    sample from it (transformers' generation defaults include a top-k of 50)."""
    from selfimprove.generators import Request
    from selfimprove.generators.hf import HFGenerator
    from selfimprove.models import Policy
    from selfimprove.progress import Tracker

    gen = HFGenerator(temperature=100.0, max_new_tokens=1, batch_size=200, entropy=False, share_prefix=False)
    requests = [Request(f"r{i}", [{"role": "user", "content": "same prompt"}]) for i in range(200)]
    batches = gen.generate(Policy(tiny_model), requests, seed=0, done=set(), tracker=Tracker(None, None))
    first = {o.token_ids[0] for batch in batches for o in batch}
    # near-uniform over ~100 tokens, 200 draws: about 88 distinct first tokens expected; top-50 allows 50
    assert len(first) > 50


def test_cascade_attention_gives_the_copied_prefix_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows that read a shared prefix once (cascade attention) get the logits of rows that each hold a copy of it,
    through the suffix pass and every decoding step, with padding between prefix and suffix and grouped-query
    heads (3 query heads per key-value head)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfimprove.generators import cascade

    steps, real = [], cascade._decode_step
    monkeypatch.setattr(cascade, "_decode_step", lambda *args: steps.append(1) or real(*args))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, attn_implementation="sdpa")  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    prefix = torch.tensor([[1, 2, 3, 4, 5, 6]])
    ids = torch.tensor([[0, 0, 7, 8], [9, 10, 11, 12], [0, 13, 14, 15]])  # left padding after the prefix
    mask = torch.cat([torch.ones(3, 6, dtype=torch.long), (ids != 0).long()], dim=1)
    with torch.inference_mode():
        copied = model(input_ids=prefix, cache=preallocated_cache(config, 32), use_cache=True).cache
        copied.batch_repeat_interleave(3)
        expected = _decode(model, copied, ids, mask, steps=5)
        once = model(input_ids=prefix, cache=preallocated_cache(config, 32), use_cache=True).cache
        cache = cascade.shared_prefix_cache(once, capacity=2)  # grows mid-decode
        with cascade.cascade_attention(model, cache):
            got = _decode(model, cache, ids, mask, steps=5)
    assert len(steps) == 2 * 5  # every decoding step of both layers took the cascade
    assert model.config._attn_implementation == "sdpa"  # restored after the block
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e)
    layer = cache.layers[0]
    assert isinstance(layer, cascade.SharedPrefixLayer) and layer.get_seq_length() == 6 + 4 + 5
    assert layer.keys.shape[0] == 3 and layer.prefix_keys.shape[1] == 6  # the prefix is held once, at batch 1
