"""Policies in memory, which generators sample from.

``LivePolicy`` is what a generator needs: a tokenizer and a model ready for generation with the current weights.
The offline loop loads each iteration's checkpoint once (``LoadedPolicy``) and shares it between the roles and the
evaluation; an online run's trainer hands out a view of its live weights (``selfimprove.training.trainer``), whose
``version`` changes with every update so a generator can tell that the weights moved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from selfimprove.capabilities import LiveWeights
from selfimprove.models import Policy


@runtime_checkable
class LivePolicy(Protocol):
    tokenizer: Any
    version: int  # changes whenever the weights do
    base: str  # the base model the weights start from

    def inference_model(self) -> Any:
        """The model with the current weights, in eval mode, for ``generate``."""
        ...

    def reference(self) -> LivePolicy:
        """The frozen starting model of this policy (LSP's self-reward judge, the KL's reference)."""
        ...


class LoadedPolicy:
    """A policy on disk, loaded on first use (an adapter merged in) and kept until this object goes."""

    version = 0

    def __init__(self, policy: Policy):
        from selfimprove.models.loading import load_tokenizer

        self.policy = policy
        self.tokenizer = load_tokenizer(policy.base)
        self._model: Any = None
        self._reference: LoadedPolicy | None = None

    @property
    def base(self) -> str:
        return self.policy.base

    @property
    def checkpoint(self) -> str | None:
        return self.policy.checkpoint

    def inference_model(self) -> Any:
        if self._model is None:
            from selfimprove.models.loading import load_for_inference

            self._model = load_for_inference(self.policy)
        return self._model

    def reference(self) -> LivePolicy:
        """The base model: an offline run's starting point."""
        if self.policy.checkpoint is None:
            return self
        if self._reference is None:
            self._reference = LoadedPolicy(Policy(self.policy.base))
        return self._reference


def as_live(policy: Policy | LivePolicy) -> LivePolicy:
    return LoadedPolicy(policy) if isinstance(policy, Policy) else policy


@contextmanager
def generation_model(live: LivePolicy) -> Iterator[Any]:
    """``live.inference_model()`` for the block; a trainer's live weights (``LiveWeights``, maybe sharded over the
    processes) are gathered for the block and freed after. Every process must enter it when the weights are
    sharded."""
    if not isinstance(live, LiveWeights):
        yield live.inference_model()
        return
    with live.gathered() as model:
        yield model
