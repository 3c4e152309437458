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
from selfimprove.models import Policy
from selfimprove.prompts import render
from selfimprove.registry import registries
from selfimprove.rundir import RunDir


def default_verifier(task: Any) -> Component:
    """The verifier a task declares (its ``verifier``: a name or ``{"name": ..., **arguments}``), else ``math``."""
    declared = getattr(task, "verifier", "math")
    spec = {"name": declared} if isinstance(declared, str) else dict(declared)
    name = spec.pop("name")
    if name not in registries["verifier"].entries():
        raise UserError(f"task {type(task).__name__} is scored by the verifier '{name}', which is not installed")
    return Component("verifier", name, spec)


@dataclass
class TaskSpec:
    """A task named on the command line: its name, split, limit and arguments (checked as a recipe's are)."""

    name: str
    split: str = "test"
    limit: int | None = None
    args: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def tag(self) -> str:
        return self.label or self.name

    def build(self) -> Any:
        return Component("task", self.name, self.args).build()

    def load(self, task: Any = None) -> list:
        problems = (task or self.build()).load(self.split)[: self.limit]
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
    """``{"tasks": {name: {metrics..., "problems": [...]}}}``, every completion included. Each task is scored by
    ``verifier`` when given, else by the verifier it declares, and asked with the prompt it declares (``system``
    replacing its system message)."""
    built = {t.tag: t.build() for t in tasks}
    loaded = {t.tag: t.load(built[t.tag]) for t in tasks}  # all data read before the model loads
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="selfimprove-eval-") as work:
        for task in tasks:
            problems, source = loaded[task.tag], built[task.tag]
            declared = dict(getattr(source, "prompt", None) or {})
            prompt = Prompt(**{**declared, **({"system": system} if system else {})})
            checker = (Component("verifier", verifier) if verifier else default_verifier(source)).build()
            metrics, greedy, samples = evaluate_task(
                RunDir(work), "eval", task.tag, problems, [render(prompt, p) for p in problems],
                Component("generator", "hf"), sampling, checker, policy, stages.stage_seed(seed, "eval", task.tag),
                show_progress,
            )  # fmt: skip
            results[task.tag] = {**metrics, "problems": problem_records(greedy, samples)}
    return {"tasks": results}
