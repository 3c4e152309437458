"""The run directory: every stage's output, written atomically, so a killed run resumes where it stopped.

A stage is done when its file exists: files are written under a temporary name
and renamed into place. Generation appends whole batches to a ``.partial`` file
(flushed and fsynced), so a kill mid-stage loses at most the batch in flight.

The layout is named here alone: ``manifest.json``, ``metrics.jsonl`` and ``summary.json`` at the top, an offline
iteration's files under ``iter-NNN/`` (its update in ``update.json``, its weights in ``checkpoint/``), an online
step's under ``step-NNNNNN/``, an online run's checkpoints under ``checkpoints/step-NNNNNN/``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def _fsync_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RunDir:
    MANIFEST = "manifest.json"
    METRICS = "metrics.jsonl"
    SUMMARY = "summary.json"
    CHECKPOINTS = "checkpoints"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def iteration_dir(it: int) -> str:
        return f"iter-{it:03d}"

    @staticmethod
    def step_dir(step: int) -> str:
        return f"step-{step:06d}"

    @classmethod
    def checkpoint_dir(cls, step: int) -> str:
        """An online run's checkpoint of ``step`` (complete once its ``state.json`` is there)."""
        return f"{cls.CHECKPOINTS}/{cls.step_dir(step)}"

    @staticmethod
    def number(name: str) -> int:
        """``iter-003`` -> 3, ``step-000040`` -> 40."""
        return int(name.split("-", 1)[1])

    def iteration_dirs(self, file: str) -> list[Path]:
        """``iter-*/<file>`` of every iteration that has it, in order."""
        return sorted(self.root.glob(f"iter-*/{file}"))

    def finished_iterations(self) -> list[int]:
        """The iterations whose update finished."""
        return sorted(self.number(p.parent.name) for p in self.iteration_dirs("update.json"))

    def saved_steps(self) -> list[int]:
        """The steps of an online run that have a complete checkpoint (the last ``keep_last`` of them)."""
        folder = self.root / self.CHECKPOINTS
        return sorted(self.number(p.name) for p in folder.glob("step-*") if (p / "state.json").is_file())

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def exists(self, *parts: str) -> bool:
        return self.root.joinpath(*parts).exists()

    def write_json(self, name: str, data: Any) -> None:
        _fsync_write(self.path(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def read_json(self, name: str) -> Any:
        return json.loads(self.path(name).read_text())

    def write_jsonl(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        _fsync_write(self.path(name), "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.path(name).read_text().splitlines() if line.strip()]

    def append_partial(self, name: str, records: list[dict[str, Any]]) -> None:
        with self.path(name + ".partial").open("a") as fh:
            fh.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
            fh.flush()
            os.fsync(fh.fileno())

    def read_partial(self, name: str) -> list[dict[str, Any]]:
        """Records of a stage in progress; a line cut short by a kill is dropped."""
        path = self.root / (name + ".partial")
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return out

    def finish_partial(self, name: str, records: list[dict[str, Any]]) -> None:
        self.write_jsonl(name, records)
        (self.root / (name + ".partial")).unlink(missing_ok=True)

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.path(self.METRICS).open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def rewrite_metrics(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        """Drop the metric records ``keep`` rejects (a resumed online run replays the steps after its checkpoint)."""
        path = self.root / self.METRICS
        if path.exists():
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            _fsync_write(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records if keep(r)))

    def commit_dir(self, tmp: Path, final: Path) -> None:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
