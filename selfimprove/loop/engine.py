"""What an offline and an online run share: the run directory, the processes, the seed, the trackers and the stages;
the start that checks a run to resume, reads every data set before a model loads and builds the roles' parts; the
roles' play (draw, generate, verify); the held-out evaluation; one metric and one summary path. ``loop.runner``
(iterations: the step's batch is the whole split, the update restarts from the base or the last iterate) and
``loop.online`` (steps of one live policy) differ in what a step's batch is and in the update's life cycle."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any, ClassVar

from selfimprove.config.schema import Component, Logging, Recipe, Role
from selfimprove.errors import UserError
from selfimprove.loop import heldout, manifest
from selfimprove.loop.distributed import Processes
from selfimprove.loop.stages import Stages, Timer
from selfimprove.models.live import LivePolicy
from selfimprove.progress import console
from selfimprove.prompts import render
from selfimprove.records import Job, Problem, Rollout
from selfimprove.rundir import RunDir
from selfimprove.sources import Buffer, StepContext
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
    seed_scope: ClassVar[tuple[str, ...]] = ()  # what a role's sampling seed is drawn under, besides the step

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
        self.buffers: dict[str, Buffer] = {}  # problems that live across steps (online runs declare them)

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
        self.build_roles()

    def build_roles(self) -> None:
        """Each role's source, verifiers and generator. Roles with the same verifier spec share one instance (a judge
        loads its model once), and roles with the same generation settings one generator (one vLLM engine)."""
        recipe = self.recipe
        verifiers: dict[int, Verifier] = {}  # by spec: the recipe's verifier is one spec, however many roles use it
        generators: dict[str, Any] = {}  # by generation settings

        def verifier(spec: Component) -> Verifier:
            if id(spec) not in verifiers:
                verifiers[id(spec)] = spec.build()
            return verifiers[id(spec)]

        def generator(settings: dict[str, Any]) -> Any:
            key = json.dumps(settings, sort_keys=True)
            if key not in generators:
                generators[key] = recipe.generator.build(**settings)
            return generators[key]

        self.eval_verifier = verifier(recipe.verifier) if recipe.verifier else None
        self.sources = {r.name: (r.source or Component("source", "task")).build() for r in recipe.roles}
        self.verifiers = {r.name: [(s.tag, verifier(s)) for s in recipe.verifiers_of(r)] for r in recipe.roles}
        self.generators = {r.name: generator(r.generation) for r in recipe.roles}

    # -- the roles' play ---------------------------------------------------------------------------------------------
    def play(
        self, key: int | str, roles: list[Role], d: str, batch: list[Problem], policy: LivePolicy
    ) -> tuple[dict[str, list[Rollout]], dict[str, float]]:
        """Each role in order: its problems from its source (which may read the step's batch, the earlier roles'
        rollouts and the buffers), ``n`` samples each from ``policy``, its verifiers' verdicts; records in ``d``,
        resumable by batch. ``key`` (the step, or a seeding round's name) seeds the sources and the sampling."""
        times = {"generate": 0.0, "verify": 0.0}
        by_role: dict[str, list[Rollout]] = {}
        self.procs.generated = 0  # the step's requests only (not an evaluation's)
        for role in roles:
            rng = random.Random(self.stages.seed_for("source", key, role.name))
            problems = self.stages.draw(self.sources[role.name], StepContext(
                key if isinstance(key, int) else 0, rng, batch, dict(by_role), self.buffers))  # fmt: skip
            seed = self.stages.seed_for(*self.seed_scope, key, role.name)
            with Timer() as generated:
                rollouts = self.stages.generate(
                    f"{d}/rollouts-{role.name}.jsonl", self.generators[role.name], policy, self.jobs(role, problems),
                    role.name, role.n, seed,
                )  # fmt: skip
            with Timer() as verified:
                verifiers = self.verifiers[role.name]
                rollouts = self.stages.verify(f"{d}/verified-{role.name}.jsonl", verifiers, rollouts, policy)
            times["generate"] += generated.seconds
            times["verify"] += verified.seconds
            by_role[role.name] = rollouts
            self.played(key, role, rollouts, generated.seconds + verified.seconds)
        return by_role, times

    def jobs(self, role: Role, problems: list[Problem]) -> list[Job]:
        """Each problem with the prompt the role samples from and, offline, the one its update trains on when that
        differs (``train_prompt_from``, exemplars left out unless ``train_few_shot``: STaR trains on the hint-free
        prompt). Online the update scores the prompt each rollout was sampled from, as a policy gradient must."""
        if self.online:
            return [(p, render(role.prompt, p), None) for p in problems]
        train = self.recipe.role(role.train_prompt_from).prompt if role.train_prompt_from else role.prompt
        jobs = []
        for p in problems:
            prompt, train_prompt = render(role.prompt, p), render(train, p, few_shot=train.train_few_shot)
            jobs.append((p, prompt, train_prompt if train_prompt != prompt else None))
        return jobs

    def played(self, key: int | str, role: Role, rollouts: list[Rollout], seconds: float) -> None:
        """Called after each role of ``play`` (an offline iteration logs each role's generation)."""

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
