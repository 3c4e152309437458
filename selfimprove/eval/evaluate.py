"""The evaluation routine shared by ``selfimprove eval`` and the loop's held-out evaluation.

Per task: one greedy completion per problem (``accuracy``) and, when ``n > 1``, ``n`` more completions at the
sampling temperature, from which pass@k and maj@k are computed for every ``k <= n``. Both passes go through the
loop's stages, so they are resumable by batch and land in the run directory as JSONL:
``<prefix>/<task>.jsonl`` (greedy) and ``<prefix>/<task>.samples.jsonl`` (the n samples), each record verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selfimprove.config.schema import Component
from selfimprove.eval.metrics import maj_at_k, pass_at_k
from selfimprove.loop import stages
from selfimprove.loop.distributed import SINGLE, Processes
from selfimprove.models import Policy
from selfimprove.models.live import LivePolicy
from selfimprove.records import Messages, Problem, Rollout
from selfimprove.rundir import RunDir
from selfimprove.verifiers import Verifier


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


def evaluate_task(
    run: RunDir,
    prefix: str,
    task: str,
    problems: list[Problem],
    prompts: list[Messages],
    generator: Component,
    sampling: Sampling,
    verifier: Verifier,
    policy: Policy | LivePolicy,
    seed: int,
    show_progress: bool = True,
    procs: Processes = SINGLE,
) -> tuple[dict[str, float], list[Rollout], list[Rollout]]:
    """Evaluate ``policy`` on one task; returns the metrics, the greedy rollouts and the samples. Under several
    processes each generates and verifies its share."""
    jobs = [(p, prompt, None) for p, prompt in zip(problems, prompts, strict=True)]
    greedy = stages.generate(
        run, f"{prefix}/{task}.rollouts.jsonl", generator.build(**sampling.generation), policy, jobs, "eval", 1,
        seed, show_progress, procs=procs,
    )  # fmt: skip
    greedy = stages.verify(run, f"{prefix}/{task}.jsonl", verifier, greedy, procs)
    samples: list[Rollout] = []
    if sampling.n > 1:
        sampler = generator.build(**{**sampling.generation, "temperature": sampling.temperature})
        samples = stages.generate(
            run, f"{prefix}/{task}.samples.rollouts.jsonl", sampler, policy, jobs, "sample", sampling.n,
            stages.stage_seed(seed, "samples"), show_progress, procs=procs,
        )  # fmt: skip
        samples = stages.verify(run, f"{prefix}/{task}.samples.jsonl", verifier, samples, procs)
    return task_metrics(greedy, samples, sampling.ks, sampling.majority), greedy, samples
