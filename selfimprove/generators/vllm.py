"""Generation with vLLM, colocated in the training process, from the live policy's weights.

NOT YET RUN ON A GPU: this project's machines have no GPU, and the vLLM wheel (321 MiB, with its CUDA kernels)
cannot travel to the GPU machine it borrows (64 MiB per call). What is tested on CPU is everything that does not
need vLLM itself, against a stand-in for the engine: the mapping from the policy's parameter names to the checkpoint
names vLLM's ``load_weights`` takes (LoRA merged into them), the bucketing of the weights pushed, which weights are
pushed when, the prompts, sampling parameters and outputs of a generate call, and the importance-sampling
correction between vLLM's and the trainer's log-probs.

How it works. One engine per process and base model, shared by every vllm generator of the run (roles, judges,
evaluation), made on first use in this process (vLLM's ``external_launcher`` backend, so that its model is
reachable) with a share of the GPU's memory (``gpu_memory_utilization``, 0.3 by default: generation and training
share the device). Before each generate call, unless the engine holds the weights asked for already
(``weights_key``), they go to the engine in buckets of about ``bucket_mb``: full fine-tuning pushes the parameters
as they are; LoRA pushes the merged weights ``W + scale * B A`` of the adapted layers, and, while the engine holds
an earlier version of the same policy, nothing else (the frozen rest is already there), which serves the adapter at
the base model's speed (vLLM's LoRA path costs 1.33-1.39x per token, a peer measured) and sends a fraction of the
model. ``sleep_level`` 1 or 2 frees the engine's memory after each generation for the update; level 2 leaves the
weights' memory undefined after wake-up, so the next push sends them all (a peer served such weights silently).
Each completion keeps the log-prob vLLM sampled each token with (after temperature, which validation makes the
updater's), so the update can correct for the small mismatch between the two engines' numbers
(``selfimprove.objectives.losses.importance_weights``: the truncated ratio trainer/sampler, capped at 3, on the
clipped surrogate; TRL's per-token truncated mode). With ``top_p`` < 1 or ``top_k`` the sampler's log-probs are
those of the truncated distribution, and the ratios are biased: leave them off for training. No per-token entropy
is recorded (vLLM does not return it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from selfimprove.errors import UserError
from selfimprove.generators import Output, Request
from selfimprove.models import Policy
from selfimprove.models.live import LivePolicy, as_live
from selfimprove.progress import Tracker

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


def buckets(weights: Iterable[tuple[str, torch.Tensor]], max_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Consecutive groups of weights of at most ``max_bytes`` each (a tensor larger than that goes alone): one push
    per group instead of one per tensor, which a peer measured at 0.6 s against 0.15 s for a 0.5B model."""
    group: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, tensor in weights:
        nbytes = tensor.numel() * tensor.element_size()
        if group and size + nbytes > max_bytes:
            yield group
            group, size = [], 0
        group.append((name, tensor))
        size += nbytes
    if group:
        yield group


class SyncState:
    """Which weights the engine holds, as a key (``weights_key``): a push is needed when the policy asked for has
    another key (the live policy moved, or another policy), or the engine dropped its weights in a deep sleep."""

    def __init__(self) -> None:
        self.pushed: tuple | None = None

    def needs_push(self, key: tuple) -> bool:
        return self.pushed != key

    def pushed_key(self, key: tuple) -> None:
        self.pushed = key

    def holds_live_policy(self) -> bool:
        """The engine holds some version of the trainer's live policy: with LoRA only the adapted layers differ."""
        return self.pushed is not None and self.pushed[0] == "live"

    def slept(self) -> None:
        """vLLM's deepest sleep drops the weights and serves the base model's after wake-up: push everything."""
        self.pushed = None


BASE = ("base",)  # the weights the engine loads at the start: the run's base model


