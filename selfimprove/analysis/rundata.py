"""Reading a run directory back: per-iteration eval metrics, generation statistics and eval samples.

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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class RunData:
    root: Path
    evals: list[dict[str, dict[str, float]]]  # iteration -> task -> metrics
    stages: list[dict[str, Any]]  # metrics.jsonl, in order
    selected: dict[int, int] = field(default_factory=dict)  # iteration -> examples kept

    @property
    def iterations(self) -> list[int]:
        return list(range(len(self.evals)))

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(t for e in self.evals for t in e))

    @property
    def roles(self) -> list[str]:
        return list(
            dict.fromkeys(s["stage"].split(":", 1)[1] for s in self.stages if s["stage"].startswith("generate:"))
        )

    def stage(self, iteration: int, name: str) -> dict[str, Any] | None:
        """The last record of ``name`` in ``iteration`` (a resumed stage may have logged twice)."""
        found = [s for s in self.stages if s["iteration"] == iteration and s["stage"] == name]
        return found[-1] if found else None

    def eval_rollouts(self, iteration: int, task: str, samples: bool) -> list[Rollout]:
        """The verified eval completions of ``iteration``: the greedy pass, or the n samples; [] when absent."""
        path = self.root / f"iter-{iteration:03d}" / "eval" / f"{task}{'.samples' if samples else ''}.jsonl"
        return [Rollout.from_json(r) for r in read_jsonl(path)] if path.is_file() else []


def load_run(root: str | Path) -> RunData:
    root = Path(root)
    if not (root / "summary.json").is_file():
        raise UserError(f"{root} is not a finished run directory: no summary.json (run `selfimprove run` first)")
    summary = json.loads((root / "summary.json").read_text())
    evals = [i["eval"] for i in summary["iterations"]]
    stages = read_jsonl(root / "metrics.jsonl") if (root / "metrics.jsonl").is_file() else []
    selected = {
        int(p.parent.name[5:]): sum(1 for line in p.read_text().splitlines() if line.strip())
        for p in sorted(root.glob("iter-*/selected.jsonl"))
    }
    return RunData(root, evals, stages, selected)
