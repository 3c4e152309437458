"""The online trainer's state sharded over the processes: PyTorch FSDP2 (``fully_shard``), ``trainer.sharding: fsdp``.

Each decoder layer (the model's ``_no_split_modules``, as accelerate's FSDP auto-wrap picks them) and then the
actor as a whole (embeddings, final norm, LM head, PPO's value head) become FSDP modules: every process keeps a
1/P slice of each parameter, of its gradient and of AdamW's moments; a layer's parameters are all-gathered for its
forward and backward and freed after. The update is DDP's: the loss weights are the whole minibatch's and FSDP's
reduce-scatter averages the gradients as DDP's all-reduce does; only the rows' shared prompt prefix runs in every
row (the updater's ``share_prefix`` off, see ``Trainer``).

Every forward is a collective, so every process must run the same number of them: the update already pads each
process's share of a minibatch to the same number of micro-batches, scoring does the same (``Trainer._score``),
and generation, whose work differs between processes, runs on gathered weights (``gathered``) in a plain model
without FSDP's hooks (``GatheredModel``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from selfimprove.training.weights import checkpoint_names

DISTRIBUTED = "sharded"  # torch.distributed.checkpoint folder of a checkpoint: parameters and optimizer moments


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The model's repeated blocks, by the class names transformers marks as not to be split across devices."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    return [m for m in base.modules() if type(m).__name__ in names]


def shard(actor: torch.nn.Module, bf16: bool) -> None:
    """``actor`` sharded in place: each decoder layer, then the rest. ``bf16``: parameters all-gathered and
    computed in bf16, gradients reduced in fp32 (the fp32 master weights stay sharded)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
    kwargs = {"mp_policy": policy} if policy else {}
    for layer in decoder_layers(actor.policy):
        fully_shard(layer, **kwargs)
    fully_shard(actor, **kwargs)


@contextmanager
def gathered(module: torch.nn.Module) -> Iterator[None]:
    """Every FSDP module in ``module`` unsharded for the block: its parameters are whole tensors on the modules
    (all-gathered, in bf16 under mixed precision), freed after. Collective: every process must enter it."""
    from torch.distributed.fsdp import FSDPModule

    modules = [m for m in module.modules() if isinstance(m, FSDPModule)]
    for m in modules:
        m.unshard()
    try:
        yield
    finally:
        for m in modules:
            m.reshard()


class GatheredModel:
    """A plain model of the policy's architecture without storage of its own (made on the meta device), given the
    gathered weights for a generation and emptied after: generation differs in work between processes, so it must
    not go through FSDP's hooks, which gather collectively at every forward. LoRA is merged into the weights
    (``checkpoint_names``): the model generates at the base model's speed."""

    def __init__(self, policy: Any):
        from accelerate import init_empty_weights
        from transformers import AutoModelForCausalLM

        base = policy.get_base_model() if hasattr(policy, "get_base_model") else policy
        with init_empty_weights():  # parameters on the meta device; buffers (rotary frequencies) real
            self.model = AutoModelForCausalLM.from_config(base.config)
        self.model.generation_config = base.generation_config
        buffers = dict(base.named_buffers())
        for name, buffer in list(self.model.named_buffers()):
            owner, _, attr = name.rpartition(".")
            source = buffers.get(name, buffer)
            self.model.get_submodule(owner).register_buffer(attr, source.to(base.device), persistent=False)
        self.model.eval().requires_grad_(False)
        self.model.tie_weights()  # a tied LM head is the embeddings: one parameter, filled once
        self.names = [name for name, _ in self.model.named_parameters()]

    @contextmanager
    def filled(self, policy: Any) -> Iterator[Any]:
        """The model holding ``policy``'s whole weights (call inside ``gathered``); back on the meta device after."""
        with torch.no_grad():
            weights = dict(checkpoint_names(policy))
        self._assign(weights)
        try:
            empty = [name for name, p in self.model.named_parameters() if p.is_meta]
            if empty:
                raise RuntimeError(f"the gathered weights leave {empty[:5]} of the generation model empty")
            yield self.model
        finally:
            self._assign({name: torch.empty_like(t, device="meta") for name, t in weights.items()})

    def _assign(self, weights: dict[str, torch.Tensor]) -> None:
        for name in self.names:
            if name in weights:  # a tied LM head has no entry of its own: the embeddings' is tied to it after
                owner, _, attr = name.rpartition(".")
                setattr(self.model.get_submodule(owner), attr, torch.nn.Parameter(weights[name], requires_grad=False))
        self.model.tie_weights()


def pad_forward_count(count: int, world: int, device: Any) -> int:
    """The largest of every process's ``count``: how many forwards each must run so that FSDP's collectives pair."""
    if world == 1:
        return count
    import torch.distributed as dist

    tensor = torch.tensor([count], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def full_norm(norm: torch.Tensor) -> torch.Tensor:
    """A gradient norm as a plain tensor (FSDP's clipping returns a DTensor)."""
    from torch.distributed.tensor import DTensor

    return norm.full_tensor() if isinstance(norm, DTensor) else norm
