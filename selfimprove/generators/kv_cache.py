"""A key-value cache for transformers' ``generate`` that writes each new position in place.

transformers' ``DynamicLayer`` appends a token by concatenating the whole cache with it, for every layer at every
generated token, so decoding copies the cache once per token (12% of a GRPO step's generation time on CPU,
``benchmarks/generation_roofline.py``). Its ``StaticLayer`` writes in place but hands attention the full
preallocated length at every step, padding included. This layer does both right: it writes into a buffer sized
once for the batch (prompt width + new tokens) and hands attention a view of the filled positions only. It is a
``DynamicLayer`` in every other respect (masks, crop, batch selection), and reallocates when an inherited operation
replaced its view, so any transformers path that edits the cache stays correct.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import Cache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """One decoder layer's keys and values, in a buffer of ``capacity`` positions (grown by doubling if exceeded)."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self._buffers: tuple[Any, Any] | None = None

    def _holds_views(self) -> bool:
        """Whether ``keys``/``values`` are still views at the start of this layer's buffers."""
        if self._buffers is None:
            return False
        keys, values = self._buffers
        return (
            self.keys.data_ptr() == keys.data_ptr() and self.values.data_ptr() == values.data_ptr()
            and self.keys.shape[0] == keys.shape[0] and self.keys.stride() == keys.stride()
        )  # fmt: skip

    def _reallocate(self, needed: int) -> None:
        import torch

        length = self.keys.shape[-2]
        if needed > self.capacity:
            self.capacity = max(needed, 2 * self.capacity)
        buffers = []
        for filled in (self.keys, self.values):
            batch, heads, _, dim = filled.shape
            buffer = torch.empty(batch, heads, self.capacity, dim, dtype=filled.dtype, device=filled.device)
            buffer[:, :, :length] = filled
            buffers.append(buffer)
        self._buffers = (buffers[0], buffers[1])

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states[:, :, :0], value_states[:, :, :0]
        start, end = self.keys.shape[-2], self.keys.shape[-2] + key_states.shape[-2]
        if not self._holds_views() or end > self._buffers[0].shape[-2]:  # type: ignore[index]
            self._reallocate(end)
        keys, values = self._buffers  # type: ignore[misc]
        keys[:, :, start:end] = key_states
        values[:, :, start:end] = value_states
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        return self.keys, self.values

    def reset(self) -> None:
        self._buffers = None
        super().reset()


def preallocated_cache(config: Any, capacity: int) -> Cache | None:
    """An empty cache for ``generate`` (or a prefix pass) whose layers hold ``capacity`` positions without copying;
    None for a model with other than full-attention layers (sliding windows, linear attention), which keeps
    transformers' own cache."""
    text = config.get_text_config(decoder=True)
    if any(t != "full_attention" for t in getattr(text, "layer_types", None) or []) or getattr(
        text, "sliding_window", None
    ):
        return None
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(text.num_hidden_layers)])
