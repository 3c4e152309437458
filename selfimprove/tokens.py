"""Prompt + completion as token ids, the one tokenization every updater uses, and how rows become tensors.

A prompt goes through the model's chat template exactly as the generator rendered it, so the update sees the
tokens the policy was conditioned on. A completion is either the token ids the generator sampled (online runs
keep them, so the update scores exactly the sampled sequence) or its text followed by the end-of-turn token.
"""

from __future__ import annotations

from typing import Any

import torch

from selfimprove.prompts import render_chat
from selfimprove.records import Messages


def encode_prompt(tokenizer: Any, messages: Messages) -> list[int]:
    return tokenizer(render_chat(tokenizer, messages), add_special_tokens=False)["input_ids"]


def encode_completion(tokenizer: Any, text: str) -> list[int]:
    """A completion's text and the end of the assistant's turn."""
    return tokenizer(text + tokenizer.eos_token, add_special_tokens=False)["input_ids"]


def encode(
    tokenizer: Any, messages: Messages, completion: str, completion_ids: list[int] | None = None
) -> tuple[list[int], list[int]]:
    """``(prompt_ids, completion_ids)``; the sampled ids when given, else the tokenized text + end of turn."""
    ids = list(completion_ids) if completion_ids is not None else encode_completion(tokenizer, completion)
    return encode_prompt(tokenizer, messages), ids


# Below this many shared prompt tokens a separate prefix pass costs more than it saves.
MIN_SHARED_PREFIX = 16


def shared_prefix(rows: list[list[int]]) -> int:
    """Length of the token prefix every row shares, leaving each row at least one token of its own (the last prompt
    token predicts the first completion token)."""
    n, limit = 0, min(map(len, rows)) - 1
    while n < limit and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return n


def collate(
    prompts: list[list[int]], completions: list[list[int]], pad_id: int, min_shared: int | None = MIN_SHARED_PREFIX
) -> dict[str, torch.Tensor]:
    """Left-padded prompts followed by right-padded completions, with positions that skip the padding.

    When the rows' prompts share at least ``min_shared`` leading tokens (a system message and exemplars; a GRPO
    group's whole prompt), that prefix is taken out as ``prefix_ids`` (1, S): the actor runs it once and the rows
    attend to its keys and values (``Actor.forward``), which gives the same log-probs and gradients for a fraction
    of the prompt tokens. ``input_ids`` etc. then hold the rest of each row, positions counted from S.
    ``min_shared=None`` never takes a prefix out (every row runs its whole prompt).
    """
    shared = shared_prefix(prompts) if len(prompts) > 1 and min_shared is not None else 0
    shared = shared if min_shared is not None and shared >= min_shared else 0
    rests = [prompt[shared:] for prompt in prompts]
    p, c = max(map(len, rests)), max(map(len, completions))
    ids, attention, comp, mask = [], [], [], []
    for prompt, completion in zip(rests, completions, strict=True):
        pad_left, pad_right = p - len(prompt), c - len(completion)
        ids.append([pad_id] * pad_left + prompt + completion + [pad_id] * pad_right)
        attention.append([0] * pad_left + [1] * (len(prompt) + len(completion)) + [0] * pad_right)
        comp.append(completion + [pad_id] * pad_right)
        mask.append([1] * len(completion) + [0] * pad_right)
    attention_mask = torch.tensor(attention)
    out = {
        "input_ids": torch.tensor(ids),
        "attention_mask": attention_mask,
        "position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0) + shared,
        "completion_ids": torch.tensor(comp),
        "mask": torch.tensor(mask, dtype=torch.float32),
    }
    if shared:
        out["prefix_ids"] = torch.tensor([prompts[0][:shared]])
    return out


def model_inputs(inputs: dict[str, torch.Tensor], device: Any) -> dict[str, torch.Tensor]:
    """What the actor takes of ``collate``'s output, on ``device``."""
    keys = ("input_ids", "attention_mask", "position_ids", "completion_ids", "mask", "prefix_ids")
    return {k: inputs[k].to(device) for k in keys if k in inputs}


def pad_rows(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    return torch.stack([torch.nn.functional.pad(r, (0, width - r.numel())) for r in rows])


def micro_batches(
    indices: list[int], lengths: list[int], max_tokens: int, prompts: list[list[int]] | None = None
) -> list[list[int]]:
    """Pack ``indices`` into micro-batches whose padded size (rows x longest row) stays within ``max_tokens``.

    Sorting by length keeps padding low; with ``prompts``, rows are sorted by prompt first, so the rows of one prompt
    (a GRPO group) land together and share its prefix pass (``collate``). A single row longer than the budget gets a
    micro-batch of its own.
    """
    order = sorted(indices, key=(lambda i: (prompts[i], lengths[i])) if prompts else (lambda i: lengths[i]))
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * lengths[i] <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out
