"""An online run: one live policy across many small steps.

Each step draws a batch of problems, runs every role (generate from the live weights, verify), computes every
rollout's reward from the whole step, and makes one update; every ``eval_every`` steps the live policy is
evaluated, every ``save_every`` it is checkpointed. The model, its optimizer and the generator's view of the
weights stay in memory for the whole run: nothing is written or read between steps but the step's records.

    for step in 1..S:
        batch    = sampler.batch(step)                                   # the task's split, epoch by epoch
        for role in roles:                                               # in order: a role may read earlier ones
            problems = role.source.problems(step, batch, earlier roles, buffers)
            rollouts = generate(live policy, problems, n) -> verify      # step-NNNNNN/rollouts.jsonl
        rewards  = each role's reward functions over the step's rollouts
        buffers += their feeds' problems
        trainer.step(every rewarded rollout of the trained roles)       # one update, advantages by group key

Before step 1, a recipe may run a seeding stage (AZR's ``_init_seed_dataset``): rounds of its ``stage: seed`` roles,
no reward and no update, whose ``buffers[].seed_feed`` problems fill each buffer with a ``target`` until it holds that
many (or ``loop.seed_steps`` rounds have run); each round's records are in ``seed-NNNNNN/``, replayed on a resume.

A step's records are a cache of a deterministic computation: a killed run restarts from its last checkpoint and
replays the steps after it from their records (only their updates are recomputed), and ends with the same weights
and metrics as an uninterrupted run.

What it shares with an offline run (the start, the roles' play, the evaluation, the metric and summary path) is
``loop.engine``.
Under several processes (``selfimprove.loop.distributed``) each generates and verifies its share of every role;
the sources, the rewards and the buffers run on the main process, which sends each role's problems and the
rewarded rollouts to the others; every process joins the update; only the main process touches the run directory.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

from selfimprove.capabilities import roles_read
from selfimprove.config.schema import BufferSpec, Component, Role
from selfimprove.errors import UserError
from selfimprove.loop import checkpoints, stages
from selfimprove.loop.engine import Engine
from selfimprove.loop.sampler import EpochSampler
from selfimprove.models.embedded import resolve
from selfimprove.progress import console
from selfimprove.records import Example, Problem, Rollout
from selfimprove.rewards import StepRollouts
from selfimprove.rewards.stage import Term, assign_rewards, check_failures
from selfimprove.rundir import RunDir
from selfimprove.sources import Buffer, StepContext
from selfimprove.tasks.jsonl import json_objects


class OnlineRunner(Engine):
    unit, online, seed_scope = "step", True, ("step",)

    # -- setup -----------------------------------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.sampler = EpochSampler(self.train, self.loop.batch_size, self.seed) if self.train else None
        self.rewards = {r.name: reward_terms(r) for r in self.recipe.roles}
        self.buffers = {b.name: Buffer(b.name, seed_problems(b), b.max_size) for b in self.recipe.buffers}
        self.feeds = {b.name: b.feed.build() for b in self.recipe.buffers if b.feed is not None}
        self.seed_feeds = {b.name: b.seed_feed.build() for b in self.recipe.buffers if b.seed_feed is not None}

    # -- the run ---------------------------------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        from selfimprove.training.trainer import Trainer

        self.start()
        self.trainer = Trainer(
            resolve(self.recipe.model), self.recipe.adapter, self.recipe.updater.build(), seed=self.seed,
            total_steps=self.loop.steps, sharding=self.recipe.trainer.sharding,
        )  # fmt: skip
        start = self.restore()
        if start == 0:
            self.seed_buffers()
        evals = self.procs.on_main(lambda: {s: self.run.read_json(f"{RunDir.step_dir(s)}/eval.json")
                                            for s in self.eval_steps(start)})  # fmt: skip
        if 0 not in evals:
            evals[0] = self.evaluate(0)
        self.write_summary(evals)
        for step in range(start + 1, self.loop.steps + 1):
            self.step(step)
            if step == self.loop.steps or (self.loop.eval_every and step % self.loop.eval_every == 0):
                evals[step] = self.evaluate(step)
                self.write_summary(evals)
                self.show(evals)
            if step == self.loop.steps or step % self.loop.save_every == 0:
                self.save(step)
        self.trackers.close()
        return self.write_summary(evals)

    def eval_steps(self, upto: int) -> list[int]:
        every = self.loop.eval_every
        return [s for s in range(upto + 1) if (s == 0 or (every and s % every == 0)) and self.run.exists(
            RunDir.step_dir(s), "eval.json")]  # fmt: skip

    def seed_buffers(self) -> None:
        """The seeding stage: rounds of the ``stage: seed`` roles until every buffer with a ``target`` holds that
        many; a round skips the roles that feed only full buffers. Then each such buffer keeps its first
        ``target``. The rounds' records are replayed on a resume (the buffers start over from their seeds)."""
        targets = {b.name: b.target for b in self.recipe.buffers if b.target}
        roles = [r for r in self.recipe.roles if r.stage == "seed"]
        for k in range(1, self.loop.seed_steps + 1):
            hungry = {name for name, target in targets.items()
                      if len(self.buffers[name]) < target and name in self.seed_feeds}  # fmt: skip
            if not hungry:
                break
            wanted = {role for name in hungry for role in roles_read(self.seed_feeds[name])}
            start = time.perf_counter()
            by_role, _ = self.play_round(0, [r for r in roles if r.name in wanted], f"seed-{k:06d}", f"seed-{k}")
            if self.is_main:
                values: dict[str, Any] = {"round": k}
                for role in roles:
                    if by_role[role.name]:
                        values[f"{role.name}/rollouts"] = len(by_role[role.name])
                        values[f"{role.name}/passed"] = statistics.fmean(
                            bool(r.verdict and r.verdict.passed) for r in by_role[role.name])  # fmt: skip
                values.update({f"buffer/{name}": len(self.buffers[name]) for name in targets})
                self.metric(0, "seed", time.perf_counter() - start, values)
        for name, target in targets.items():
            self.buffers[name].truncate(target)
        if targets and self.is_main:
            sizes = ", ".join(f"{name} {len(self.buffers[name])}/{target}" for name, target in targets.items())
            console.print(f"[bold]Seeded[/] buffers: {sizes}")

    def step(self, step: int) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        self.procs.generated = 0  # this step's requests only (not an evaluation's), replayed or not
        train = [r for r in self.recipe.roles if r.stage == "train"]
        rollouts, times = self.play_round(step, train, RunDir.step_dir(step), step)
        examples = self.examples(rollouts)
        with stages.Timer() as t:
            update = self.trainer.step(examples, self.stages.seed_for("update", step))
        times["update"] = t.seconds
        times["step"] = time.perf_counter() - start
        update["cpu_seconds"] = round(time.process_time() - cpu, 3)  # every thread's: against wall, the cores used
        update["requests_per_process"] = self.procs.take_generated()
        self.log_step(step, rollouts, update, times)

    # -- one step's play, rewarded ----------------------------------------------------------------------------------
    def play_round(
        self, step: int, roles: list[Role], d: str, key: int | str
    ) -> tuple[dict[str, list[Rollout]], dict[str, float]]:
        """The rollouts of ``roles`` in the step (or seeding round) whose records are in ``d``, played on the step's
        batch and rewarded (read back when the records exist); the buffers are fed either way."""
        recorded = self.stages.recorded(f"{d}/rollouts.jsonl")
        if recorded is not None:
            by_role = self.by_role(recorded)
            if self.is_main:
                self.feed(step, by_role, key)
            return by_role, {"generate": 0.0, "verify": 0.0, "reward": 0.0}
        seeding = isinstance(key, str)
        batch = self.sampler.batch(step) if self.sampler and self.is_main and not seeding else []
        by_role, times = self.play(key, roles, d, batch, self.trainer.policy)
        with stages.Timer() as t:
            records = self.procs.on_main(lambda: self.reward(step, roles, by_role, d, key))
        times["reward"] = t.seconds
        return self.by_role([Rollout.from_json(r) for r in records]), times

    def reward(
        self, step: int, roles: list[Role], by_role: dict[str, list[Rollout]], d: str, key: int | str
    ) -> list[dict[str, Any]]:
        """The main process's part of a step after verification: rewards, the failure check, the buffers' feeds,
        the step's records (in ``d``)."""
        step_rollouts = StepRollouts(by_role, {name: [tag for tag, _ in vs] for name, vs in self.verifiers.items()})
        for role in roles:
            assign_rewards(by_role[role.name], self.rewards[role.name], step_rollouts)
        trained = [r for role in roles if role.train and role.stage == "train" for r in by_role[role.name]]
        check_failures(step, trained, self.loop.max_failed_rewards)
        self.feed(step, by_role, key)  # before writing: parsers record rejections on the rollouts they read
        records = [r.to_json() for rs in by_role.values() for r in rs]
        self.run.write_jsonl(f"{d}/rollouts.jsonl", records)
        for role in roles:
            for stage in ("rollouts", "verified"):
                self.run.path(d, f"{stage}-{role.name}.jsonl").unlink(missing_ok=True)
        return records

    def by_role(self, rollouts: list[Rollout]) -> dict[str, list[Rollout]]:
        return {r.name: [x for x in rollouts if x.role == r.name] for r in self.recipe.roles}

    def feed(self, step: int, by_role: dict[str, list[Rollout]], key: int | str) -> None:
        """Add each buffer's feed's problems of this step; in a seeding round (``key`` a text), each buffer's
        seed feed's problems, those it already holds skipped (AZR's seed set holds each triplet once)."""
        seeding = isinstance(key, str)
        for name, source in (self.seed_feeds if seeding else self.feeds).items():
            if not all(role in by_role for role in roles_read(source)):
                continue
            rng = random.Random(self.stages.seed_for("source", key, "buffer", name))
            ctx = StepContext(step, rng, [], by_role, self.buffers)
            self.buffers[name].add(source.problems(ctx), step, origin=key if seeding else None, unique=seeding)

    def examples(self, by_role: dict[str, list[Rollout]]) -> list[Example]:
        """Every rewarded rollout of the trained roles, with its group key and its role's loss weight."""
        return [
            Example(
                r.id, r.train_prompt or r.prompt, r.completion, weight=role.loss_weight, role=r.role, reward=r.reward,
                group=r.group_key(role.group_by), completion_ids=r.completion_ids, sampler_logps=r.sampler_logps,
            )
            for role in self.recipe.roles if role.train and role.stage == "train"
            for r in by_role[role.name] if r.reward is not None
        ]  # fmt: skip

    # -- evaluation, checkpoints, records --------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, dict[str, float]]:
        d = RunDir.step_dir(step)
        cached = self.procs.on_main(lambda: self.run.exists(d, "eval.json"))  # replayed after a resume
        results = self.evaluate_in(step, d, self.eval_verifier, self.trainer.policy)
        if cached:  # its metrics were dropped with the steps after the checkpoint: log them again
            for task, values in results.items():
                self.metric(step, f"eval:{task}", 0.0, values)
        return results

    def save(self, step: int) -> None:
        # every process writes its slices of a sharded trainer's state into the folder the main process made
        tmp = Path(self.procs.on_main(lambda: str(checkpoints.begin(self.run.root, step))))
        self.trainer.save(tmp)
        if self.is_main:
            state = {"step": step, "buffers": {name: b.state_dict() for name, b in self.buffers.items()}}
            checkpoints.commit(tmp, state, self.loop.keep_last)

    def restore(self) -> int:
        """Continue from the newest checkpoint; the step it was taken at (0 without one)."""
        found = self.procs.on_main(lambda: checkpoints.latest(self.run.root))
        latest = Path(found) if found else None  # every process reads it: several machines need it on shared storage
        if latest is None:
            if self.is_main:
                self.run.rewrite_metrics(lambda record: False)  # a run killed before its first checkpoint
            return 0
        self.trainer.load(latest)
        state = checkpoints.read_state(latest)
        for name, saved in state["buffers"].items():
            self.buffers[name].load_state_dict(saved)
        step = int(state["step"])
        if self.is_main:
            self.run.rewrite_metrics(lambda record: record.get("step", 0) <= step)  # later steps are replayed
            console.print(f"[bold]Resuming[/] from {latest} (step {step})")
        return step

    def log_step(self, step: int, by_role: dict[str, list[Rollout]], update: dict[str, float], times: dict) -> None:
        values: dict[str, Any] = {f"{k}_seconds": round(v, 3) for k, v in times.items() if k != "step"}
        generated = sum(r.num_tokens for rs in by_role.values() for r in rs)
        if times["generate"]:
            values["tokens_per_second"] = generated / times["generate"]
        values["other_seconds"] = round(times["step"] - sum(times[k] for k in ("generate", "verify", "reward",
                                                                                 "update")), 3)  # fmt: skip
        if self.sampler:
            values["epoch"] = self.sampler.epoch(step)
        for role in self.recipe.roles:
            if role.stage == "train":
                values.update(role_metrics(role.name, by_role[role.name]))
        values.update({f"buffer/{name}": len(buffer) for name, buffer in self.buffers.items()})
        values.update(update)
        self.metric(step, "step", times["step"], values)
        if self.is_main:
            console.print(step_line(step, self.loop.steps, self.recipe.roles, values))


