"""Batched generation with transformers ``generate``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from selfimprove.errors import UserError
from selfimprove.generators import Output, Request
from selfimprove.generators.sampler import sampling_processors
from selfimprove.models import Policy
from selfimprove.models.live import LivePolicy, as_live, generation_model
from selfimprove.progress import Tracker
from selfimprove.prompts import render_chat


def truncate_at_stop(text: str, stop: list[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


# Below this many shared tokens a separate prefix pass costs more than it saves.
MIN_SHARED_PREFIX = 16


def common_prefix(rows: list[list[int]]) -> int:
    """Length of the token prefix that all rows share, leaving at least one token of each row to generate from."""
    n = 0
    limit = min(map(len, rows)) - 1
    while n < limit and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return n


def batch_seed(seed: int, first_id: str) -> int:
    return int(hashlib.sha256(f"{seed}:{first_id}".encode()).hexdigest()[:8], 16)


class EntropyRecorder:
    """A logits processor that records, at every generation step, the entropy of each row's next-token distribution.

    transformers runs custom processors before its temperature and top-k/top-p warpers, so this is the entropy of the
    policy itself (temperature 1): comparable between greedy evaluation and sampled training, and the quantity the
    entropy-collapse analyses of RL and self-play track. It reuses the logits generate computed anyway (no extra
    forward pass) and keeps one float per row and step, not the (rows x vocabulary) scores.
    """

    def __init__(self) -> None:
        self.steps: list[Any] = []
        self._buffer: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logits = scores.float()
        if self._buffer is None or self._buffer.shape != logits.shape:
            self._buffer = torch.empty_like(logits)
        # H = logsumexp(z) - sum_i p_i z_i, in place in one reused (rows x vocabulary) buffer: on CPU twice as fast as
        # entr(softmax(z)), which allocates two such tensors per step. A masked (-inf) logit has p = 0: 0 * -inf -> 0.
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)
        weighted = torch.sub(logits, lse, out=self._buffer).exp_().mul_(logits).nan_to_num_(nan=0.0)
        self.steps.append(lse.squeeze(-1) - weighted.sum(-1))
        return scores

    def means(self, lengths: list[int]) -> list[float | None]:
        """Mean entropy over each row's first ``lengths[i]`` generated tokens."""
        import torch

        if not self.steps:
            return [None] * len(lengths)
        table = torch.stack(self.steps, dim=1)  # rows x steps
        return [float(table[i, :n].mean()) if n else None for i, n in enumerate(lengths)]


