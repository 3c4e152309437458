"""An online run's checkpoints: ``checkpoints/step-NNNNNN/`` holds the policy (a standard PEFT adapter or HF model
folder, ``policy/``), the trainer's state (``trainer.pt``: optimizers, schedules, value head, RNG states; under
``trainer.sharding: fsdp`` the optimizers and the trained weights go to ``sharded/`` instead, written by every
process) and the loop's (``state.json``: the step, the buffers).

A checkpoint is written into ``step-NNNNNN.tmp``, its files flushed to disk, then renamed: a directory without the
suffix is complete. Only the newest ``keep_last`` are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from selfimprove.rundir import RunDir


def path(run_root: Path, step: int) -> Path:
    return run_root / RunDir.checkpoint_dir(step)


def latest(run_root: Path) -> Path | None:
    """The newest complete checkpoint; leftovers of a write that was killed are removed."""
    folder = run_root / RunDir.CHECKPOINTS
    if not folder.is_dir():
        return None
    complete = []
    for entry in folder.iterdir():
        if entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith("step-") and (entry / "state.json").is_file():
            complete.append(entry)
    return max(complete, default=None, key=lambda p: p.name)


def begin(run_root: Path, step: int) -> Path:
    final = path(run_root, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit(tmp: Path, state: dict[str, Any], keep_last: int) -> Path:
    """Write the loop's state, flush every file, rename into place, drop checkpoints beyond ``keep_last``."""
    (tmp / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    for file in tmp.rglob("*"):
        if file.is_file():
            with file.open("rb") as fh:
                os.fsync(fh.fileno())
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    kept = sorted(p for p in final.parent.iterdir() if p.name.startswith("step-") and not p.name.endswith(".tmp"))
    for old in kept[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "state.json").read_text())
