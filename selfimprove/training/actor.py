"""The policy as a module that returns per-token log-probs of completions (and PPO's values), for scoring and loss."""

from __future__ import annotations

from typing import Any

import torch


class Actor(torch.nn.Module):
    """The policy (and PPO's value head on its last hidden state) as one module, so DDP sees every parameter."""

    def __init__(self, policy: Any, temperature: float = 1.0, value_head: torch.nn.Module | None = None):
        super().__init__()
        self.policy, self.temperature, self.value_head = policy, temperature, value_head
        model = policy.get_base_model() if hasattr(policy, "get_base_model") else policy  # PEFT or plain
        text = model.config.get_text_config()
        # Models that scale or soft-cap their logits go through their own forward, which knows how.
        plain_head = not any(getattr(text, k, None) for k in ("final_logit_softcapping", "logit_scale"))
        self.split = (model.get_decoder(), model.get_output_embeddings()) if plain_head else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        completion_ids: torch.Tensor,
        mask: torch.Tensor,
        detach_values: bool = False,
        prefix_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs (B, C) of the completion tokens (0 on padding), and the critic's values if any.

        Prompts are left-padded and completions right-padded, so the completion is predicted from the last
        C + 1 positions. Only its real tokens go through the LM head, in chunks (see ``token_logps``). A shared
        ``prefix_ids`` (1, S) runs once; every row attends to its keys and values, expanded to the batch, and the
        gradients reach the prefix through them (the same numbers as running it in every row).
        """
        c = completion_ids.size(1)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
        if prefix_ids is not None:
            if self.split is None:  # the model's own forward: run the prefix in every row instead
                b = input_ids.size(0)
                s = prefix_ids.size(1)
                inputs = {
                    "input_ids": torch.cat([prefix_ids.expand(b, -1), input_ids], 1),
                    "attention_mask": torch.cat([torch.ones_like(prefix_ids).expand(b, -1), attention_mask], 1),
                    "position_ids": torch.cat(
                        [torch.arange(s, device=input_ids.device).expand(b, -1), position_ids], 1
                    ),
                }
            else:
                backbone = self.split[0]
                cache = backbone(input_ids=prefix_ids, use_cache=True).cache
                cache.batch_repeat_interleave(input_ids.size(0))
                full_mask = torch.cat([torch.ones_like(prefix_ids).expand(input_ids.size(0), -1), attention_mask], 1)
                inputs = {**inputs, "attention_mask": full_mask, "cache": cache}
        if self.split is None:
            out = self.policy(**inputs, logits_to_keep=c + 1, output_hidden_states=True, use_cache=False)
            logits = out.logits[:, :-1].float() / self.temperature
            logps = (logits.gather(-1, completion_ids[..., None]).squeeze(-1) - logits.logsumexp(-1)) * mask
            hidden = out.hidden_states[-1][:, -(c + 1) : -1]
        else:
            backbone, head = self.split
            hidden = backbone(**inputs, use_cache=False).last_hidden_state[:, -(c + 1) : -1]
            valid = mask.bool()
            per_token = token_logps(head, hidden[valid], completion_ids[valid], self.temperature)
            logps = torch.zeros(mask.shape, dtype=per_token.dtype, device=mask.device).masked_scatter(valid, per_token)
        if self.value_head is None:
            return logps, None
        hidden = hidden.float()
        return logps, self.value_head(hidden.detach() if detach_values else hidden).squeeze(-1)


def token_logps(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float, chunk: int | None = None
) -> torch.Tensor:
    """``log softmax(head(hidden) / T)[target]`` for (N, H) hidden states, without holding all N x V logits.

    Beyond ``chunk`` tokens (default: 256 MB of float32 logits) the tokens go in chunks, each recomputed in the
    backward pass (activation checkpointing) instead of kept: a large vocabulary (Qwen's 152k) would otherwise
    dominate memory.
    """
    chunk = chunk or max(1, 2**26 // head.weight.size(0))
    if hidden.size(0) <= chunk:
        return _chunk_logps(head, hidden, targets, temperature)
    from torch.utils.checkpoint import checkpoint

    parts = []
    for s in range(0, hidden.size(0), chunk):
        args = (head, hidden[s : s + chunk], targets[s : s + chunk], temperature)
        parts.append(checkpoint(_chunk_logps, *args, use_reentrant=False) if torch.is_grad_enabled() else
                     _chunk_logps(*args))  # fmt: skip
    return torch.cat(parts)


def _chunk_logps(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    logits = head(hidden).float() / temperature
    return logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(-1)


def disable_dropout(model: Any) -> None:
    """Log-probs must be deterministic: the ratio compares two forward passes of the same weights."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
