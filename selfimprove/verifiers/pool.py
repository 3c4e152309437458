"""A process pool whose every task has its own wall-clock limit, usable from any thread.

math-verify's own timeout is ``signal.alarm``, which raises outside the main thread (in a peer framework
this zeroed every MATH reward once verification moved to a thread). Here the limit is enforced from outside:
pebble kills a worker whose task overruns and starts a fresh one, so a hung sample costs only itself.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import resource
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from pebble import ProcessExpired, ProcessPool


@dataclass
class Outcome:
    """A task's result, or why there is none (``"timeout"``, ``"worker died: ..."``, ``"TypeError: ..."``)."""

    value: Any = None
    error: str | None = None


def _limit_memory(memory_mb: int) -> None:
    # A runaway expression (10^10^10) should hit MemoryError in its worker, not swap the machine.
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class TimedPool:
    """``workers`` processes started from a fork server that has ``preload`` imported.

    A fork server, not fork: the verifying process may hold torch's threads, and forking a threaded process can
    deadlock the child. Forking from the server's clean, pre-imported process still starts a worker in
    milliseconds, which matters when a timed-out worker is replaced.
    """

    def __init__(self, workers: int, memory_mb: int, preload: Sequence[str] = ()):
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))
        self.workers = workers
        self._pool = ProcessPool(max_workers=workers, initializer=_limit_memory, initargs=(memory_mb,), context=context)

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], timeout: float) -> list[Outcome]:
        """Run ``fn(*args)`` for each ``args``; each call has ``timeout`` seconds from when it starts."""
        futures = [self._pool.schedule(fn, args=args, timeout=timeout) for args in calls]
        out = []
        for future in futures:
            try:
                out.append(Outcome(future.result()))
            except FutureTimeout:
                out.append(Outcome(error="timeout"))
            except ProcessExpired as exc:  # segfault, out of memory, killed
                out.append(Outcome(error=f"worker died: {exc}"))
            except Exception as exc:  # the task raised; its traceback stays in the worker
                out.append(Outcome(error=f"{type(exc).__name__}: {exc}"))
        return out

    @property
    def alive(self) -> bool:
        return self._pool.active

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()


_pools: dict[tuple[int, int, tuple[str, ...]], TimedPool] = {}
_lock = threading.Lock()


def shared_pool(workers: int, memory_mb: int, preload: Sequence[str] = ()) -> TimedPool:
    """One pool per configuration for the whole process, started on first use and replaced if it broke."""
    key = (workers, memory_mb, tuple(preload))
    with _lock:
        pool = _pools.get(key)
        if pool is None or not pool.alive:
            pool = _pools[key] = TimedPool(workers, memory_mb, preload)
        return pool


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@atexit.register
def _close_all() -> None:
    for pool in _pools.values():
        pool.close()