def reward_terms(role: Role) -> list[Term]:
    """A role's reward functions with their weights and part labels (default: the first verifier's score)."""
    specs = role.rewards or [Component("reward", "verdict")]
    tags = [s.tag for s in specs]
    labels = [tag if tags.count(tag) == 1 else f"{tag}#{tags[:i].count(tag) + 1}" for i, tag in enumerate(tags)]
    return [Term(label, spec.weight, spec.build()) for label, spec in zip(labels, specs, strict=True)]


def seed_problems(spec: BufferSpec) -> list[Problem]:
    """A buffer's ``seed`` problems, then one per line of its ``seed_file`` (the line is the problem's meta, over
    ``seed_meta``)."""
    problems = [seed_problem(spec.name, i, p) for i, p in enumerate(spec.seed)]
    if spec.seed_file is None:
        return problems
    file = Path(spec.seed_file)
    where = f"buffers '{spec.name}' seed_file {file}"
    if not file.is_file():
        raise UserError(f"{where}: no such file")
    for lineno, row in json_objects(file, where):
        problems.append(Problem(f"file-{lineno}", "", None, {**spec.seed_meta, **row}))
    return problems


def seed_problem(buffer: str, i: int, data: dict[str, Any]) -> Problem:
    known = {"id", "question", "answer", "meta"}
    if not isinstance(data, dict) or set(data) - known:
        raise UserError(f"buffers '{buffer}' seed {i}: a problem is a mapping of {sorted(known)}, got {data!r}")
    return Problem(str(data.get("id", f"seed-{i}")), str(data.get("question", "")), data.get("answer"),
                   dict(data.get("meta") or {}))  # fmt: skip


