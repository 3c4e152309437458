"""What a component can do beyond its kind's protocol, declared by what it offers (``typing.Protocol``), and checked
by ``selfimprove validate`` before any model loads. Re-exported by ``selfimprove.api``, the module plugins import.

This module imports nothing of selfimprove, so that every package (models, generators, training, the loop) can use
it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, runtime_checkable


@runtime_checkable
class PolicyJudge(Protocol):
    """A verifier that scores with the policy that generated the rollouts (self-reward, LSP's judge): the loop
    hands it that policy before each verify stage."""

    def use_policy(self, policy: Any) -> None: ...


@runtime_checkable
class ReadsRoles(Protocol):
    """A source or a reward that reads the verified rollouts of other roles of the step (by name)."""

    reads_roles: tuple[str, ...]


@runtime_checkable
class ReadsBuffers(Protocol):
    """A source that reads the run's buffers (by name)."""

    reads_buffers: tuple[str, ...]


@runtime_checkable
class LiveGenerator(Protocol):
    """A generator that samples from weights in memory (``models.live.LivePolicy``): an online run's live policy."""

    live: Literal[True]


@runtime_checkable
class GatheringGenerator(Protocol):
    """A generator that takes a trainer's sharded weights (``trainer.sharding: fsdp``) through ``LiveWeights``."""

    gathers: Literal[True]


@runtime_checkable
class OnlineUpdater(Protocol):
    """An updater that trains online: the live trainer's objective, one update per step on the live policy."""

    def advantages(self, batch: Any) -> None: ...

    def loss(self, actor: Any, batch: Any, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class LiveWeights(Protocol):
    """The weights an online trainer offers its generators: they move with every update (``version``) and may be
    sharded over the processes, so a generator takes them whole for a block and lets them go after (under
    sharding every process must enter the block)."""

    version: int  # changes whenever the weights do
    adapter_only: bool  # between two versions only the adapter's layers change (LoRA): the rest stays the base's

    def gathered(self) -> AbstractContextManager[Any]:
        """The model to generate with, for the block."""
        ...

    def named_weights(self, adapted_only: bool = False) -> AbstractContextManager[Iterator[tuple[str, Any]]]:
        """``(name, tensor)`` under the base checkpoint's names, an adapter merged in, for the block;
        ``adapted_only``: only the layers the adapter changes."""
        ...


def roles_read(component: Any) -> tuple[str, ...]:
    """The roles a source or a reward reads (none when it declares none)."""
    return component.reads_roles if isinstance(component, ReadsRoles) else ()


def buffers_read(component: Any) -> tuple[str, ...]:
    """The buffers a source reads (none when it declares none)."""
    return component.reads_buffers if isinstance(component, ReadsBuffers) else ()
