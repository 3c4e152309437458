"""Runs side by side: their held-out metrics per iteration or step, what differs between their resolved recipes,
and whether they are comparable (the same seed, the same evaluation set)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.analysis.rundata import RunData, load_run
from selfimprove.errors import UserError
from selfimprove.rundir import RunDir


@dataclass
class Comparison:
    names: list[str]
    runs: list[RunData]
    differences: list[tuple[str, list[Any]]]  # a recipe key and its value in each run (absent: None)
    warnings: list[str]

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(t for run in self.runs for t in run.tasks))

    def metrics(self, task: str) -> list[str]:
        """The metrics any run reports for ``task``: accuracy, then pass@k and maj@k by k."""
        keys = {k for run in self.runs for e in run.evals for k in e.get(task, {}) if k.startswith(("pass@", "maj@"))}
        return ["accuracy", *sorted(keys, key=lambda k: (k.startswith("maj"), int(k.split("@")[1])))]

    def points(self) -> list[int]:
        return sorted({p for run in self.runs for p in run.iterations})

    def series(self, task: str, metric: str) -> dict[str, list[float | None]]:
        """Per run, the metric at every point any run has (None where this run has no evaluation)."""
        out = {}
        for name, run in zip(self.names, self.runs, strict=True):
            at = {p: e.get(task, {}).get(metric) for p, e in zip(run.iterations, run.evals, strict=True)}
            out[name] = [at.get(p) for p in self.points()]
        return out


def differences(values: list[Any], key: str = "") -> list[tuple[str, list[Any]]]:
    """Where the recipes ``values`` differ, key by key: mappings by key and lists by position (``roles.1.when``), down
    to the first level at which they differ; what one recipe lacks is None there."""
    if all(isinstance(v, dict) for v in values):
        keys = sorted(set().union(*values))
        return [d for k in keys for d in differences([v.get(k) for v in values], f"{key}.{k}" if key else str(k))]
    if all(isinstance(v, list) for v in values):
        longest = max(len(v) for v in values)
        return [d for i in range(longest) for d in differences([v[i] if i < len(v) else None for v in values],
                                                                f"{key}.{i}")]  # fmt: skip
    return [(key, values)] if len({json.dumps(v, sort_keys=True) for v in values}) > 1 else []


def eval_sampling(recipe: dict[str, Any]) -> dict[str, Any]:
    """How a run's held-out pass samples: its generator's settings under ``eval.generation``'s (which engine and
    its batch size aside)."""
    generator = {k: v for k, v in (recipe.get("generator") or {}).items() if k not in ("name", "batch_size")}
    return generator | ((recipe.get("eval") or {}).get("generation") or {})


def compare_runs(paths: list[str]) -> Comparison:
    if len(paths) < 2:
        raise UserError("compare needs at least two run directories")
    runs = [load_run(p) for p in paths]
    names = [Path(p).resolve().name for p in paths]
    if len(set(names)) < len(names):  # the same folder name in different places: say where
        names = [str(Path(p)) for p in paths]
    manifests = []
    for path in paths:
        file = Path(path) / RunDir.MANIFEST
        if not file.is_file():
            raise UserError(f"{path} has no manifest.json: not a run directory")
        manifests.append(json.loads(file.read_text()))
    warnings = []
    seeds = [m.get("seed") for m in manifests]
    if len(set(seeds)) > 1:
        warnings.append(f"the runs have different seeds ({', '.join(map(str, seeds))}): not like for like")
    evals = [json.dumps(m["recipe"].get("eval", {}).get("tasks"), sort_keys=True) for m in manifests]
    if len(set(evals)) > 1:
        warnings.append("the runs are evaluated on different tasks, splits or limits: not like for like")
    if len({json.dumps(eval_sampling(m["recipe"]), sort_keys=True) for m in manifests}) > 1:
        warnings.append("the runs evaluate with different generation settings: not like for like")
    if len({run.axis for run in runs}) > 1:
        warnings.append("offline iterations and online steps are compared side by side: an iteration is not a step")
    return Comparison(names, runs, differences([m["recipe"] for m in manifests]), warnings)
