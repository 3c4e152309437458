"""What an offline and an online run share: the run directory, the processes, the seed, the trackers and the stages;
the start that checks a run to resume and reads every data set before a model loads; the held-out evaluation; one
metric and one summary path. ``loop.runner`` (iterations) and ``loop.online`` (steps of one live policy) differ in
what a unit of the run is and in the update's life cycle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

from selfimprove.config.schema import Component, Logging, Recipe
from selfimprove.errors import UserError
from selfimprove.loop import heldout, manifest
from selfimprove.loop.distributed import Processes
from selfimprove.loop.stages import Stages
from selfimprove.models.live import LivePolicy
from selfimprove.progress import console
from selfimprove.records import Problem
from selfimprove.rundir import RunDir
from selfimprove.tracking import Trackers
from selfimprove.verifiers import Verifier


def load_problems(task: Component) -> list[Problem]:
    problems = task.build().load(task.split)[: task.limit]
    if not problems:
        raise UserError(f"task '{task.name}' has no problems in split '{task.split}'")
    return problems


class Engine:
    """One run of a recipe. Under several processes every process runs every stage (each generates and verifies its
    share), the main process alone runs what needs a whole stage and alone writes the run directory."""

    unit: ClassVar[str]  # what the run counts, as metrics.jsonl and summary.json name it: "iteration" or "step"
    online: ClassVar[bool]

    def __init__(self, recipe: Recipe, run_dir: str | Path, show_progress: bool = True):
        self.recipe, self.loop = recipe, recipe.loop
        self.run = RunDir(run_dir)
        self.procs = Processes.current()
        self.is_main = self.procs.is_main
        self.show_progress = show_progress and self.is_main
        self.seed = recipe.loop.seed
        # A missing package fails here. Only the main process logs: the others would open second W&B runs.
        self.trackers = Trackers(recipe.logging if self.is_main else Logging(), self.run.root, recipe.resolved)
        self.stages = Stages(self.run, self.seed, self.procs, self.show_progress, online=self.online)

    def start(self) -> None:
        """Everything that can fail before a model loads: a run directory that holds another recipe, an adapter
        this machine cannot train, the data sets (all read now, so bad data fails in seconds). Then the manifest."""
        from selfimprove.models.loading import check_adapter_supported
        from selfimprove.quiet import quiet_libraries

        quiet_libraries()
        if self.is_main and self.run.exists(RunDir.MANIFEST):
            manifest.check_resumable(self.run.read_json(RunDir.MANIFEST), self.recipe, self.run.root)
            console.print(f"[bold]Resuming[/] {self.run.root}")
        check_adapter_supported(self.recipe.adapter)
        self.train = load_problems(self.recipe.task) if self.recipe.task else None
        self.problems = {f"eval:{t.tag}": load_problems(t) for t in self.recipe.eval.tasks}
        if self.is_main:
            self.run.write_json(RunDir.MANIFEST, manifest.build(self.recipe, sys.argv))

    def evaluate_in(
        self, at: int, directory: str, verifier: Verifier | None, policy: LivePolicy
    ) -> dict[str, dict[str, float]]:
        """Held-out metrics of ``policy`` (greedy accuracy and, with ``eval.n > 1``, pass@k and maj@k), written to
        ``directory/eval.json`` and logged at ``at``."""
        return heldout.evaluate(
            self.recipe, self.run, directory, self.problems, verifier, policy, self.seed, self.show_progress,
            lambda stage, seconds, values: self.metric(at, stage, seconds, values), self.procs,
        )  # fmt: skip

    def metric(self, at: int, stage: str, seconds: float, values: dict[str, Any]) -> None:
        """One record of ``metrics.jsonl`` (and of the trackers), from the main process."""
        if not self.is_main:
            return
        record = {self.unit: at, "stage": stage, "seconds": round(seconds, 3), **values}
        self.run.append_metrics(record)
        self.trackers.log(record)

    def write_summary(self, evals: dict[int, dict[str, Any]]) -> dict[str, Any]:
        """``summary.json``: every evaluation so far, by iteration or step."""
        summary = {f"{self.unit}s": [{self.unit: at, "eval": e} for at, e in sorted(evals.items())]}
        if self.is_main:
            self.run.write_json(RunDir.SUMMARY, summary)
        return summary

    def show(self, evals: dict[int, dict[str, Any]]) -> None:
        if self.is_main:
            heldout.print_eval_table(list(evals.values()), "iter" if self.unit == "iteration" else "step", list(evals))
