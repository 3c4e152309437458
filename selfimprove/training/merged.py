"""LoRA generation from a plain copy of the model with the adapter merged into its weights.

Sampling through the PEFT model costs every adapted layer two extra small matmuls per token; on the embedded model
on CPU a merged copy generates 12-25% faster (SmolLM2-135M, r=16, all linear layers, batch 16 x 64 sampled
tokens). The copy shares every parameter that LoRA leaves frozen (embeddings, norms, the LM head) with the
trained model, so it costs only the adapted layers' weights, and ``sync`` rewrites them as ``W + scale * B A``
from the unmodified base weights: merging in place and unmerging after would drift the base weights by rounding
over hundreds of steps.
"""

from __future__ import annotations

from typing import Any

import torch


class MergedCopy:
    def __init__(self, peft_model: Any, plain_model: Any):
        from peft.tuners.lora import LoraLayer

        base = peft_model.get_base_model()
        adapted = {name: module for name, module in base.named_modules() if isinstance(module, LoraLayer)}
        plain = dict(plain_model.named_modules())
        self.pairs = [(plain[name], module) for name, module in adapted.items()]
        trained = dict(base.named_parameters(remove_duplicate=False))
        for name, param in list(plain_model.named_parameters(remove_duplicate=False)):
            owner, _, attr = name.rpartition(".")
            if owner not in adapted and name in trained and trained[name].shape == param.shape:
                setattr(plain[owner], attr, trained[name])  # frozen under LoRA: one tensor for both
        self.model = plain_model.eval()

    @torch.no_grad()
    def sync(self) -> None:
        for plain, lora in self.pairs:
            name = lora.active_adapters[0]
            plain.weight.copy_(lora.base_layer.weight + lora.get_delta_weight(name).to(plain.weight.dtype))


def base_view(peft_model: Any, plain_model: Any) -> Any:
    """``plain_model`` with every parameter replaced by the frozen base weights inside ``peft_model``: the starting
    model (the adapter switched off) as a model of its own, for generation, without a second copy of the weights."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    modules = dict(base.named_modules())
    plain = dict(plain_model.named_modules())
    for name, param in list(plain_model.named_parameters(remove_duplicate=False)):
        owner, _, attr = name.rpartition(".")
        source = modules.get(owner)
        if isinstance(source, LoraLayer):
            source = source.base_layer
        frozen = getattr(source, attr, None)
        if frozen is None or frozen.shape != param.shape:
            raise RuntimeError(f"the base model has no parameter for {name}")
        setattr(plain[owner], attr, frozen)
    return plain_model.eval()
