"""Several processes under ``accelerate launch``: the main process runs every stage of the loop; the others
wait for its selected examples and join only the update, which accelerate spreads over all of them."""

from __future__ import annotations

import os
import time
from pathlib import Path


def process_rank() -> int:
    """This process's rank as set by ``accelerate launch`` / ``torchrun`` (0 when launched alone)."""
    return int(os.environ.get("RANK", "0"))


def wait_for(path: Path, poll_seconds: float = 0.5) -> None:
    """Block until the main process has written ``path``.

    A file, not a collective barrier: generation can outlast the process group's timeout, and the run
    directory's atomic writes already say when a stage is done. If the main process dies, the launcher
    ends this one.
    """
    while not path.exists():
        time.sleep(poll_seconds)
