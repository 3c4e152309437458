"""AZR's code executor: run a program that defines ``f`` on an input, in the sandbox, and report the output.

Absolute Zero's proposer writes a program and an input; a program is valid when it parses, imports nothing
banned, and gives the same output on every run (the determinism check). The output's ``repr`` is the gold
answer for the solver's roles. Record fields: ``completion`` (the program; the last fenced block if any),
``meta["input"]`` (the argument list, literals only, e.g. ``"[1, 2], k=3"``: parsed here into values by
``selfimprove.verifiers.arguments`` and never run, so an input cannot be code), and the expected output's repr
in ``meta["expected_output"]`` or ``answer``, when there is one to compare with (``nan``, ``[inf]`` as Python
prints them).

An output is a plain value (``selfimprove.sandbox.plain``): the harness encodes it by exact type, so an object
with its own ``__eq__`` or ``__repr__``, a subclass of a builtin or a generator is an error, not an output. The
verifier checks the size of what the sandbox reports, decodes it with the strict decoder and compares values
here, on its own side; the expected output never enters the sandbox.
"""

from __future__ import annotations

import ast
from typing import Any

from selfimprove.errors import UserError
from selfimprove.parsers.fences import FenceError
from selfimprove.records import Rollout, Verdict
from selfimprove.sandbox import Job, Result, inline, run_many
from selfimprove.sandbox.plain import NotPlainText, decode, encode
from selfimprove.verifiers.arguments import ArgumentError, parse_arguments, parse_value, values_equal
from selfimprove.verifiers.code import check_pool, extract_code, verdict_limits, why_unfinished
from selfimprove.verifiers.executor_harness import MAX_OUTPUT

# Modules that reach outside the program (files, processes, network, the interpreter) or make it nondeterministic.
BANNED_IMPORTS = (
    "asyncio", "builtins", "concurrent", "ctypes", "datetime", "gc", "glob", "importlib", "inspect", "io",
    "logging", "marshal", "multiprocessing", "os", "pathlib", "pickle", "pty", "random", "resource", "secrets",
    "shutil", "signal", "socket", "subprocess", "sys", "tempfile", "threading", "time", "urllib", "uuid",
)  # fmt: skip
MAX_FRAME = MAX_OUTPUT + 100  # characters of the output frame: the output and the frame around it
BANNED_CALLS = ("__import__", "breakpoint", "compile", "eval", "exec", "exit", "globals", "input", "open", "quit")


def validity_errors(
    program: str, entry: str, banned_imports: set[str], banned_calls: set[str], single_def: bool
) -> list[str]:
    """Why a proposed program may not run, one message per problem; empty when valid. Whatever the parser
    raises (a syntax error, a null byte, nesting too deep for it) is a message, never an exception."""
    try:
        tree = ast.parse(program)
    except SyntaxError as exc:
        return [f"program: syntax error: {exc.msg} (line {exc.lineno})"]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [f"program: syntax error: {type(exc).__name__}: {exc}"[:500]]
    errors = []
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        for module in modules:
            if module.split(".")[0] in banned_imports or module in banned_imports:
                errors.append(f"program: banned import {module!r} (line {node.lineno})")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in banned_calls:
            errors.append(f"program: banned call {node.func.id}() (line {node.lineno})")
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if entry not in defs:
        errors.append(f"program: no top-level function {entry!r}")
    if single_def and len(defs) != 1:
        errors.append(f"program: expected exactly one function definition, found {len(defs)}")
    return errors


def same_output(got: str, expected: str) -> bool:
    """Equal texts, or the same value when both texts are values (``[1,2]`` vs ``[1, 2]``, ``nan`` vs
    ``float('nan')``): read with ``parse_value``, never evaluated, compared with ``values_equal``."""
    if got.strip() == expected.strip():
        return True
    try:
        return values_equal(parse_value(got), parse_value(expected))
    except ArgumentError:
        return False


def read_output(result: Result) -> tuple[str, Any]:
    """``("output", value)`` when the run reported exactly one output frame and exited 0, else ``(status, error)``.
    The frame's size is checked before it is decoded: an output over ``MAX_OUTPUT`` characters is an error
    whatever the program made its process write."""
    if result.status == "timeout":
        return "timeout", why_unfinished(result)
    frame = None
    text, newline, rest = result.report.partition(b"\n")
    if newline and not rest and len(text) <= 4 * MAX_FRAME:  # UTF-8: at most four bytes a character
        try:
            frame = decode(text.decode("utf-8"), MAX_FRAME)
        except (UnicodeDecodeError, NotPlainText):
            frame = None
    if type(frame) is tuple and len(frame) == 2:
        if frame[0] == "output" and result.returncode == 0:
            return frame
        if frame[0] in ("syntax", "memory", "error") and type(frame[1]) is str:
            return frame
    if result.status == "memory":
        return "memory", why_unfinished(result)
    if len(text) > MAX_FRAME and result.returncode == 0:
        return "error", f"the output is longer than {MAX_OUTPUT} characters"
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
        self.limits = verdict_limits(timeout, memory_mb)
        self.workers, self.isolation, self.runs, self.entry = workers, isolation, runs, entry
        self.banned_imports = set(BANNED_IMPORTS if banned_imports is None else banned_imports)
        self.banned_calls = set(BANNED_CALLS if banned_calls is None else banned_calls)
        self.single_def = single_def

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        jobs, where = [], []
        for i, rollout in enumerate(rollouts):
            prepared = self.prepare(rollout)
            if isinstance(prepared, Verdict):
                verdicts[i] = prepared
                continue
            jobs += [Job(prepared, preamble=inline.source("selfimprove.verifiers.executor_harness"))] * self.runs
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
            elif not all(values_equal(out, outputs[0]) for out in outputs[1:]):
                shown = [encode(out)[:200] for out in outputs[:2]]
                verdicts[i] = self._verdict("nondeterministic", encode(outputs[0]), [f"runs disagree: {shown}"])
            else:
                verdicts[i] = self._judge(encode(outputs[0]), rollouts[i])
        return verdicts  # type: ignore[return-value]

    def prepare(self, rollout: Rollout) -> str | Verdict:
        """The harness's call for this record, or the verdict when it cannot run. The input is parsed here into
        values (``parse_arguments``: literals only) and sent as their canonical text; it is never code."""
        try:
            program = extract_code(rollout.completion)
        except FenceError as exc:
            return self._verdict("invalid", None, [f"program: {exc}"])
        arguments = rollout.meta.get("input")
        if not isinstance(arguments, str):
            return self._verdict("invalid", None, ["rollout.meta has no 'input' (the arguments of f)"])
        try:
            args, kwargs = parse_arguments(arguments)
        except ArgumentError as exc:
            return self._verdict("invalid", None, [f"input: {exc}"])
        errors = validity_errors(program, self.entry, self.banned_imports, self.banned_calls, self.single_def)
        if errors:
            return self._verdict("syntax" if "syntax error" in errors[0] else "invalid", None, errors)
        return f"run({program!r}, {self.entry!r}, {encode((args, kwargs))!r})\n"

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
