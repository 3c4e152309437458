"""Rich progress bars shared by generation and training: items, tokens/s, ETA."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


class Tracker:
    def __init__(self, progress: Progress | None, task_id: int | None):
        self._progress, self._task = progress, task_id
        self._start = time.perf_counter()
        self.tokens = 0

    def reset(self, total: int, completed: int = 0) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total, completed=completed)

    def advance(self, items: int = 1, tokens: int = 0) -> None:
        self.tokens += tokens
        if self._progress is not None and self._task is not None:
            rate = self.tokens / max(time.perf_counter() - self._start, 1e-9)
            self._progress.update(self._task, advance=items, rate=f"{rate:,.0f} tok/s")


@contextmanager
def track(description: str, total: int, enabled: bool = True, transient: bool = False) -> Iterator[Tracker]:
    """A progress bar over ``total`` items; ``transient`` ones vanish when done (an online run's many steps)."""
    if not enabled:
        yield Tracker(None, None)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=transient) as progress:
        yield Tracker(progress, progress.add_task(description, total=total, rate=""))
