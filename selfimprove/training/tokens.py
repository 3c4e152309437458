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


def collate(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts followed by right-padded completions, with positions that skip the padding."""
    p, c = max(map(len, prompts)), max(map(len, completions))
    ids, attention, comp, mask = [], [], [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        pad_left, pad_right = p - len(prompt), c - len(completion)
        ids.append([pad_id] * pad_left + prompt + completion + [pad_id] * pad_right)
        attention.append([0] * pad_left + [1] * (len(prompt) + len(completion)) + [0] * pad_right)
        comp.append(completion + [pad_id] * pad_right)
        mask.append([1] * len(completion) + [0] * pad_right)
    attention_mask = torch.tensor(attention)
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": attention_mask,
        "position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0),
        "completion_ids": torch.tensor(comp),
        "mask": torch.tensor(mask, dtype=torch.float32),
    }


def pad_rows(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    return torch.stack([torch.nn.functional.pad(r, (0, width - r.numel())) for r in rows])


def micro_batches(indices: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Pack ``indices`` into micro-batches whose padded size (rows x longest row) stays within ``max_tokens``.

    Sorting by length first keeps padding low; a single row longer than the budget gets a micro-batch of its own.
    """
    out: list[list[int]] = []
    for i in sorted(indices, key=lambda i: lengths[i]):
        if out and (len(out[-1]) + 1) * lengths[i] <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out
