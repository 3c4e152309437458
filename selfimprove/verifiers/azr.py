"""Absolute Zero's checks (Zhao et al., 2025, arXiv 2505.03335), as the reference code makes them (``paper`` branch:
``rewards/reward_managers.py``, ``rewards/code_reward.py``, ``utils/code_utils/checks.py``), on the sandboxed
``executor``.

``azr_proposal`` validates a proposer's task, read from the completion's answer (``parsers.azr.answer``; during the
seeding stage, ``from_answer: false``, from the whole completion, as the reference's ``_init_seed_dataset`` does):
the program is the first fenced block, holds exactly one ``def`` anywhere in it (nested ones count: the reference
counts every ``def`` line; ``single_def: false`` lifts this, as the reference's Llama script does) and the first is
renamed ``f``; the input is a list of literal arguments; the program imports nothing banned (the executor's list
plus the reference's ``hashlib``, ``hmac``, ``bcrypt``, ``calendar``, ``pebble``) and gives the same output twice
on each input (the determinism check). Validity does not depend on the format, as in the reference: a valid
program joins the buffer even when its completion breaks the ``<think>/<answer>`` frame, and ``info["format"]``
(``parsers.azr.well_formed``) tells the composite reward whether to give -1.

``azr_solution`` checks a solver's answer by the task type in the rollout's meta: deduction, the predicted output
equals the gold output as a value; abduction, the gold program on the predicted input (literal arguments only)
gives the gold output (any such input counts); induction, the written program gives the output of every hidden
pair. With ``require_format`` (the default, the solver's reward and the evaluation) a completion that breaks the
frame fails, as the reference scores it 0 before checking; the learnability samples use ``require_format: false``,
as the reference estimates a proposal's solve rate from the extracted answers alone.

Everything model-written runs in the sandbox, through the executor, whose outputs are plain values compared on this
side (docs/sandbox.md); nothing expected enters the sandbox.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from selfimprove.errors import UserError
from selfimprove.parsers.azr import TASK_TYPES, answer, parse_proposal, parse_solution, well_formed
from selfimprove.records import Rollout, Verdict
from selfimprove.verifiers.arguments import ArgumentError, parse_arguments
from selfimprove.verifiers.executor import BANNED_IMPORTS, ExecutorVerifier, same_output

# The reference's banned_words (configs/azr_ppo_trainer.yaml) that the executor's own list lacks. Its dotted entries
# (os.sys, os.path, sys.exit, os.environ) never match there (module names are split on dots); os and sys are banned
# here anyway.
AZR_BANNED_IMPORTS = ("hashlib", "hmac", "bcrypt", "calendar", "pebble")


def _executor(timeout: float, memory_mb: int, workers: int, isolation: str) -> ExecutorVerifier:
    return ExecutorVerifier(timeout=timeout, memory_mb=memory_mb, workers=workers, isolation=isolation, runs=2,
                            banned_imports=[*BANNED_IMPORTS, *AZR_BANNED_IMPORTS])  # fmt: skip


def _run(program: str, arguments: str, expected: str | None = None) -> Rollout:
    meta = {"input": arguments} | ({"expected_output": expected} if expected is not None else {})
    return Rollout("run", "executor", "run", [], f"```python\n{program}\n```", meta=meta)


def complexity(program: str) -> int:
    """Syntax-tree nodes of a program: a rough size of what a proposer wrote."""
    return sum(1 for _ in ast.walk(ast.parse(program)))


def arguments_error(text: str) -> str | None:
    """Why ``text`` is not a list of literal arguments of ``f`` (``1, [2], k='x'``), or None: read by the project's
    one argument parser, never run, so an "input" such as ``0) if 0 else (7`` is not an input."""
    try:
        parse_arguments(text)
    except ArgumentError as exc:
        return f"input: {exc}"[:500]
    return None


def one_function(program: str, single_def: bool) -> str | None:
    """The program with its first ``def`` renamed ``f`` (the reference's ``f_replace_location: not_first``), or
    None when it has no ``def`` or, under ``single_def``, more than one (nested ones included: the reference counts
    every ``def`` line). A program that does not parse is returned as is, for the executor to report."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return program
    defs = sorted((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)),
                  key=lambda n: (n.lineno, n.col_offset))  # fmt: skip
    if not defs or (single_def and len(defs) > 1):
        return None
    if defs[0].name == "f":
        return program
    lines = program.split("\n")
    line = lines[defs[0].lineno - 1]
    head = re.compile(rf"def\s+{re.escape(defs[0].name)}\s*\(")
    lines[defs[0].lineno - 1] = line[: defs[0].col_offset] + head.sub("def f(", line[defs[0].col_offset :], count=1)
    return "\n".join(lines)


class AZRProposal:
    """A proposer's task of ``task_type``, parsed and run: ``info`` has ``format``, ``status``, the program, its
    input(s) and output(s) (induction: ``pairs`` and the ``message``; the program is the problem's
    ``meta.program``), ``length`` and ``complexity``."""

    def __init__(
        self,
        task_type: str,
        inputs: int = 10,
        single_def: bool = True,
        from_answer: bool = True,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        workers: int = 0,
        isolation: str = "auto",
    ):
        if task_type not in TASK_TYPES:
            raise UserError(f"azr_proposal: task_type is one of {', '.join(TASK_TYPES)}, got {task_type!r}")
        if inputs < 2:
            raise UserError(f"azr_proposal: inputs must be at least 2, got {inputs}")
        self.task_type, self.inputs, self.single_def, self.from_answer = task_type, inputs, single_def, from_answer
        self.executor = _executor(timeout, memory_mb, workers, isolation)

    def parse(self, rollout: Rollout) -> dict[str, Any] | str:
        """The proposal's program and input(s), checked before anything runs; else why it is invalid."""
        text = answer(rollout.completion) if self.from_answer else rollout.completion
        if text is None:
            return "no <answer>"
        parsed = parse_proposal(text, self.task_type, self.inputs)
        if isinstance(parsed, str):
            return parsed
        if self.task_type == "induction":
            parsed["program"] = rollout.meta.get("program", "")
        else:
            program = one_function(parsed["program"], self.single_def)
            if program is None:
                return "the program must define exactly one function" if self.single_def else "no function"
            parsed["program"] = program
        for arguments in parsed["inputs"] if self.task_type == "induction" else [parsed["input"]]:
            error = arguments_error(arguments)
            if error:
                return error
        return parsed

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        runs: list[Rollout] = []
        plans: list[tuple[int, dict[str, Any], slice]] = []
        for i, rollout in enumerate(rollouts):
            form = well_formed(rollout.completion)
            parsed = self.parse(rollout)
            if isinstance(parsed, str):
                verdicts[i] = Verdict(0.0, False, {"format": form, "status": "unparsed", "error": parsed})
                continue
            inputs = parsed["inputs"] if self.task_type == "induction" else [parsed["input"]]
            plans.append((i, parsed, slice(len(runs), len(runs) + len(inputs))))
            runs += [_run(parsed["program"], arguments) for arguments in inputs]
        results = self.executor.verify(runs) if runs else []
        for i, parsed, share in plans:
            form = well_formed(rollouts[i].completion)
            checks = results[share]
            bad = next((v for v in checks if not v.passed), None)
            if bad is not None:
                info = {"format": form, "status": bad.info["status"], "error": "; ".join(bad.info["errors"])[:2000]}
                verdicts[i] = Verdict(0.0, False, info)
                continue
            info = {"format": form, "status": "valid", "program": parsed["program"],
                    "length": len(parsed["program"]), "complexity": complexity(parsed["program"])}  # fmt: skip
            if self.task_type == "induction":
                outputs = [v.info["output"] for v in checks]
                info |= {"pairs": [[a, o] for a, o in zip(parsed["inputs"], outputs, strict=True)],
                         "message": parsed["message"]}  # fmt: skip
            else:
                info |= {"input": parsed["input"], "output": checks[0].info["output"]}
            verdicts[i] = Verdict(1.0, True, info)
        return verdicts  # type: ignore[return-value]


class AZRSolution:
    """A solver's answer to a task of the type in ``meta.task_type`` (the fields ``azr_task`` made), checked;
    ``info["format"]`` is the reference's format rule, and with ``require_format`` a broken frame fails.
    ``open_block`` reads an answer block the completion ends inside as closed (``parsers.azr.parse_solution``)."""

    def __init__(
        self,
        require_format: bool = True,
        open_block: bool = False,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        workers: int = 0,
        isolation: str = "auto",
    ):
        self.require_format, self.open_block = require_format, open_block
        self.executor = _executor(timeout, memory_mb, workers, isolation)

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        runs: list[Rollout] = []
        plans: list[tuple[int, slice, bool]] = []
        for i, rollout in enumerate(rollouts):
            task_type, meta = rollout.meta.get("task_type"), rollout.meta
            if task_type not in TASK_TYPES:
                verdicts[i] = Verdict(float("nan"), False, {"error": "rollout.meta has no AZR task_type"})
                continue
            form = well_formed(rollout.completion)
            solution = parse_solution(rollout.completion, task_type, self.open_block)
            if solution is None or (self.require_format and not form):
                status = "format" if self.require_format and not form else "unparsed"
                verdicts[i] = Verdict(0.0, False, {"format": form, "status": status})
            elif task_type == "deduction":
                passed = same_output(solution, meta["output"])
                verdicts[i] = Verdict(float(passed), passed, {"format": form, "status": "checked",
                                                               "predicted": solution[:2000]})  # fmt: skip
            elif task_type == "abduction" and (error := arguments_error(solution)):
                verdicts[i] = Verdict(0.0, False, {"format": form, "status": "checked", "error": error})
            else:
                pairs = [(solution, meta["output"])] if task_type == "abduction" else meta["hidden"]
                program = meta["program"] if task_type == "abduction" else solution
                plans.append((i, slice(len(runs), len(runs) + len(pairs)), form))
                runs += [_run(program, arguments, output) for arguments, output in pairs]
        results = self.executor.verify(runs) if runs else []
        for i, share, form in plans:
            checks = results[share]
            passed = all(v.passed for v in checks)
            failed = next((v for v in checks if not v.passed), None)
            info = {"format": form, "status": "checked", "passed_pairs": sum(v.passed for v in checks)}
            if failed is not None:
                info["error"] = f"{failed.info['status']}: {'; '.join(failed.info['errors'])}"[:2000]
            verdicts[i] = Verdict(float(passed), passed, info)
        return verdicts  # type: ignore[return-value]
