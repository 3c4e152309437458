"""Evaluation outside a run: a model (with an adapter, or a run's checkpoint) on named tasks.

``selfimprove eval`` and ``selfimprove analyze passk`` use it; it runs the same routine as the loop's evaluation.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfimprove.config.schema import Component, Prompt
from selfimprove.errors import UserError
from selfimprove.eval.evaluate import Sampling, evaluate_task, problem_records
from selfimprove.loop import stages
from selfimprove.loop.rundir import RunDir
from selfimprove.models import Policy
from selfimprove.prompts import render
from selfimprove.registry import registries

# Tasks whose answers are code: scored by running their tests.
CODE_TASKS = {"humaneval", "mbpp"}


def default_verifier(task: str) -> str:
    """``code`` for code tasks; ``math`` (math-verify) for the rest when installed, else ``numeric``."""
    names = registries["verifier"].entries()
    if task in CODE_TASKS:
        if "code" not in names:
            raise UserError(f"task '{task}' needs the 'code' verifier, which is not installed")
        return "code"
    return "math" if "math" in names else "numeric"


@dataclass
class TaskSpec:
    name: str
    split: str = "test"
    limit: int | None = None
    args: dict[str, Any] = field(default_factory=dict)

    def load(self) -> list:
        component = Component("task", self.name, self.args)
        problems = component.build().load(self.split)[: self.limit]
        if not problems:
            raise UserError(f"task '{self.name}' has no problems in split '{self.split}'")
        return problems


def finished_iterations(run: str) -> list[int]:
    """The iterations of a run directory whose update finished."""
    return sorted(int(p.parent.name[5:]) for p in Path(run).glob("iter-*/update.json"))


def saved_steps(run: str) -> list[int]:
    """The steps of an online run directory that have a complete checkpoint (the last ``keep_last`` of them)."""
    return sorted(int(p.name[5:]) for p in Path(run).glob("checkpoints/step-*") if (p / "state.json").is_file())


def policy_from(
    model: str | None, adapter: str | None, run: str | None, iteration: int | None, step: int | None = None
) -> Policy:
    """The policy named by ``--model [--adapter]``, by an offline run's iteration (default: the last one) or by an
    online run's checkpointed step (default: the last one; 0 = the starting model)."""
    from selfimprove.models.embedded import resolve

    if run is None:
        if model is None:
            raise UserError("name a model with --model, or a run with --run")
        if iteration is not None or step is not None:
            raise UserError("--iteration and --step need --run")
        if adapter and not Path(adapter).exists():
            raise UserError(f"--adapter: no such folder: {adapter}")
        return Policy(resolve(model), adapter)
    if adapter:
        raise UserError("--adapter and --run both name the weights; give one")
    root = RunDir(run)
    if not root.exists("manifest.json"):
        raise UserError(f"--run: {run} is not a run directory (no manifest.json)")
    recipe = root.read_json("manifest.json")["recipe"]
    base = resolve(model or recipe["model"])
    if recipe.get("loop", {}).get("mode") == "online":
        if iteration is not None:
            raise UserError(f"--iteration: {run} is an online run; name a checkpointed step with --step")
        saved = saved_steps(run)
        step = (saved[-1] if saved else 0) if step is None else step
        if step == 0:
            return Policy(base)
        if step not in saved:
            raise UserError(f"--step {step}: {run} has checkpoints at steps {saved or 'none'} (loop.keep_last)")
        return Policy(base, str(root.root / "checkpoints" / f"step-{step:06d}" / "policy"))
    if step is not None:
        raise UserError(f"--step: {run} is an offline run; name an iteration with --iteration")
    done = finished_iterations(run)
    if iteration is None:
        iteration = done[-1] if done else 0
    if iteration == 0:
        return Policy(base)
    if iteration not in done:
        raise UserError(f"--iteration {iteration}: {run} has finished updates for iterations {done or 'none'}")
    # an iteration that selected nothing kept the policy it started from
    for it in range(iteration, 0, -1):
        if root.read_json(f"iter-{it:03d}/update.json").get("checkpoint"):
            return Policy(base, str(root.root / f"iter-{it:03d}" / "checkpoint"))
        if recipe.get("loop", {}).get("init", "base") == "base":
            break
    return Policy(base)


def evaluate(
    policy: Policy,
    tasks: list[TaskSpec],
    sampling: Sampling,
    verifier: str | None = None,
    system: str | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """``{"tasks": {name: {metrics..., "problems": [...]}}}``, every completion included."""
    loaded = {t.name: t.load() for t in tasks}  # all data read before the model loads
    prompt = Prompt(system=system)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="selfimprove-eval-") as work:
        for task in tasks:
            problems = loaded[task.name]
            checker = Component("verifier", verifier or default_verifier(task.name)).build()
            metrics, greedy, samples = evaluate_task(
                RunDir(work), "eval", task.name, problems, [render(prompt, p) for p in problems],
                Component("generator", "hf"), sampling, checker, policy, stages.stage_seed(seed, "eval", task.name),
                show_progress,
            )  # fmt: skip
            results[task.name] = {**metrics, "problems": problem_records(greedy, samples)}
    return {"tasks": results}