class HFGenerator:
    """Batched sampling with transformers (left padding, chat template, stop strings, seeded batches)."""

    live = True  # samples from weights in memory: an online run's live policy
    gathers = True  # takes sharded weights through generation_model (trainer.sharding: fsdp)

    def __init__(
        self,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_new_tokens: int = 256,
        stop: list[str] | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 65536,
        max_prompt_tokens: int | None = None,
        share_prefix: bool = True,
        cascade: bool = True,
        entropy: bool = True,
    ):
        if temperature < 0:
            raise UserError(f"hf: temperature must be >= 0, got {temperature}")
        if batch_size < 1 or max_new_tokens < 1:
            raise UserError("hf: batch_size and max_new_tokens must be at least 1")
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.max_new_tokens, self.stop = max_new_tokens, stop or []
        self.batch_size, self.max_batch_tokens, self.max_prompt_tokens = batch_size, max_batch_tokens, max_prompt_tokens
        self.share_prefix, self.cascade = share_prefix, cascade
        self.entropy = entropy

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped by similar prompt length, under both the row and the token budget."""
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        out: list[list[int]] = []
        for i in order:
            if out:
                batch = out[-1]
                width = max(lengths[batch[-1]], lengths[i]) + self.max_new_tokens
                if len(batch) < self.batch_size and (len(batch) + 1) * width <= self.max_batch_tokens:
                    batch.append(i)
                    continue
            out.append([i])
        return out

    def _inputs(self, model: Any, rows: list[list[int]], pad_id: int) -> tuple[dict[str, Any], AbstractContextManager]:
        """Left-padded inputs, and the attention to generate them under. With a shared prefix (few-shot exemplars,
        a system prompt), its keys and values are computed once, and the padding goes between prefix and suffix;
        on CPU the rows then read the prefix once through cascade attention (``cascade.py``), elsewhere it is
        copied to every row.

        Hand-written because transformers' generate has no prefix sharing (vLLM does it automatically). On the
        quickstart's few-shot prompts this halves generation time, with the same greedy outputs (tested).
        """
        import torch

        from selfimprove.generators import cascade  # imports transformers
        from selfimprove.generators.kv_cache import preallocated_cache

        shared = common_prefix(rows) if self.share_prefix and len(rows) > 1 else 0
        if shared < MIN_SHARED_PREFIX:
            shared = 0
        suffixes = [r[shared:] for r in rows]
        width = max(map(len, suffixes))
        prefix = rows[0][:shared]
        ids = [prefix + [pad_id] * (width - len(s)) + s for s in suffixes]
        mask = [[1] * shared + [0] * (width - len(s)) + [1] * len(s) for s in suffixes]
        inputs: dict[str, Any] = {
            "input_ids": torch.tensor(ids, device=model.device),
            "attention_mask": torch.tensor(mask, device=model.device),
        }
        cache = preallocated_cache(model.config, shared + width + self.max_new_tokens)
        attention: AbstractContextManager = nullcontext()
        if shared:
            prefix_ids = torch.tensor([prefix], device=model.device)
            cache = model(input_ids=prefix_ids, use_cache=True, cache=cache).cache
            if cache is not None and self.cascade and cascade.applies(model):
                cache = cascade.shared_prefix_cache(cache, width + self.max_new_tokens)
                attention = cascade.cascade_attention(model, cache)
            else:
                cache.batch_repeat_interleave(len(rows))
        if cache is not None:
            inputs["cache"] = cache
        return inputs, attention

    def _trim(self, tokens: list[int], eos: int, pad: int) -> list[int]:
        """The tokens up to and including EOS; a row stopped by a stop string ends before generate's padding."""
        if eos in tokens:
            return tokens[: tokens.index(eos) + 1]
        while self.stop and tokens and tokens[-1] == pad:
            tokens = tokens[:-1]
        return tokens

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
        live = as_live(policy)
        with generation_model(live) as model:  # gathered for the call when the trainer's weights are sharded
            yield from self._sample(model, live.tokenizer, requests, seed, done, tracker, shard)

    def _sample(
        self, model: Any, tokenizer: Any, requests: list[Request], seed: int, done: set[str], tracker: Tracker,
        shard: tuple[int, int],
    ) -> Iterator[list[Output]]:  # fmt: skip
        import torch

        texts = [render_chat(tokenizer, r.messages) for r in requests]
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
        if self.max_prompt_tokens:
            encoded = [ids[-self.max_prompt_tokens :] for ids in encoded]
        # the entropy recorder sees the raw logits; the warpers and the sampler (none when greedy) follow it
        sampling = sampling_processors(self.temperature, self.top_k, self.top_p)
        rank, world = shard
        for number, batch in enumerate(self.batches([len(ids) for ids in encoded])):
            ids = [requests[i].id for i in batch]
            if number % world != rank or all(i in done for i in ids):
                if number % world == rank:
                    tracker.advance(len(batch))
                yield []
                continue
            rows = [encoded[i] for i in batch]
            torch.manual_seed(batch_seed(seed, ids[0]))
            recorder = EntropyRecorder()
            # full fine-tuning keeps fp32 master weights on CUDA: generate from them in bf16, as the update computes
            fp32_on_cuda = model.device.type == "cuda" and model.dtype == torch.float32
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=fp32_on_cuda):
                inputs, attention = self._inputs(model, rows, tokenizer.pad_token_id)
                with attention:
                    out = model.generate(
                        **inputs,
                        max_new_tokens=self.max_new_tokens,
                        pad_token_id=tokenizer.pad_token_id,
                        stop_strings=self.stop or None,
                        tokenizer=tokenizer if self.stop else None,
                        logits_processor=([recorder] if self.entropy else []) + sampling,
                        do_sample=False, temperature=None, top_p=None, top_k=None,  # sampled by the processors
                    )  # fmt: skip
            new = out[:, inputs["input_ids"].shape[1] :].tolist()
            new = [self._trim(t, tokenizer.eos_token_id, tokenizer.pad_token_id) for t in new]
            entropies = recorder.means([len(t) for t in new])
            outputs = []
            for rid, tokens, entropy in zip(ids, new, entropies, strict=True):
                text = tokenizer.decode(tokens, skip_special_tokens=True)
                outputs.append(Output(rid, truncate_at_stop(text, self.stop), len(tokens), entropy, tokens))
            tracker.advance(len(batch), sum(o.num_tokens for o in outputs))
            yield outputs