def weights_key(live: LivePolicy) -> tuple:
    """What identifies the weights a policy generates with: the trainer's live policy by its version, a policy on
    disk by its checkpoint, and the base model (a loaded policy without a checkpoint, the starting policy a judge
    uses) as ``BASE``."""
    from selfimprove.training.trainer import TrainedPolicy

    if isinstance(live, TrainedPolicy):
        return ("live", live.version)
    checkpoint = getattr(live, "checkpoint", None)
    return BASE if checkpoint is None else ("checkpoint", checkpoint)


def sampling_settings(
    temperature: float, top_p: float, top_k: int, max_new_tokens: int, stop: list[str], seed: int
) -> dict[str, Any]:
    """Our generation settings as vLLM's ``SamplingParams`` arguments: greedy at temperature 0, ``top_k`` 0 means
    none (-1 in vLLM), one log-prob per sampled token (the sampler's, for the correction)."""
    greedy = temperature <= 0
    return {
        "temperature": 0.0 if greedy else temperature,
        "top_p": 1.0 if greedy else top_p,
        "top_k": -1 if greedy or top_k <= 0 else top_k,
        "max_tokens": max_new_tokens,
        "stop": list(stop) or None,
        "seed": seed,
        "logprobs": 0,
    }


def base_model(live: LivePolicy) -> str:
    """The base model the engine starts from (every policy of a run shares it)."""
    trainer = getattr(live, "trainer", None)
    return trainer.base if trainer is not None else live.policy.base  # type: ignore[attr-defined]


@dataclass
class Engine:
    """A vLLM engine and what it holds. One per process and base model: each engine takes its share of the GPU's
    memory, and sleep mode's memory pool belongs to the process."""

    llm: Any
    settings: tuple
    sync: SyncState = field(default_factory=SyncState)
    asleep: bool = False


_ENGINES: dict[str, Engine] = {}


