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
weights' memory undefined after wake-up, so the next push sends them all (a peer served such weights silently) and
checks that every parameter of the engine's model was loaded. Waking up empties the trainer's cached memory, wakes
the weights, pushes, and only then wakes the KV cache, so the two never compete for memory.

Engine start-up is collective under ``external_launcher`` (every process of a run makes its engine in the same
call, even one whose share of a batch is empty) and reseeds Python's, NumPy's and torch's generators: the trainer's
generator states are kept and put back around it, so a resumed run samples as an uninterrupted one.
Each completion keeps the log-prob vLLM sampled each token with (after temperature, which validation makes the
updater's), so the update can correct for the small mismatch between the two engines' numbers
(``selfimprove.objectives.losses.importance_weights``: the truncated ratio trainer/sampler, capped at 3, on the
clipped surrogate; TRL's per-token truncated mode). With ``top_p`` < 1 or ``top_k`` the sampler's log-probs are
those of the truncated distribution, and the ratios are biased: leave them off for training. No per-token entropy
is recorded (vLLM does not return it).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from selfimprove.capabilities import LiveWeights
from selfimprove.errors import UserError
from selfimprove.generators import Output, Request
from selfimprove.models import Policy
from selfimprove.models.live import LivePolicy, as_live
from selfimprove.progress import Tracker


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
    if isinstance(live, LiveWeights):
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


@dataclass
class Engine:
    """A vLLM engine and what it holds. One per process and base model: each engine takes its share of the GPU's
    memory, and sleep mode's memory pool belongs to the process."""

    llm: Any
    settings: tuple
    max_model_len: int
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


@contextmanager
def _generators_kept() -> Iterator[None]:
    """Python's, NumPy's and torch's generator states, put back after the block: vLLM's start-up calls
    ``set_random_seed``, which would make a run that resumed after the engine started diverge from one that did not."""
    import numpy as np

    python, numpy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _detached(named: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    return ((name, tensor.detach()) for name, tensor in named)


def _load_all(model: Any, groups: list[list[tuple[str, torch.Tensor]]]) -> tuple[set[str] | None, set[str]]:
    """Runs inside the engine (``LLM.apply_model``): each bucket through the model's ``load_weights``; returns the
    parameter names loaded (None where the model does not report them) and the names the model has."""
    loaded: set[str] | None = set()
    with torch.no_grad():
        for group in groups:
            names = model.load_weights(weights=group)
            loaded = None if names is None or loaded is None else loaded | set(names)
    return loaded, {name for name, _ in model.named_parameters()}


MIN_VERSION = "0.10.2"


def check_version(version: str) -> None:
    """vLLM before 0.10.2 returns processed log-probs that ignore the temperature: the importance ratios would be
    biased without a sign of it."""
    from packaging.version import Version

    if Version(version) < Version(MIN_VERSION):
        raise UserError(f"generator vllm needs vLLM >= {MIN_VERSION} (found {version}): earlier versions' log-probs "
                        "ignore the temperature")  # fmt: skip


class VLLMGenerator:
    """vLLM generation colocated with the trainer, weights pushed from the live policy (not yet run on a GPU)."""

    live = True
    gathers = True  # the weight push takes the trainer's gathered weights (trainer.sharding: fsdp)

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
        max_prompt_tokens: int = 2048,
        sleep_level: int = 0,
        enforce_eager: bool = True,
    ):
        """``max_model_len`` (default ``max_prompt_tokens + max_new_tokens``) sizes the KV cache: vLLM's default, the
        model's whole context, may not fit the ``gpu_memory_utilization`` share. ``enforce_eager`` (default on until
        a GPU run has measured CUDA graphs here) skips graph capture, its start-up time and its memory."""
        if temperature < 0 or max_new_tokens < 1 or not 0 < gpu_memory_utilization <= 1 or bucket_mb < 1:
            raise UserError(
                "vllm: temperature >= 0, max_new_tokens >= 1, 0 < gpu_memory_utilization <= 1, bucket_mb >= 1"
            )
        if max_prompt_tokens < 1 or (max_model_len is not None and max_model_len <= max_new_tokens):
            raise UserError("vllm: max_prompt_tokens >= 1 and max_model_len > max_new_tokens")
        if sleep_level not in (0, 1, 2):
            raise UserError("vllm: sleep_level is 0 (stay awake), 1 (weights to host memory) or 2 (weights dropped)")
        self.temperature, self.top_p, self.top_k, self.max_new_tokens = temperature, top_p, top_k, max_new_tokens
        self.stop, self.bucket_mb, self.sleep_level = stop or [], bucket_mb, sleep_level
        self.settings = (gpu_memory_utilization, max_model_len, max_prompt_tokens, sleep_level, enforce_eager)

    def engine(self, base: str) -> Engine:
        """The process's engine for ``base``, made on first use."""
        if base in _ENGINES:
            engine = _ENGINES[base]
            if engine.settings != self.settings:
                raise UserError("the vllm generators of a run share one engine: give them the same "
                                "gpu_memory_utilization, max_model_len, max_prompt_tokens, sleep_level and "
                                "enforce_eager")  # fmt: skip
            return engine
        try:
            import vllm
        except ImportError:
            raise UserError("generator vllm needs vLLM on a CUDA machine: pip install 'selfimprove[vllm]'") from None
        check_version(vllm.__version__)
        memory, max_model_len, max_prompt_tokens, sleep_level, enforce_eager = self.settings
        max_model_len = max_model_len or max_prompt_tokens + self.max_new_tokens
        with _single_process_launcher(), _generators_kept():
            llm = vllm.LLM(
                model=base, dtype="bfloat16", gpu_memory_utilization=memory, max_model_len=max_model_len,
                enable_prefix_caching=True, enable_sleep_mode=sleep_level > 0, enforce_eager=enforce_eager,
                # the engine's workers in this process, so that its model is reachable for load_weights
                distributed_executor_backend="external_launcher",
                # log-probs after temperature: those of the distribution sampled, as the trainer computes them
                logprobs_mode="processed_logprobs",
            )  # fmt: skip
        engine = _ENGINES[base] = Engine(llm, self.settings, max_model_len)
        engine.sync.pushed_key(BASE)
        return engine

    def wake_and_push(self, engine: Engine, live: LivePolicy) -> None:
        """The engine awake with ``live``'s weights. From sleep: the trainer's allocator first gives back its cached,
        unused memory, then the weights wake, are pushed, and only then the KV cache wakes."""
        if not engine.asleep:
            self.push(engine, live)
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        engine.llm.wake_up(tags=["weights"])
        self.push(engine, live)
        engine.llm.wake_up(tags=["kv_cache"])
        engine.llm.reset_prefix_cache()
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
        """The policy's weights into the engine, in buckets, unless the engine holds them already. A push of every
        weight checks that the engine's model loaded each of its parameters: after a deep sleep, one left out would
        serve undefined memory, silently."""
        key = weights_key(live)
        if not engine.sync.needs_push(key):
            return
        if isinstance(live, LiveWeights):  # the trained model itself: LoRA merged on the fly, no merged copy
            partial = live.adapter_only and engine.sync.holds_live_policy()
            weights = live.named_weights(adapted_only=partial)  # whole while they are pushed (sharded: all-gathered)
        else:  # a model loaded for generation: plain, any adapter merged already
            partial, weights = False, nullcontext(_detached(live.inference_model().named_parameters()))
        with weights as named:
            groups = list(buckets(named, self.bucket_mb * 2**20))
            loaded, expected = self.load(engine, groups)
        if not partial and loaded is not None and expected - loaded:
            missing = sorted(expected - loaded)
            raise RuntimeError(f"vllm: the weight push left {len(missing)} of the engine's parameters unloaded "
                               f"({', '.join(missing[:5])}...): it would serve undefined weights")  # fmt: skip
        if not engine.asleep:  # else once the KV cache wakes
            engine.llm.reset_prefix_cache()  # cached keys and values belong to the old weights
        engine.sync.pushed_key(key)

    @staticmethod
    def load(engine: Engine, groups: list[list[tuple[str, torch.Tensor]]]) -> tuple[set[str] | None, set[str]]:
        """The buckets into the engine's model: through vLLM's public ``apply_model`` where it has it, else through
        the attribute chain to the model of the in-process worker (older versions)."""
        if hasattr(engine.llm, "apply_model"):
            return engine.llm.apply_model(lambda model: _load_all(model, groups))[0]
        return _load_all(engine.llm.llm_engine.model_executor.driver_worker.model_runner.model, groups)

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
        live = as_live(policy)
        engine = self.engine(live.base)  # collective: every process, its share empty or not
        self.wake_and_push(engine, live)  # collective too under sharding (the weights are all-gathered)
        mine = [r for i, r in enumerate(requests) if i % world == rank and r.id not in done]
        if not mine:
            self.sleep(engine)
            yield []
            return
        from vllm import SamplingParams

        texts = [render_chat(live.tokenizer, r.messages) for r in mine]
        # token ids, as the HF generator and the trainer encode them: vLLM's own encoding would add a second BOS
        encoded = live.tokenizer(texts, add_special_tokens=False)["input_ids"]
        longest = max(len(ids) for ids in encoded)
        if longest + self.max_new_tokens > engine.max_model_len:
            raise UserError(f"vllm: a prompt of {longest} tokens plus max_new_tokens {self.max_new_tokens} exceeds the "
                            f"engine's max_model_len {engine.max_model_len}: raise generator max_prompt_tokens or "
                            "max_model_len")  # fmt: skip
        prompts = [{"prompt_token_ids": ids} for ids in encoded]
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
