"""Run a recipe: iteration 0 evaluates the starting model; each later iteration is a step whose batch is the whole
split (its roles play as an online step's do), then select -> update (from the base or the last iterate) -> evaluate."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from selfimprove.config.schema import Recipe, Role
from selfimprove.errors import UserError
from selfimprove.eval.evaluate import mean
from selfimprove.loop import stages
from selfimprove.loop.engine import Engine
from selfimprove.models import Policy
from selfimprove.models.embedded import resolve
from selfimprove.models.live import LoadedPolicy
from selfimprove.progress import console
from selfimprove.records import Example, Rollout
from selfimprove.rundir import RunDir
from selfimprove.updaters import UpdateContext


def run_recipe(recipe: Recipe, run_dir: str | Path, show_progress: bool = True) -> dict[str, Any]:
    """Run a recipe offline (iterations) or online (steps of one live policy), as its ``loop.mode`` says."""
    if recipe.online:
        from selfimprove.loop.online import OnlineRunner

        return OnlineRunner(recipe, run_dir, show_progress).execute()
    return Runner(recipe, run_dir, show_progress).execute()


class Runner(Engine):
    """Offline iterations: generation and verification shared out among the processes, selection on the main
    process, every process in the update (``loop.engine``)."""

    unit, online = "iteration", False

    def __init__(self, recipe: Recipe, run_dir: str | Path, show_progress: bool = True):
        super().__init__(recipe, run_dir, show_progress)
        self._loaded: LoadedPolicy | None = None

    def start(self) -> None:
        start = self.recipe.loop.start
        if start is not None and not Path(start).is_dir():
            raise UserError(f"loop.start: no checkpoint folder {start} (run the recipe that writes it first)")
        self.start_checkpoint = str(Path(start).resolve()) if start is not None else None
        super().start()
        self.base = resolve(self.recipe.model)

    # -- one iteration ---------------------------------------------------------------------------------
    def iteration(self, it: int, policy: Policy) -> Policy:
        """The step whose batch is the whole split: every role's rollouts, the selection over all of them, and an
        update that restarts from the base (STaR, ReST-EM) or from the last iterate (SPIN)."""
        d = RunDir.iteration_dir(it)
        by_role, _ = self.play(it, self.recipe.roles, d, self.train, self.loaded(policy))
        rollouts = [r for role in self.recipe.roles for r in by_role[role.name]]
        examples = self.stages.select(f"{d}/selected.jsonl", self.recipe.selector.build(), rollouts)
        return self.update(it, policy, examples + self.replayed(it))

    def played(self, it: int | str, role: Role, rollouts: list[Rollout], seconds: float) -> None:
        self.metric(it, f"generate:{role.name}", seconds, {
            "rollouts": len(rollouts),
            "passed": sum(bool(r.verdict and r.verdict.passed) for r in rollouts),
            "mean_tokens": sum(r.num_tokens for r in rollouts) / max(len(rollouts), 1),
            "entropy": mean([r.entropy for r in rollouts]),
            "requests_per_process": self.procs.take_generated(),
        })  # fmt: skip

    def replayed(self, it: int) -> list[Example]:
        """The examples selected in the previous ``loop.replay`` iterations: SPIN trains iteration t on its new
        pairs and on iteration t-1's. Their ids get the iteration they come from."""

        def read() -> list[dict[str, Any]]:
            records = []
            for past in range(it - 1, max(it - self.recipe.loop.replay, 1) - 1, -1):
                d = RunDir.iteration_dir(past)
                if self.run.exists(d, "selected.jsonl"):
                    records += [{**r, "id": f"{d}/{r['id']}"} for r in self.run.read_jsonl(f"{d}/selected.jsonl")]
            return records

        return [Example(**r) for r in self.procs.on_main(read)]

    def update(self, it: int, policy: Policy, examples: list) -> Policy:
        d = RunDir.iteration_dir(it)
        final = self.run.root / d / "checkpoint"
        init = policy.checkpoint if self.recipe.loop.init == "previous" else None
        info = self.procs.on_main(lambda: self.run.read_json(f"{d}/update.json") if self.run.exists(d, "update.json")
                                  else None)  # fmt: skip
        if info is not None:
            return Policy(self.base, str(final) if info.get("checkpoint") else init)
        if not examples:
            if self.is_main:
                console.print(f"[yellow]iteration {it}: no examples selected; skipping the update[/]")
                self.run.write_json(f"{d}/update.json", {"checkpoint": False, "examples": 0})
            return Policy(self.base, init)
        tmp = self.run.path(d, "checkpoint.tmp")
        ctx = UpdateContext(
            base=self.base, adapter=self.recipe.adapter, init=init, examples=examples,
            output_dir=tmp, work_dir=self.run.path(d, "trainer"), seed=self.stages.seed_for(it, "update"),
            iteration=it, previous=policy.checkpoint, show_progress=self.show_progress, processes=self.procs.world,
        )  # fmt: skip
        with stages.Timer() as t:
            metrics = self.recipe.updater.build().update(ctx)
        if self.is_main:  # the main process saved the checkpoint; it commits it and records the update
            self.run.commit_dir(tmp, final)
            shutil.rmtree(ctx.work_dir, ignore_errors=True)
            self.run.write_json(f"{d}/update.json", {"checkpoint": True, **metrics})
            self.metric(it, "update", t.seconds, metrics)
        self.procs.share(None)  # the others load the checkpoint next: wait until it is committed
        return Policy(self.base, str(final))

    # -- evaluation ------------------------------------------------------------------------------------
    def evaluate(self, it: int, policy: Policy) -> dict[str, dict[str, float]]:
        return self.evaluate_in(it, RunDir.iteration_dir(it), self.eval_verifier, self.loaded(policy))

    def loaded(self, policy: Policy) -> LoadedPolicy:
        """``policy`` in memory, loaded once for the roles that sample from it and for its evaluation."""
        if self._loaded is None or self._loaded.policy != policy:
            self._loaded = None  # free the old model before loading the next
            self._loaded = LoadedPolicy(policy)
        return self._loaded

    def execute(self) -> dict[str, Any]:
        self.start()
        policy = Policy(self.base, self.start_checkpoint)
        evals = {0: self.evaluate(0, policy)}
        summary = self.write_summary(evals)
        self.show(evals)
        for it in range(1, self.recipe.loop.iterations + 1):
            policy = self.iteration(it, policy)
            evals[it] = self.evaluate(it, policy)
            summary = self.write_summary(evals)
            self.show(evals)
        self.trackers.close()
        return summary
