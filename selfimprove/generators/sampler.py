"""Sampling the next token by inverting the cumulative distribution: one draw per row, not per vocabulary entry.

transformers samples with ``torch.multinomial(probs, 1)``, which on CPU draws an exponential variate for every
vocabulary entry and takes an argmax (the exponential-race form of sampling without replacement). For a
49,152-token vocabulary that is 13% of a GRPO step's generation time (``benchmarks/generation_roofline.py``).
Inverting the cumulative distribution draws from the same categorical distribution with one uniform variate per row
and a cumulative sum. transformers has no hook for its sampler, so this runs as the last logits processor under
greedy decoding: it returns scores with one finite entry per row, which greedy's argmax then picks.
"""

from __future__ import annotations

from typing import Any


class InverseCDFSampler:
    """A logits processor that samples each row's next token from ``softmax(scores)`` and leaves only it finite."""

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        cdf = torch.softmax(scores, dim=-1).cumsum_(dim=-1)
        total = cdf[:, -1:]
        # x < total strictly (u * total can round up to it), so the token found has a non-empty interval: a token
        # of probability zero (masked by top-k or top-p) is never drawn
        x = torch.minimum(torch.rand_like(total) * total, torch.nextafter(total, torch.zeros_like(total)))
        tokens = torch.searchsorted(cdf, x, right=True)
        return torch.full_like(scores, float("-inf")).scatter_(1, tokens, 0.0)


def sampling_processors(temperature: float, top_k: int, top_p: float) -> list[Any]:
    """The processors that turn greedy decoding into sampling at ``temperature`` with ``top_k``/``top_p``, in the
    order transformers applies its own warpers; none for greedy (``temperature`` 0)."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    if temperature == 0:
        return []
    warpers: list[Any] = [TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return [*warpers, InverseCDFSampler()]