def role_metrics(role: str, rollouts: list[Rollout]) -> dict[str, Any]:
    """Per-role statistics of one step: reward mean and std, share without a reward, passes, length, entropy,
    rejected by a later role's parser, and the mean of each reward part."""
    if not rollouts:
        return {f"{role}/rollouts": 0}
    rewards = [r.reward for r in rollouts if r.reward is not None]
    out: dict[str, Any] = {
        f"{role}/rollouts": len(rollouts),
        f"{role}/no_reward": 1 - len(rewards) / len(rollouts),
        f"{role}/passed": sum(bool(r.verdict and r.verdict.passed) for r in rollouts) / len(rollouts),
        f"{role}/tokens": sum(r.num_tokens for r in rollouts) / len(rollouts),
    }
    if rewards:
        out[f"{role}/reward"] = statistics.fmean(rewards)
        out[f"{role}/reward_std"] = statistics.pstdev(rewards)
    entropies = [r.entropy for r in rollouts if r.entropy is not None]
    if entropies:
        out[f"{role}/entropy"] = statistics.fmean(entropies)
    rejected = sum(r.rejected is not None for r in rollouts)
    if rejected:
        out[f"{role}/rejected"] = rejected / len(rollouts)
    distinct = distinct_ngrams([r.completion for r in rollouts])
    if distinct is not None:
        out[f"{role}/distinct_2"] = distinct
    out[f"{role}/code"] = sum(bool(CODE.search(r.completion)) for r in rollouts) / len(rollouts)
    for label in dict.fromkeys(k for r in rollouts for k in r.reward_parts):
        parts = [r.reward_parts[label] for r in rollouts if r.reward_parts.get(label) is not None]
        if parts:
            out[f"{role}/reward:{label}"] = statistics.fmean(parts)
    return out


