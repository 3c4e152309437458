"""AZR's code executor: run a program that defines ``f`` on an input, in the sandbox, and report the output.

Absolute Zero's proposer writes a program and an input; a program is valid when it parses, imports nothing
banned, and gives the same output on every run (the determinism check). The output's ``repr`` is the gold
answer for the solver's roles. Record fields: ``completion`` (the program; the last fenced block if any),
``meta["input"]`` (the argument list as Python source, e.g. ``"[1, 2], 3"``), and the expected output's repr in
``meta["expected_output"]`` or ``answer``, when there is one to compare with.

An output is a plain value (``selfimprove.sandbox.plain``): the harness encodes it by exact type, so an object
with its own ``__eq__`` or ``__repr__``, a subclass of a builtin or a generator is an error, not an output. The
verifier decodes what the sandbox reports with the strict decoder and compares values here, on its own side;
the expected output never enters the sandbox.
"""

from __future__ import annotations

import ast
from typing import Any

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict
from selfimprove.sandbox import Job, Limits, Result, inline, run_many
from selfimprove.sandbox.plain import NotPlainText, decode, encode
from selfimprove.verifiers.code import check_pool, extract_code, why_unfinished

# Modules that reach outside the program (files, processes, network, the interpreter) or make it nondeterministic.
BANNED_IMPORTS = (
    "asyncio", "builtins", "concurrent", "ctypes", "datetime", "gc", "glob", "importlib", "inspect", "io",
    "logging", "marshal", "multiprocessing", "os", "pathlib", "pickle", "pty", "random", "resource", "secrets",
    "shutil", "signal", "socket", "subprocess", "sys", "tempfile", "threading", "time", "urllib", "uuid",
)  # fmt: skip
BANNED_CALLS = ("__import__", "breakpoint", "compile", "eval", "exec", "exit", "globals", "input", "open", "quit")


def validity_errors(
    program: str, arguments: str, entry: str, banned_imports: set[str], banned_calls: set[str], single_def: bool
) -> list[str]:
    """Why a proposed program (and its input) may not run, one message per problem; empty when valid."""
    try:
        tree = ast.parse(program)
    except SyntaxError as exc:
        return [f"program: syntax error: {exc.msg} (line {exc.lineno})"]
    try:
        call = ast.parse(f"f({arguments})", mode="eval")
    except SyntaxError as exc:
        return [f"input: syntax error: {exc.msg}"]
    errors = []
    for where, node in [("program", n) for n in ast.walk(tree)] + [("input", n) for n in ast.walk(call)]:
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        for module in modules:
            if module.split(".")[0] in banned_imports or module in banned_imports:
                errors.append(f"{where}: banned import {module!r} (line {node.lineno})")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in banned_calls:
            errors.append(f"{where}: banned call {node.func.id}() (line {node.lineno})")
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if entry not in defs:
        errors.append(f"program: no top-level function {entry!r}")
    if single_def and len(defs) != 1:
        errors.append(f"program: expected exactly one function definition, found {len(defs)}")
    return errors


def same_value(a: Any, b: Any) -> bool:
    """Two plain values are the same output: the same canonical text (so ``nan`` matches itself), or equal."""
    return encode(a) == encode(b) or a == b


def same_output(got: str, expected: str) -> bool:
    """Equal texts, or the same value when both texts are plain values (``[1,2]`` vs ``[1, 2]``). Both are read
    with the strict decoder: nothing in either text is evaluated."""
    if got.strip() == expected.strip():
        return True
    try:
        return same_value(decode(got.strip()), decode(expected.strip()))
    except NotPlainText:
        return False


