"""Cascade attention: a prefix that every row of a batch shares is held and read once, not once per row.

The HF generator computes a shared prefix (a system prompt, few-shot exemplars) in one batch-1 pass. Copying its
keys and values to every row, as transformers' caches require, makes each decoding step read the prefix once per
row in every layer: on the GRPO recipe's few-shot prompt (174 shared tokens, 64 rows) that reading was a fifth of
generation time on CPU (``benchmarks/generation_roofline.py``). Here the cache keeps the prefix at batch 1 and each
row's own positions after it. At a decoding step (one query per row) attention scores all rows' queries against
the prefix in one matrix product per key-value head, scores each row against its own positions, and takes one
softmax over both; this is the same attention, summed in another order. A step with several queries per row (the
suffix pass before decoding) gives the delegate attention the prefix expanded for that call only.

transformers has no such attention, so it is registered through its ``AttentionInterface`` and switched on for one
``generate`` call by :func:`cascade_attention`. Only models on sdpa attention use it (the boolean masks here are
sdpa's).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from selfimprove.generators.kv_cache import PreallocatedLayer

NAME = "selfimprove_cascade"


class SharedPrefixLayer(PreallocatedLayer):
    """One decoder layer's cache: the shared prefix's keys and values at batch 1, then each row's own positions
    (written in place, as :class:`PreallocatedLayer`). ``keys``/``values`` hold the rows' own positions only; row
    selection and repetition act on them, and the prefix is the same for every row whichever rows remain."""

    def __init__(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor, capacity: int):
        super().__init__(capacity)
        self.prefix_keys, self.prefix_values = prefix_keys[0], prefix_values[0]  # (kv heads, prefix, head dim)
        self.prefix_keys_t = self.prefix_keys.transpose(1, 2).contiguous()  # laid out once for the score product

    def get_seq_length(self) -> int:
        return self.prefix_keys.shape[-2] + super().get_seq_length()

    def crop(self, tokens_to_remove: int) -> None:
        if -tokens_to_remove > super().get_seq_length():
            raise NotImplementedError("cannot crop into a shared prefix")
        super().crop(tokens_to_remove)


def shared_prefix_cache(prefix: Cache, capacity: int) -> Cache:
    """A cache whose layers hold ``prefix`` (a batch-1 cache of the shared tokens) once and room for ``capacity``
    positions of each row after it."""
    return Cache(layers=[SharedPrefixLayer(layer.keys, layer.values, capacity) for layer in prefix.layers])


_cache: ContextVar[Cache | None] = ContextVar("selfimprove_cascade_cache", default=None)


def _decode_step(
    query: torch.Tensor, layer: SharedPrefixLayer, keys: torch.Tensor, values: torch.Tensor,
    mask: torch.Tensor | None, scaling: float,
) -> torch.Tensor:  # fmt: skip
    """Attention for one query per row: (rows, heads, 1, dim) -> (rows, 1, heads, dim)."""
    rows, heads, _, dim = query.shape
    kv_heads, prefix = layer.prefix_keys.shape[0], layer.prefix_keys.shape[1]
    group = heads // kv_heads
    q = query.reshape(rows, kv_heads, group, dim)  # head h reads key-value head h // group, as repeat_kv does
    by_head = q.transpose(0, 1).reshape(kv_heads, rows * group, dim)  # every row's queries against the one prefix
    prefix_scores = torch.bmm(by_head, layer.prefix_keys_t).view(kv_heads, rows, group, prefix).transpose(0, 1)
    scores = torch.cat([prefix_scores, torch.matmul(q, keys.transpose(-1, -2))], dim=-1).mul_(scaling)
    if mask is not None:  # (rows, 1, 1, prefix + own): True where a row may attend (sdpa's boolean mask)
        scores.masked_fill_(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
    from_prefix = torch.bmm(probs[..., :prefix].transpose(0, 1).reshape(kv_heads, rows * group, prefix),
                            layer.prefix_values)  # fmt: skip
    out = from_prefix.view(kv_heads, rows, group, dim).transpose(0, 1) + torch.matmul(probs[..., prefix:], values)
    return out.reshape(rows, 1, heads, dim)


def cascade_attention_forward(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    attention_mask: torch.Tensor | None, scaling: float | None = None, **kwargs: Any,
) -> tuple[torch.Tensor, None]:  # fmt: skip
    """The attention function registered as ``selfimprove_cascade`` (transformers' attention-interface signature)."""
    cache = _cache.get()
    layer = cache.layers[module.layer_idx] if cache is not None else None
    if not isinstance(layer, SharedPrefixLayer):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    if query.shape[2] == 1 and not kwargs.get("dropout"):  # the mask is sdpa's (registered below): boolean or None
        return _decode_step(query, layer, key, value, attention_mask, scaling or query.shape[-1] ** -0.5), None
    rows = key.shape[0]
    key = torch.cat([layer.prefix_keys.expand(rows, -1, -1, -1), key], dim=2)
    value = torch.cat([layer.prefix_values.expand(rows, -1, -1, -1), value], dim=2)
    return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)


AttentionInterface.register(NAME, cascade_attention_forward)
AttentionMaskInterface.register(NAME, sdpa_mask)


def applies(model: Any) -> bool:
    """Whether ``model`` can take cascade attention: sdpa attention, on CPU. On CUDA the fused sdpa kernels change
    the trade, and it is not measured there."""
    return model.device.type == "cpu" and model.config._attn_implementation == "sdpa"


@contextmanager
def cascade_attention(model: Any, cache: Cache) -> Iterator[None]:
    """Run ``model`` with cascade attention over ``cache`` for the duration of the block."""
    config, previous = model.config, model.config._attn_implementation
    token = _cache.set(cache)
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
        _cache.reset(token)
