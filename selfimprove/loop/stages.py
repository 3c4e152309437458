"""The stages of an iteration, each reading and writing the run directory."""

from __future__ import annotations

import time
from typing import Any

from selfimprove.generators import Generator, Request
from selfimprove.loop.rundir import RunDir
from selfimprove.models import Policy
from selfimprove.progress import track
from selfimprove.records import Example, Messages, Problem, Rollout
from selfimprove.verifiers import Verifier, verify_safely


def stage_seed(seed: int, *parts: Any) -> int:
    import hashlib

    return int(hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()[:8], 16)


def generate(
    run: RunDir,
    name: str,
    generator: Generator,
    policy: Policy,
    jobs: list[tuple[Problem, Messages, Messages | None]],
    role: str,
    n: int,
    seed: int,
    show_progress: bool = True,
    keep_token_ids: bool = False,
    transient: bool = False,
) -> list[Rollout]:
    """Sample ``n`` completions per (problem, prompt, train_prompt) job; resumable by batch. ``keep_token_ids``
    records the sampled tokens (online updates score exactly them)."""
    if run.exists(name):
        return [Rollout.from_json(r) for r in run.read_jsonl(name)]
    by_id = {}
    requests = []
    for problem, prompt, train_prompt in jobs:
        for k in range(n):
            rid = f"{role}/{problem.id}/{k}"
            by_id[rid] = (problem, prompt, train_prompt)
            requests.append(Request(rid, prompt))
    done = {r["id"]: r for r in run.read_partial(name)}
    with track(f"{name}", len(requests), show_progress, transient) as tracker:
        for batch in generator.generate(policy, requests, seed=seed, done=set(done), tracker=tracker):
            fresh = []
            for out in batch:
                problem, prompt, train_prompt = by_id[out.id]
                rollout = Rollout(
                    out.id, role, problem.id, prompt, out.text, problem.answer, train_prompt, out.num_tokens,
                    meta=problem.meta, entropy=out.entropy, completion_ids=out.token_ids if keep_token_ids else None,
                )  # fmt: skip
                fresh.append(rollout.to_json())
            run.append_partial(name, fresh)
            done.update((r["id"], r) for r in fresh)
    records = [done[r.id] for r in requests]
    run.finish_partial(name, records)
    return [Rollout.from_json(r) for r in records]


def verify(run: RunDir, name: str, verifier: Verifier, rollouts: list[Rollout]) -> list[Rollout]:
    """Attach a verdict to every rollout; written as one file."""
    if run.exists(name):
        return [Rollout.from_json(r) for r in run.read_jsonl(name)]
    for rollout, verdict in zip(rollouts, verify_safely(verifier, rollouts), strict=True):
        rollout.verdict = verdict
    run.write_jsonl(name, [r.to_json() for r in rollouts])
    return rollouts


def verify_all(run: RunDir, name: str, verifiers: list[tuple[str, Verifier]], rollouts: list[Rollout]) -> list[Rollout]:
    """Every verifier's verdicts: the first one's in ``Rollout.verdict``, the others' in ``Rollout.verdicts`` under
    their labels; written as one file."""
    if run.exists(name):
        return [Rollout.from_json(r) for r in run.read_jsonl(name)]
    for k, (label, verifier) in enumerate(verifiers):
        for rollout, verdict in zip(rollouts, verify_safely(verifier, rollouts), strict=True):
            if k == 0:
                rollout.verdict = verdict
            else:
                rollout.verdicts[label] = verdict
    run.write_jsonl(name, [r.to_json() for r in rollouts])
    return rollouts


def select(run: RunDir, name: str, selector: Any, rollouts: list[Rollout]) -> list[Example]:
    if run.exists(name):
        return [Example(**r) for r in run.read_jsonl(name)]
    examples = selector.select(rollouts)
    run.write_jsonl(name, [e.__dict__ for e in examples])
    return examples


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