# A completion that is (or holds) a program: a fence, or a line that starts a Python definition or import. LSP-Zero's
# solver degenerates into answering in code (Kuba et al., 2025); the share per step shows it.
CODE = re.compile(r"```|^\s*(?:def |class |import |from \S+ import |print\()", re.MULTILINE)


def distinct_ngrams(texts: list[str], n: int = 2) -> float | None:
    """Distinct-n over a step's completions: distinct word n-grams / all word n-grams (1: no two alike; a collapse to
    one repeated query falls toward 0)."""
    grams = [tuple(words[i : i + n]) for text in texts for words in [text.split()] for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def step_line(step: int, steps: int, roles: list[Role], values: dict[str, Any]) -> str:
    parts = [f"step {step}/{steps}"]
    for role in roles:
        name = role.name
        if f"{name}/reward" in values:
            parts.append(f"{name} reward {values[f'{name}/reward']:.3f}±{values[f'{name}/reward_std']:.2f} "
                         f"len {values[f'{name}/tokens']:.0f}")  # fmt: skip
    for key in ("kl", "clip_fraction"):
        if key in values:
            parts.append(f"{key} {values[key]:.4f}")
    parts.append(f"gen {values['generate_seconds']:.1f}s upd {values['update_seconds']:.1f}s")
    return " · ".join(parts)
