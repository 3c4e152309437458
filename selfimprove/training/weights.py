"""The policy's weights under the names of its own checkpoint, LoRA merged in: what vLLM's weight push sends and
what a generation model gathered from sharded weights is given (``training.sharding``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import torch

_PEFT_PREFIX = re.compile(r"^base_model\.model\.")


def checkpoint_names(model: Any, adapted_only: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` in the names of the model's own checkpoint, which vLLM's ``load_weights`` maps onto its
    fused layers itself (q, k, v into one ``qkv_proj``). A PEFT model gives its merged weights: each adapted layer's
    ``W + scale * B A`` under the base layer's name, the LoRA matrices left out; the rest as they are, or not at all
    with ``adapted_only`` (frozen, they never change from what the engine loaded)."""
    from peft.tuners.lora import LoraLayer

    adapted = {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}
    for name, param in model.named_parameters():
        if ".lora_" in name:
            continue
        owner = name.rsplit(".base_layer.", 1)[0] if ".base_layer." in name else None
        if owner in adapted and name.endswith(".base_layer.weight"):
            layer = adapted[owner]
            delta = layer.get_delta_weight(layer.active_adapters[0])
            param = (param.float() + delta.float()).to(param.dtype)  # one rounding: small early updates survive
        elif adapted_only:
            continue
        clean = _PEFT_PREFIX.sub("", name).replace(".base_layer.", ".")
        yield clean, param.detach()
