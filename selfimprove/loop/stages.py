"""The stages of an iteration or a step (draw, generate, verify, select), each reading and writing the run
directory.

Under several processes (``selfimprove.loop.distributed``) every process calls each stage: generation and
verification are shared out and gathered, what needs the whole stage runs on the main process and is sent to the
others, and only the main process reads and writes the run directory, so the others never need to see it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from selfimprove.capabilities import PolicyJudge
from selfimprove.generators import Generator, Request
from selfimprove.loop.distributed import Processes, accepts_shard
from selfimprove.models import Policy
from selfimprove.models.live import LivePolicy
from selfimprove.progress import track
from selfimprove.records import Example, Job, Problem, Rollout, Verdict
from selfimprove.rundir import RunDir
from selfimprove.sources import Source, StepContext
from selfimprove.verifiers import Verifier, verify_safely


def stage_seed(seed: int, *parts: Any) -> int:
    import hashlib

    return int(hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()[:8], 16)


@dataclass
class Stages:
    """What the stages of a run share, and the stages themselves: the run directory, this process among the run's
    processes (``loop.distributed``), the run's seed (each stage draws its own from it, ``seed_for``), whether
    progress is shown, and whether the run is online (its sampled tokens are recorded for the update, which scores
    exactly them, and its progress bars vanish when done). Every process calls every stage; each stage shares out
    its work, gathers it, and has the main process alone read and write the run directory."""

    run: RunDir
    seed: int
    procs: Processes = field(default_factory=Processes)
    show_progress: bool = True
    online: bool = False

    def seed_for(self, *parts: Any) -> int:
        return stage_seed(self.seed, *parts)

    def recorded(self, name: str) -> list[Rollout] | None:
        """The stage's records when its file exists (read on the main process, sent to the others)."""
        records = self.procs.on_main(lambda: self.run.read_jsonl(name) if self.run.exists(name) else None)
        return None if records is None else [Rollout.from_json(r) for r in records]

    def draw(self, source: Source, ctx: StepContext) -> list[Problem]:
        """A role's problems from its source, drawn on the main process (which alone holds the buffers) and sent to
        the others."""
        return self.procs.on_main(lambda: source.problems(ctx))

    def generate(
        self,
        name: str,
        generator: Generator,
        policy: Policy | LivePolicy,
        jobs: list[Job],
        role: str,
        n: int,
        seed: int,
    ) -> list[Rollout]:
        """Sample ``n`` completions per (problem, prompt, train_prompt) job; resumable by batch. Each process
        generates its share of the batches; after every round of batches the shares are gathered and the main
        process appends them to the partial file."""
        finished = self.recorded(name)
        if finished is not None:
            return finished
        run, procs = self.run, self.procs
        by_id = {}
        requests = []
        for problem, prompt, train_prompt in jobs:
            for k in range(n):
                rid = f"{role}/{problem.id}/{k}"
                by_id[rid] = (problem, prompt, train_prompt)
                requests.append(Request(rid, prompt))
        if not requests:  # an earlier role passed nothing on: no generator call (every process sees the same jobs)
            if procs.is_main:
                run.finish_partial(name, [])
            return []
        done = procs.on_main(lambda: {r["id"]: r for r in run.read_partial(name)})

        def record(out: Any) -> dict[str, Any]:
            problem, prompt, train_prompt = by_id[out.id]
            rollout = Rollout(
                out.id, role, problem.id, prompt, out.text, problem.answer, train_prompt, out.num_tokens,
                meta=problem.meta, entropy=out.entropy, completion_ids=out.token_ids if self.online else None,
                sampler_logps=out.logprobs if self.online else None,
            )  # fmt: skip
            return rollout.to_json()

        def collect(fresh: list[dict[str, Any]]) -> None:
            procs.generated += len(fresh)
            fresh = procs.gather(fresh)
            if procs.is_main:
                run.append_partial(name, fresh)
            done.update((r["id"], r) for r in fresh)

        shared = procs.world > 1 and accepts_shard(generator)
        with track(f"{name}", len(requests), self.show_progress and procs.is_main, self.online) as tracker:
            if shared:
                pending: list[dict[str, Any]] = []
                batches = generator.generate(
                    policy, requests, seed=seed, done=set(done), tracker=tracker, shard=(procs.rank, procs.world)
                )
                count = 0
                for count, batch in enumerate(batches, start=1):
                    pending += [record(out) for out in batch]
                    if count % procs.world == 0:  # a round: every process has had one batch
                        collect(pending)
                        pending = []
                if count % procs.world:
                    collect(pending)
            elif procs.is_main:  # one process (or a generator that cannot share): batch by batch, as it comes
                for batch in generator.generate(policy, requests, seed=seed, done=set(done), tracker=tracker):
                    fresh = [record(out) for out in batch]
                    procs.generated += len(fresh)
                    run.append_partial(name, fresh)
                    done.update((r["id"], r) for r in fresh)
        if not shared:
            done = procs.share(done)
        records = [done[r.id] for r in requests]
        if procs.is_main:
            run.finish_partial(name, records)
        return [Rollout.from_json(r) for r in records]

    def verify(
        self,
        name: str,
        verifiers: list[tuple[str, Verifier]],
        rollouts: list[Rollout],
        policy: Policy | LivePolicy | None = None,
    ) -> list[Rollout]:
        """Every verifier's verdicts: the first one's in ``Rollout.verdict``, the others' in ``Rollout.verdicts``
        under their labels; written as one file. A judge that scores with the current policy (``PolicyJudge``) is
        given ``policy``, the one that generated the rollouts. Each process verifies a contiguous share."""
        finished = self.recorded(name)
        if finished is not None:
            return finished
        procs = self.procs
        for _, verifier in verifiers:
            if policy is not None and isinstance(verifier, PolicyJudge):
                verifier.use_policy(policy)
        mine = rollouts[procs.span(len(rollouts))]
        verdicts = [[v.__dict__ for v in verify_safely(verifier, mine)] for _, verifier in verifiers]
        shares = procs.gather([verdicts])  # one entry per process, in rank order
        for k, (label, _) in enumerate(verifiers):
            everyone = [Verdict(**v) for share in shares for v in share[k]]
            for rollout, verdict in zip(rollouts, everyone, strict=True):
                if k == 0:
                    rollout.verdict = verdict
                else:
                    rollout.verdicts[label] = verdict
        if procs.is_main:
            self.run.write_jsonl(name, [r.to_json() for r in rollouts])
        return rollouts

    def select(self, name: str, selector: Any, rollouts: list[Rollout]) -> list[Example]:
        """The selector's examples, chosen on the main process (and sent to the others)."""

        def choose() -> list[dict[str, Any]]:
            if self.run.exists(name):
                return self.run.read_jsonl(name)
            examples = [e.__dict__ for e in selector.select(rollouts)]
            self.run.write_jsonl(name, examples)
            return examples

        return [Example(**e) for e in self.procs.on_main(choose)]


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
