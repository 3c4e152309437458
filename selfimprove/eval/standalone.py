"""Evaluation outside a run: the tasks named on the command line and the policy named by ``--model [--adapter]`` or
by a run's iteration or step. ``selfimprove eval`` and ``analyze passk`` evaluate them with the routine a run uses
(``selfimprove.eval.evaluate``, through ``selfimprove.loop.heldout.evaluate_policy``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfimprove.config.schema import Component, Prompt
from selfimprove.errors import UserError
from selfimprove.eval.evaluate import EvalTask
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
    if not root.exists(root.MANIFEST):
        raise UserError(f"--run: {run} is not a run directory (no manifest.json)")
    recipe = root.read_json(root.MANIFEST)["recipe"]
    base = resolve(model or recipe["model"])
    if recipe.get("loop", {}).get("mode") == "online":
        if iteration is not None:
            raise UserError(f"--iteration: {run} is an online run; name a checkpointed step with --step")
        saved = root.saved_steps()
        step = (saved[-1] if saved else 0) if step is None else step
        if step == 0:
            return Policy(base)
        if step not in saved:
            raise UserError(f"--step {step}: {run} has checkpoints at steps {saved or 'none'} (loop.keep_last)")
        return Policy(base, str(root.root / root.checkpoint_dir(step) / "policy"))
    if step is not None:
        raise UserError(f"--step: {run} is an offline run; name an iteration with --iteration")
    done = root.finished_iterations()
    if iteration is None:
        iteration = done[-1] if done else 0
    if iteration == 0:
        return Policy(base)
    if iteration not in done:
        raise UserError(f"--iteration {iteration}: {run} has finished updates for iterations {done or 'none'}")
    # an iteration that selected nothing kept the policy it started from
    for it in range(iteration, 0, -1):
        if root.read_json(f"{root.iteration_dir(it)}/update.json").get("checkpoint"):
            return Policy(base, str(root.root / root.iteration_dir(it) / "checkpoint"))
        if recipe.get("loop", {}).get("init", "base") == "base":
            break
    return Policy(base)


def named_tasks(tasks: list[TaskSpec], verifier: str | None = None, system: str | None = None) -> list[EvalTask]:
    """The tasks with their problems (all read before a model loads), each asked with the prompt it declares
    (``system`` replacing its system message) and scored by ``verifier`` when given, else by the one it declares."""
    built = {t.tag: t.build() for t in tasks}
    loaded = {t.tag: t.load(built[t.tag]) for t in tasks}
    named = []
    for task in tasks:
        problems, source = loaded[task.tag], built[task.tag]
        declared = dict(getattr(source, "prompt", None) or {})
        prompt = Prompt(**{**declared, **({"system": system} if system else {})})
        checker = (Component("verifier", verifier) if verifier else default_verifier(source)).build()
        named.append(EvalTask(task.tag, problems, [render(prompt, p) for p in problems], checker))
    return named
