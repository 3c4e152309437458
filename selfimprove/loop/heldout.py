"""Held-out evaluation inside a run (at iterations or steps), and its console table."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from selfimprove.capabilities import PolicyJudge
from selfimprove.config.schema import Recipe
from selfimprove.eval.evaluate import Sampling, evaluate_task
from selfimprove.loop import stages
from selfimprove.loop.distributed import SINGLE, Processes
from selfimprove.loop.rundir import RunDir
from selfimprove.models.live import LivePolicy
from selfimprove.progress import console
from selfimprove.prompts import render
from selfimprove.records import Problem
from selfimprove.verifiers import Verifier


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
    results: dict[str, dict[str, float]] = {}
    for task in spec.tasks:
        asked_as = task.prompt_from or spec.prompt_from
        role = recipe.role(asked_as) if asked_as else recipe.roles[0]
        task_problems = problems[f"eval:{task.tag}"]
        prompts = [render(role.prompt, p, few_shot=spec.few_shot) for p in task_problems]
        with stages.Timer() as t:
            results[task.tag], _, _ = evaluate_task(
                run, f"{directory}/eval", task.tag, task_problems, prompts, recipe.generator, sampling, verifier,
                policy, stages.stage_seed(seed, "eval", task.tag), show_progress, procs,
            )  # fmt: skip
        log(f"eval:{task.tag}", t.seconds, results[task.tag])
    if procs.is_main:
        run.write_json(f"{directory}/eval.json", results)
    return results


def metric_columns(metrics: dict[str, Any]) -> list[str]:
    """The headline metrics of one task's results, in reading order: accuracy, pass@k by k, maj@k by k."""
    keys = [key for key in metrics if key.startswith(("pass@", "maj@"))]
    return ["accuracy", *sorted(keys, key=lambda key: (key.startswith("maj"), int(key.split("@")[1])))]


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
