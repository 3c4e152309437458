"""Absolute Zero's checks (Zhao et al., 2025, arXiv 2505.03335), on the sandboxed ``executor``.

``azr_proposal`` validates a proposer's task: the completion is well formed, the program parses, imports nothing
banned, defines ``f`` (and, by default, only ``f``), and gives the same output twice on each input (the
determinism check); the outputs it computes are the task's gold answers (``info``). ``azr_solution`` checks a
solver's answer by the task type in the rollout's meta: deduction, the predicted output equals the gold output as a
value; abduction, the gold program on the predicted input gives the gold output (any such input counts); induction,
the written program gives the output of every hidden pair. ``info["format"]`` says whether the completion was well
formed, which AZR's composite reward needs (-1 for a format or validity failure, -0.5 for a well-formed wrong
answer).

Everything model-written runs in the sandbox, through the executor, whose outputs are plain values compared on this
side (docs/sandbox.md); nothing expected enters the sandbox.
"""

from __future__ import annotations

import ast
from typing import Any

from selfimprove.errors import UserError
from selfimprove.parsers.azr import TASK_TYPES, parse_proposal, parse_solution
from selfimprove.records import Rollout, Verdict
from selfimprove.verifiers.executor import ExecutorVerifier, same_output


def _executor(timeout: float, memory_mb: int, workers: int, isolation: str, single_def: bool) -> ExecutorVerifier:
    return ExecutorVerifier(timeout=timeout, memory_mb=memory_mb, workers=workers, isolation=isolation, runs=2,
                            single_def=single_def)  # fmt: skip


def _run(executor: ExecutorVerifier, program: str, arguments: str, expected: str | None = None) -> Rollout:
    meta = {"input": arguments} | ({"expected_output": expected} if expected is not None else {})
    return Rollout("run", "executor", "run", [], f"```python\n{program}\n```", meta=meta)


def complexity(program: str) -> int:
    """Syntax-tree nodes of a program: a rough size of what a proposer wrote."""
    return sum(1 for _ in ast.walk(ast.parse(program)))


class AZRProposal:
    """A proposer's task of ``task_type``, parsed and run: ``info`` has ``format``, ``status``, the program, its
    input(s) and output(s) (induction: ``pairs`` and the ``message``; the program is the problem's
    ``meta.program``), ``length`` and ``complexity``."""

    def __init__(
        self,
        task_type: str,
        inputs: int = 10,
        single_def: bool = True,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        workers: int = 0,
        isolation: str = "auto",
    ):
        if task_type not in TASK_TYPES:
            raise UserError(f"azr_proposal: task_type is one of {', '.join(TASK_TYPES)}, got {task_type!r}")
        if inputs < 2:
            raise UserError(f"azr_proposal: inputs must be at least 2, got {inputs}")
        self.task_type, self.inputs = task_type, inputs
        self.executor = _executor(timeout, memory_mb, workers, isolation, single_def)

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        runs: list[Rollout] = []
        plans: list[tuple[int, dict[str, Any], slice]] = []
        for i, rollout in enumerate(rollouts):
            parsed = parse_proposal(rollout.completion, self.task_type, self.inputs)
            if isinstance(parsed, str):
                verdicts[i] = Verdict(0.0, False, {"format": False, "status": "format", "error": parsed})
                continue
            if self.task_type == "induction":
                parsed["program"] = rollout.meta.get("program", "")
            inputs = parsed["inputs"] if self.task_type == "induction" else [parsed["input"]]
            plans.append((i, parsed, slice(len(runs), len(runs) + len(inputs))))
            runs += [_run(self.executor, parsed["program"], arguments) for arguments in inputs]
        results = self.executor.verify(runs) if runs else []
        for i, parsed, share in plans:
            checks = results[share]
            bad = next((v for v in checks if not v.passed), None)
            if bad is not None:
                info = {"format": True, "status": bad.info["status"], "error": "; ".join(bad.info["errors"])[:2000]}
                verdicts[i] = Verdict(0.0, False, info)
                continue
            info = {"format": True, "status": "valid", "program": parsed["program"],
                    "length": len(parsed["program"]), "complexity": complexity(parsed["program"])}  # fmt: skip
            if self.task_type == "induction":
                outputs = [v.info["output"] for v in checks]
                if len({(a, o) for a, o in zip(parsed["inputs"], outputs, strict=True)}) < len(outputs):
                    verdicts[i] = Verdict(0.0, False, {"format": True, "status": "invalid",
                                                       "error": "the inputs repeat"})  # fmt: skip
                    continue
                info |= {"pairs": [[a, o] for a, o in zip(parsed["inputs"], outputs, strict=True)],
                         "message": parsed["message"]}  # fmt: skip
            else:
                info |= {"input": parsed["input"], "output": checks[0].info["output"]}
            verdicts[i] = Verdict(1.0, True, info)
        return verdicts  # type: ignore[return-value]


class AZRSolution:
    """A solver's answer to a task of the type in ``meta.task_type`` (the fields ``azr_task`` made), checked."""

    def __init__(
        self,
        single_def: bool = False,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        workers: int = 0,
        isolation: str = "auto",
    ):
        self.executor = _executor(timeout, memory_mb, workers, isolation, single_def)

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        runs: list[Rollout] = []
        plans: list[tuple[int, slice]] = []
        for i, rollout in enumerate(rollouts):
            task_type, meta = rollout.meta.get("task_type"), rollout.meta
            if task_type not in TASK_TYPES:
                verdicts[i] = Verdict(float("nan"), False, {"error": "rollout.meta has no AZR task_type"})
                continue
            solution = parse_solution(rollout.completion, task_type)
            if solution is None:
                verdicts[i] = Verdict(0.0, False, {"format": False, "status": "format"})
            elif task_type == "deduction":
                passed = same_output(solution, meta["output"])
                verdicts[i] = Verdict(float(passed), passed, {"format": True, "status": "checked",
                                                               "predicted": solution[:2000]})  # fmt: skip
            else:
                pairs = [(solution, meta["output"])] if task_type == "abduction" else meta["hidden"]
                program = meta["program"] if task_type == "abduction" else solution
                plans.append((i, slice(len(runs), len(runs) + len(pairs))))
                runs += [_run(self.executor, program, arguments, output) for arguments, output in pairs]
        results = self.executor.verify(runs) if runs else []
        for i, share in plans:
            checks = results[share]
            passed = all(v.passed for v in checks)
            failed = next((v for v in checks if not v.passed), None)
            info = {"format": True, "status": "checked", "passed_pairs": sum(v.passed for v in checks)}
            if failed is not None:
                info["error"] = f"{failed.info['status']}: {'; '.join(failed.info['errors'])}"[:2000]
            verdicts[i] = Verdict(float(passed), passed, info)
        return verdicts  # type: ignore[return-value]
