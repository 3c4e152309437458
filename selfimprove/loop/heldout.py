"""Held-out evaluation through the engine's stages (``selfimprove.eval.evaluate`` is the routine): inside a run,
at iterations or steps, and of a policy outside one (``selfimprove eval``, ``analyze passk``) in a scratch run
directory; and the run's console table."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from selfimprove.capabilities import PolicyJudge
from selfimprove.config.schema import Component, Recipe
from selfimprove.eval import evaluate as evaluation
from selfimprove.eval.evaluate import EvalTask, Job, Sampling, metric_columns
from selfimprove.eval.standalone import TaskSpec, named_tasks
from selfimprove.generators import Generator
from selfimprove.loop.distributed import SINGLE, Processes
from selfimprove.loop.stages import Stages, stage_seed
from selfimprove.models import Policy
from selfimprove.models.live import LivePolicy
from selfimprove.progress import console
from selfimprove.prompts import render
from selfimprove.records import Problem, Rollout
from selfimprove.rundir import RunDir
from selfimprove.verifiers import Verifier


@dataclass
class RunStages:
    """``selfimprove.eval.evaluate.Stages``: the loop's stages on one run directory, policy and set of processes."""

    run: RunDir
    policy: Policy | LivePolicy
    show_progress: bool = True
    procs: Processes = field(default_factory=lambda: SINGLE)
    stages: Stages = field(init=False)

    def __post_init__(self) -> None:
        self.stages = Stages(self.run, 0, self.procs, self.show_progress)  # offline; each stage is given its seed

    def generate(self, name: str, generator: Generator, jobs: list[Job], role: str, n: int, seed: int) -> list[Rollout]:
        return self.stages.generate(name, generator, self.policy, jobs, role, n, seed)

    def verify(self, name: str, verifier: Verifier, rollouts: list[Rollout]) -> list[Rollout]:
        return self.stages.verify(name, [("", verifier)], rollouts)

    def seed(self, seed: int, *parts: Any) -> int:
        return stage_seed(seed, *parts)


def evaluate(
    recipe: Recipe,
    run: RunDir,
    directory: str,
    problems: dict[str, list[Problem]],
    verifier: Verifier | None,
    policy: LivePolicy,
    seed: int,
    show_progress: bool,
    log: Any,
    procs: Processes = SINGLE,
) -> dict[str, dict[str, float]]:
    """Held-out metrics of ``policy`` on every eval task, written to ``<directory>/eval.json`` (read back if there):
    greedy accuracy and, with ``eval.n > 1``, pass@k and maj@k. ``log(stage, seconds, metrics)`` records each task.
    Every process takes part (each generates and verifies its share); the main process writes.
    """
    saved = procs.on_main(
        lambda: run.read_json(f"{directory}/eval.json") if run.exists(directory, "eval.json") else None
    )
    if saved is not None:
        return saved
    spec = recipe.eval
    if not spec.tasks:
        return {}
    sampling = Sampling(spec.generation, spec.n, spec.k, spec.temperature)
    verifier = spec.verifier.build() if spec.verifier else verifier
    if verifier is None:
        raise RuntimeError("validated recipes have an eval verifier when they have eval tasks")
    if isinstance(verifier, PolicyJudge):
        verifier.use_policy(policy)
    tasks = []
    for task in spec.tasks:
        asked_as = task.prompt_from or spec.prompt_from
        role = recipe.role(asked_as) if asked_as else recipe.roles[0]
        task_problems = problems[f"eval:{task.tag}"]
        prompts = [render(role.prompt, p, few_shot=spec.few_shot) for p in task_problems]
        tasks.append(EvalTask(task.tag, task_problems, prompts, verifier))
    evaluated = evaluation.evaluate(
        RunStages(run, policy, show_progress, procs), f"{directory}/eval", tasks, recipe.generator, sampling, seed, log
    )
    results = {tag: result.metrics for tag, result in evaluated.items()}
    if procs.is_main:
        run.write_json(f"{directory}/eval.json", results)
    return results


def evaluate_policy(
    policy: Policy,
    tasks: list[TaskSpec],
    sampling: Sampling,
    verifier: str | None = None,
    system: str | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """``{"tasks": {name: {metrics..., "problems": [...]}}}``, every completion included (``named_tasks`` says
    how each task is asked and scored). The stages' files go to a scratch directory, removed after."""
    named = named_tasks(tasks, verifier, system)
    with tempfile.TemporaryDirectory(prefix="selfimprove-eval-") as work:
        evaluated = evaluation.evaluate(
            RunStages(RunDir(work), policy, show_progress), "eval", named, Component("generator", "hf"), sampling, seed
        )
    return {"tasks": {tag: {**result.metrics, "problems": result.problems} for tag, result in evaluated.items()}}


def print_eval_table(evals: list[dict[str, Any]], label: str = "iter", points: list[int] | None = None) -> None:
    """One row per task and metric, one column per evaluation (metrics outnumber evaluations)."""
    if not evals or not evals[0]:
        return
    points = points if points is not None else list(range(len(evals)))
    table = Table(title="Held-out evaluation")
    table.add_column("task", style="bold")
    table.add_column("metric")
    for p in points:
        table.add_column(f"{label} {p}", justify="right")
    for name in evals[0]:
        last = evals[-1].get(name, evals[0][name])
        rows = [(key, "{:.1%}") for key in metric_columns(last)]
        rows += [("mean_response_tokens", "{:.0f}"), ("entropy", "{:.3f}")]
        for j, (key, fmt) in enumerate(rows):
            values = [e.get(name, {}).get(key) for e in evals]
            if any(v is not None for v in values):
                table.add_row(name if j == 0 else "", key, *("" if v is None else fmt.format(v) for v in values))
    console.print(table)
