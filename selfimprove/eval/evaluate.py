"""Held-out evaluation: the one routine behind the loop's evaluation, ``selfimprove eval`` and ``analyze passk``.

Per task: one greedy completion per problem (``accuracy``) and, when ``n > 1``, ``n`` more completions at the
sampling temperature, from which pass@k and maj@k are computed for every ``k <= n``. Both passes go through the
engine's stages, which the caller hands over (``Stages``; ``selfimprove.loop.heldout`` runs evaluation in a run and
outside one): they are resumable by batch and land in the run directory as JSONL, ``<prefix>/<task>.jsonl``
(greedy) and ``<prefix>/<task>.samples.jsonl`` (the n samples), each record verified.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from selfimprove.config.schema import Component
from selfimprove.eval.metrics import maj_at_k, pass_at_k
from selfimprove.generators import Generator
from selfimprove.records import Job, Messages, Problem, Rollout
from selfimprove.verifiers import Verifier


class Stages(Protocol):
    """What evaluation needs of the engine: generation and verification that write one run directory's files and
    resume from them (``selfimprove.loop.stages`` on one run, policy and set of processes)."""

    def generate(self, name: str, generator: Generator, jobs: list[Job], role: str, n: int, seed: int) -> list[Rollout]:
        """``n`` completions of every job, in the file ``name`` (resumed from it when a run was killed)."""
        ...

    def verify(self, name: str, verifier: Verifier, rollouts: list[Rollout]) -> list[Rollout]:
        """The rollouts with their verdicts, in the file ``name``."""
        ...

    def seed(self, seed: int, *parts: Any) -> int:
        """A stage's own seed, derived from ``seed`` and the stage's name."""
        ...


@dataclass
class EvalTask:
    """One task as it is evaluated: its problems, each asked as ``prompts[i]``, scored by ``verifier``."""

    tag: str
    problems: list[Problem]
    prompts: list[Messages]
    verifier: Verifier


@dataclass
class TaskResult:
    metrics: dict[str, float]
    greedy: list[Rollout]
    samples: list[Rollout]

    @property
    def problems(self) -> list[dict[str, Any]]:
        return problem_records(self.greedy, self.samples)


@dataclass
class Sampling:
    """How a task is evaluated: ``generation`` for the greedy pass, ``n`` samples at ``temperature`` for pass@k."""

    generation: dict[str, Any]
    n: int = 1
    k: Sequence[int] = ()
    temperature: float = 1.0
    majority: bool = True  # maj@k too; its exact count grows fast with n, so pass@k curves up to 256 skip it

    @property
    def ks(self) -> list[int]:
        """The k to report: the given ones, or 1 and n."""
        return sorted(set(self.k)) if self.k else sorted({1, self.n})


def mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def passed(rollout: Rollout) -> bool:
    return bool(rollout.verdict and rollout.verdict.passed)


def vote(rollout: Rollout) -> str | None:
    """The final answer a sample votes for in maj@k: what the verifier parsed from it (numeric, math)."""
    parsed = rollout.verdict.info.get("parsed") if rollout.verdict else None
    return None if parsed is None else str(parsed)


def problem_records(greedy: list[Rollout], samples: list[Rollout]) -> list[dict[str, Any]]:
    """One record per problem: the greedy completion and verdict, and the samples with ``n`` and ``c``."""
    by_problem: dict[str, list[Rollout]] = {}
    for r in samples:
        by_problem.setdefault(r.problem_id, []).append(r)
    records = []
    for g in greedy:
        drawn = by_problem.get(g.problem_id, [])
        records.append({
            "id": g.problem_id,
            "answer": g.answer,
            "n": len(drawn),
            "c": sum(map(passed, drawn)),
            "greedy_correct": passed(g),
            "greedy": {"completion": g.completion, "num_tokens": g.num_tokens, "entropy": g.entropy},
            "samples": [
                {"completion": r.completion, "passed": passed(r), "vote": vote(r), "num_tokens": r.num_tokens}
                for r in drawn
            ],
        })  # fmt: skip
    return records


def task_metrics(
    greedy: list[Rollout], samples: list[Rollout], ks: Sequence[int], majority: bool = True
) -> dict[str, float]:
    """Greedy accuracy and response statistics; pass@k and maj@k averaged over problems when there are samples."""
    correct = sum(map(passed, greedy))
    metrics: dict[str, Any] = {
        "accuracy": correct / max(len(greedy), 1),
        "correct": correct,
        "problems": len(greedy),
        "mean_response_tokens": sum(r.num_tokens for r in greedy) / max(len(greedy), 1),
    }
    entropy = mean([r.entropy for r in greedy])
    if entropy is not None:
        metrics["entropy"] = entropy
    if not samples:
        return metrics
    records = problem_records(greedy, samples)
    has_votes = majority and any(s["vote"] is not None for p in records for s in p["samples"])
    for k in ks:
        metrics[f"pass@{k}"] = sum(pass_at_k(p["n"], p["c"], k) for p in records) / len(records)
        if k > 1 and has_votes:  # maj@1 is pass@1; without parsed answers (code) there is nothing to vote on
            metrics[f"maj@{k}"] = sum(
                maj_at_k([s["vote"] for s in p["samples"]], [s["passed"] for s in p["samples"]], k) for p in records
            ) / len(records)
    metrics["samples"] = len(samples)
    metrics["sample_mean_response_tokens"] = sum(r.num_tokens for r in samples) / len(samples)
    sample_entropy = mean([r.entropy for r in samples])
    if sample_entropy is not None:
        metrics["sample_entropy"] = sample_entropy
    return metrics


def metric_columns(metrics: dict[str, Any]) -> list[str]:
    """The headline metrics of one task's results, in reading order: accuracy, pass@k by k, maj@k by k."""
    keys = [key for key in metrics if key.startswith(("pass@", "maj@"))]
    return ["accuracy", *sorted(keys, key=lambda key: (key.startswith("maj"), int(key.split("@")[1])))]


def evaluate(
    stages: Stages,
    prefix: str,
    tasks: list[EvalTask],
    generator: Component,
    sampling: Sampling,
    seed: int,
    log: Callable[[str, float, dict[str, float]], None] | None = None,
) -> dict[str, TaskResult]:
    """Evaluate the stages' policy on every task, its files under ``prefix``. ``log(stage, seconds, metrics)``
    records each task."""
    results = {}
    for task in tasks:
        start = time.perf_counter()
        task_seed = stages.seed(seed, "eval", task.tag)
        jobs = [(p, prompt, None) for p, prompt in zip(task.problems, task.prompts, strict=True)]
        greedy = stages.generate(
            f"{prefix}/{task.tag}.rollouts.jsonl", generator.build(**sampling.generation), jobs, "eval", 1, task_seed
        )
        greedy = stages.verify(f"{prefix}/{task.tag}.jsonl", task.verifier, greedy)
        samples: list[Rollout] = []
        if sampling.n > 1:
            sampler = generator.build(**{**sampling.generation, "temperature": sampling.temperature})
            samples = stages.generate(
                f"{prefix}/{task.tag}.samples.rollouts.jsonl", sampler, jobs, "sample", sampling.n,
                stages.seed(task_seed, "samples"),
            )  # fmt: skip
            samples = stages.verify(f"{prefix}/{task.tag}.samples.jsonl", task.verifier, samples)
        results[task.tag] = TaskResult(task_metrics(greedy, samples, sampling.ks, sampling.majority), greedy, samples)
        if log:
            log(f"eval:{task.tag}", time.perf_counter() - start, results[task.tag].metrics)
    return results