@contextmanager
def _single_process_launcher() -> Iterator[None]:
    """The variables ``external_launcher`` reads when no launcher set them (one process), set only while the engine
    starts: left behind, they would turn a later Accelerator or Trainer distributed."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    added = {k: v for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "LOCAL_RANK": "0",
                                "WORLD_SIZE": "1"}.items() if k not in os.environ}  # fmt: skip
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class VLLMGenerator:
    """vLLM generation colocated with the trainer, weights pushed from the live policy (not yet run on a GPU)."""

    live = True

    def __init__(
        self,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_new_tokens: int = 256,
        stop: list[str] | None = None,
        gpu_memory_utilization: float = 0.3,
        bucket_mb: int = 512,
        max_model_len: int | None = None,
        sleep_level: int = 0,
    ):
        if temperature < 0 or max_new_tokens < 1 or not 0 < gpu_memory_utilization <= 1 or bucket_mb < 1:
            raise UserError(
                "vllm: temperature >= 0, max_new_tokens >= 1, 0 < gpu_memory_utilization <= 1, bucket_mb >= 1"
            )
        if sleep_level not in (0, 1, 2):
            raise UserError("vllm: sleep_level is 0 (stay awake), 1 (weights to host memory) or 2 (weights dropped)")
        self.temperature, self.top_p, self.top_k, self.max_new_tokens = temperature, top_p, top_k, max_new_tokens
        self.stop, self.bucket_mb, self.sleep_level = stop or [], bucket_mb, sleep_level
        self.settings = (gpu_memory_utilization, max_model_len, sleep_level)

    def engine(self, base: str) -> Engine:
        """The process's engine for ``base``, made on first use."""
        if base in _ENGINES:
            engine = _ENGINES[base]
            if engine.settings != self.settings:
                raise UserError("the vllm generators of a run share one engine: give them the same "
                                "gpu_memory_utilization, max_model_len and sleep_level")  # fmt: skip
            return engine
        try:
            from vllm import LLM
        except ImportError:
            raise UserError("generator vllm needs vLLM on a CUDA machine: pip install 'selfimprove[vllm]'") from None
        memory, max_model_len, sleep_level = self.settings
        with _single_process_launcher():
            llm = LLM(
                model=base, dtype="bfloat16", gpu_memory_utilization=memory, max_model_len=max_model_len,
                enable_prefix_caching=True, enable_sleep_mode=sleep_level > 0,
                # the engine's workers in this process, so that its model is reachable for load_weights
                distributed_executor_backend="external_launcher",
                # log-probs after temperature: those of the distribution sampled, as the trainer computes them
                logprobs_mode="processed_logprobs",
            )  # fmt: skip
        engine = _ENGINES[base] = Engine(llm, self.settings)
        engine.sync.pushed_key(BASE)
        return engine

    @staticmethod
    def wake(engine: Engine) -> None:
        if engine.asleep:
            engine.llm.wake_up()
            engine.asleep = False

    def sleep(self, engine: Engine) -> None:
        """Free the GPU memory generation held, for the update: level 1 keeps the weights in host memory, level 2
        leaves them undefined, after which the next push must send them all (``SyncState.slept``)."""
        if self.sleep_level and not engine.asleep:
            engine.llm.sleep(level=self.sleep_level)
            engine.asleep = True
            if self.sleep_level == 2:
                engine.sync.slept()

    def push(self, engine: Engine, live: LivePolicy) -> None:
        """The policy's weights into the engine, in buckets, unless the engine holds them already."""
        from selfimprove.training.trainer import TrainedPolicy

        key = weights_key(live)
        if not engine.sync.needs_push(key):
            return
        if isinstance(live, TrainedPolicy):  # the trained model itself: LoRA merged on the fly, no merged copy
            model = live.trainer.model
            lora_moved = hasattr(model, "peft_config") and engine.sync.holds_live_policy()
            names = checkpoint_names(model, adapted_only=lora_moved)
        else:
            names = checkpoint_names(live.inference_model())
        runner = engine.llm.llm_engine.model_executor.driver_worker.model_runner.model
        with torch.no_grad():
            for group in buckets(names, self.bucket_mb * 2**20):
                runner.load_weights(weights=group)
        engine.llm.reset_prefix_cache()  # cached keys and values belong to the old weights
        engine.sync.pushed_key(key)

    def generate(
        self,
        policy: Policy | LivePolicy,
        requests: list[Request],
        *,
        seed: int,
        done: set[str],
        tracker: Tracker,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[list[Output]]:
        """One batch: vLLM schedules the requests itself. Every process yields once (its share may be empty)."""
        from selfimprove.generators.hf import batch_seed
        from selfimprove.prompts import render_chat

        rank, world = shard
        mine = [r for i, r in enumerate(requests) if i % world == rank and r.id not in done]
        if not mine:
            yield []
            return
        from vllm import SamplingParams

        live = as_live(policy)
        engine = self.engine(base_model(live))
        self.wake(engine)
        self.push(engine, live)
        texts = [render_chat(live.tokenizer, r.messages) for r in mine]
        # token ids, as the HF generator and the trainer encode them: vLLM's own encoding would add a second BOS
        prompts = [{"prompt_token_ids": ids} for ids in live.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        params = [
            SamplingParams(**sampling_settings(self.temperature, self.top_p, self.top_k, self.max_new_tokens,
                                               self.stop, batch_seed(seed, r.id)))
            for r in mine
        ]  # fmt: skip
        outputs = []
        for request, result in zip(mine, engine.llm.generate(prompts, params, use_tqdm=False), strict=True):
            sample = result.outputs[0]
            ids = list(sample.token_ids)
            logps = [step[token].logprob for step, token in zip(sample.logprobs or [], ids, strict=False)]
            outputs.append(
                Output(request.id, sample.text, len(ids), None, ids, logps if len(logps) == len(ids) else None)
            )
        tracker.advance(len(mine), sum(o.num_tokens for o in outputs))
        self.sleep(engine)
        yield outputs