def read_output(result: Result) -> tuple[str, Any]:
    """``("output", value)`` when the run reported exactly one output frame and exited 0, else ``(status, error)``."""
    text, newline, rest = result.report.partition(b"\n")
    frame = None
    if newline and not rest:
        try:
            frame = decode(text.decode("utf-8"))
        except (UnicodeDecodeError, NotPlainText):
            frame = None
    if result.status == "timeout":
        return "timeout", why_unfinished(result)
    if type(frame) is tuple and len(frame) == 2:
        if frame[0] == "output" and result.returncode == 0:
            return frame
        if frame[0] in ("syntax", "memory", "error") and type(frame[1]) is str:
            return frame
    if result.status == "memory":
        return "memory", why_unfinished(result)
    if result.report and result.returncode == 0:
        return "error", "the report is not one plain-value frame"
    return "error", why_unfinished(result)


class ExecutorVerifier:
    """Runs each program ``runs`` times on its input; passes when it is valid, deterministic and (when an
    expected output is given) its output matches. ``info``: status, output (a repr), errors (validity)."""

    def __init__(
        self,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        workers: int = 0,
        isolation: str = "auto",
        runs: int = 2,
        entry: str = "f",
        banned_imports: list[str] | None = None,
        banned_calls: list[str] | None = None,
        single_def: bool = False,
    ):
        if runs < 1:
            raise UserError(f"executor: runs must be at least 1, got {runs}")
        if not entry.isidentifier():
            raise UserError(f"executor: entry must be a Python name, got {entry!r}")
        check_pool(isolation, workers)
        self.limits = Limits(timeout=timeout, memory_mb=memory_mb)
        self.workers, self.isolation, self.runs, self.entry = workers, isolation, runs, entry
        self.banned_imports = set(BANNED_IMPORTS if banned_imports is None else banned_imports)
        self.banned_calls = set(BANNED_CALLS if banned_calls is None else banned_calls)
        self.single_def = single_def

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        jobs, where = [], []
        for i, rollout in enumerate(rollouts):
            program, arguments = extract_code(rollout.completion), rollout.meta.get("input")
            if not isinstance(arguments, str):
                verdicts[i] = self._verdict("invalid", None, ["rollout.meta has no 'input' (the arguments of f)"])
                continue
            errors = validity_errors(
                program, arguments, self.entry, self.banned_imports, self.banned_calls, self.single_def
            )
            if errors:
                verdicts[i] = self._verdict("syntax" if "syntax error" in errors[0] else "invalid", None, errors)
                continue
            call = f"run({program!r}, {self.entry!r}, {arguments!r})\n"
            jobs += [Job(call, preamble=inline.source("selfimprove.verifiers.executor_harness"))] * self.runs
            where.append(i)
        results = iter(run_many(jobs, self.limits, self.workers, self.isolation))
        for i in where:
            outputs, failure = [], None
            for kind, value in (read_output(next(results)) for _ in range(self.runs)):
                if kind == "output":
                    outputs.append(value)
                elif failure is None:
                    failure = (kind, value)
            if failure is not None:
                verdicts[i] = self._verdict(failure[0], None, [failure[1]])
            elif not all(same_value(out, outputs[0]) for out in outputs[1:]):
                shown = [encode(out)[:200] for out in outputs[:2]]
                verdicts[i] = self._verdict("nondeterministic", encode(outputs[0]), [f"runs disagree: {shown}"])
            else:
                verdicts[i] = self._judge(encode(outputs[0]), rollouts[i])
        return verdicts  # type: ignore[return-value]

    def _judge(self, output: str, rollout: Rollout) -> Verdict:
        expected = rollout.meta.get("expected_output", rollout.answer)
        if expected is None:
            return self._verdict("passed", output, [])
        if same_output(output, str(expected)):
            return self._verdict("passed", output, [], expected=str(expected))
        return self._verdict("failed", output, [], expected=str(expected))

    @staticmethod
    def _verdict(status: str, output: str | None, errors: list[str], **extra: str) -> Verdict:
        passed = status == "passed"
        return Verdict(float(passed), passed, {"status": status, "output": output, "errors": errors, **extra})
