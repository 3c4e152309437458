"""Reading a run directory back: eval metrics per iteration (offline) or per evaluated step (online), the training
statistics of metrics.jsonl, and the eval samples.

Everything the report and the analyses show comes from these files alone, so a run copied from a GPU machine
reports on a laptop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Rollout
from selfimprove.rundir import RunDir


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class RunData:
    root: Path
    evals: list[dict[str, dict[str, float]]]  # one per evaluation, in order: task -> metrics
    stages: list[dict[str, Any]]  # metrics.jsonl, in order
    selected: dict[int, int] = field(default_factory=dict)  # iteration -> examples kept (offline)
    points: list[int] = field(default_factory=list)  # the iteration or step of each evaluation
    online: bool = False

    @property
    def axis(self) -> str:
        return "step" if self.online else "iteration"

    @property
    def iterations(self) -> list[int]:
        """The iterations (offline) or steps (online) that were evaluated, in order."""
        return self.points or list(range(len(self.evals)))

    def directory(self, point: int) -> Path:
        return self.root / (RunDir.step_dir(point) if self.online else RunDir.iteration_dir(point))

    @property
    def steps(self) -> list[dict[str, Any]]:
        """An online run's step records, one per step (the last when a step was logged twice)."""
        last = {s["step"]: s for s in self.stages if s.get("stage") == "step"}
        return [last[k] for k in sorted(last)]

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(t for e in self.evals for t in e))

    @property
    def roles(self) -> list[str]:
        if self.online:
            return list(dict.fromkeys(k[: -len("/rollouts")] for s in self.steps for k in s if k.endswith("/rollouts")))
        return list(
            dict.fromkeys(s["stage"].split(":", 1)[1] for s in self.stages if s["stage"].startswith("generate:"))
        )

    def stage(self, iteration: int, name: str) -> dict[str, Any] | None:
        """The last record of ``name`` in ``iteration`` (a resumed stage may have logged twice)."""
        found = [s for s in self.stages if s["iteration"] == iteration and s["stage"] == name]
        return found[-1] if found else None

    def eval_rollouts(self, point: int, task: str, samples: bool) -> list[Rollout]:
        """The verified eval completions of an iteration or step: the greedy pass, or the n samples; [] if absent."""
        path = self.directory(point) / "eval" / f"{task}{'.samples' if samples else ''}.jsonl"
        return [Rollout.from_json(r) for r in read_jsonl(path)] if path.is_file() else []


def load_run(root: str | Path) -> RunData:
    root = Path(root)
    if not (root / RunDir.SUMMARY).is_file():
        raise UserError(f"{root} is not a finished run directory: no summary.json (run `selfimprove run` first)")
    summary = json.loads((root / RunDir.SUMMARY).read_text())
    online = "steps" in summary
    entries = summary["steps" if online else "iterations"]
    evals = [e["eval"] for e in entries]
    points = [e["step" if online else "iteration"] for e in entries]
    stages = read_jsonl(root / RunDir.METRICS) if (root / RunDir.METRICS).is_file() else []
    selected = {
        RunDir.number(p.parent.name): sum(1 for line in p.read_text().splitlines() if line.strip())
        for p in RunDir(root).iteration_dirs("selected.jsonl")
    }
    return RunData(root, evals, stages, selected, points, online)
