"""AZR's code executor: run a program that defines ``f`` on an input, in the sandbox, and report the output.

Absolute Zero's proposer writes a program and an input; a program is valid when it parses, imports nothing
banned, and gives the same output on every run (the determinism check). The output's ``repr`` is the gold
answer for the solver's roles. Record fields: ``completion`` (the program; the last fenced block if any),
``meta["input"]`` (the argument list as Python source, e.g. ``"[1, 2], 3"``), and the expected output's repr in
``meta["expected_output"]`` or ``answer``, when there is one to compare with.
"""

from __future__ import annotations

import ast
import secrets

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict
from selfimprove.sandbox import Job, Limits, run_many
from selfimprove.verifiers.code import check_pool, extract_code, harness, read_report, why_unfinished

# Modules that reach outside the program (files, processes, network, the interpreter) or make it nondeterministic.
BANNED_IMPORTS = (
    "asyncio", "builtins", "concurrent", "ctypes", "datetime", "gc", "glob", "importlib", "inspect", "io",
    "logging", "marshal", "multiprocessing", "os", "pathlib", "pickle", "pty", "random", "resource", "secrets",
    "shutil", "signal", "socket", "subprocess", "sys", "tempfile", "threading", "time", "urllib", "uuid",
)  # fmt: skip
BANNED_CALLS = ("__import__", "breakpoint", "compile", "eval", "exec", "exit", "globals", "input", "open", "quit")
MAX_OUTPUT = 10_000

HARNESS = """\
import os

def _harness(program, entry, arguments, nonce, _exec=exec, _eval=eval, _repr=repr, _write=os.write, _exit=os._exit):
    def label(status, error):
        _write(3, f"{status}\\tprogram\\t{error!r}\\n".encode())
    namespace = {"__name__": "solution"}
    try:
        call = compile(f"__entry__({arguments})", "input", "eval")
        _exec(compile(program, "solution.py", "exec"), namespace)
        if not callable(namespace.get(entry)):
            return label("error", f"the program defines no function {entry!r}")
        namespace["__entry__"] = namespace[entry]
        output = _repr(_eval(call, namespace))
    except SyntaxError as exc:
        return label("syntax", f"SyntaxError: {exc.msg} (line {exc.lineno})")
    except MemoryError:
        return label("memory", "MemoryError")
    except SystemExit as exc:
        return label("error", f"exited early (SystemExit {exc.code!r})")
    except BaseException as exc:
        try:
            return label("error", f"{type(exc).__name__}: {exc}"[:2000])
        except BaseException:
            return label("error", type(exc).__name__)
    if type(output) is not str or len(output) > MAX_OUTPUT:
        return label("error", f"the output's repr is not a string of at most {MAX_OUTPUT} characters")
    _write(3, (nonce + " " + _repr(output) + "\\n").encode())
    _exit(0)

_harness(ARGS)
""".replace("MAX_OUTPUT", str(MAX_OUTPUT))


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


def same_output(got: str, expected: str) -> bool:
    """Equal reprs, or equal values when both reprs are Python literals (``[1,2]`` vs ``[1, 2]``)."""
    if got.strip() == expected.strip():
        return True
    try:
        return ast.literal_eval(got) == ast.literal_eval(expected.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


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
        jobs, nonces, where = [], [], []
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
            for _ in range(self.runs):
                nonce = secrets.token_hex(16)
                jobs.append(Job(harness(HARNESS, program, self.entry, arguments, nonce)))
                nonces.append(nonce)
            where.append(i)
        results = iter(zip(run_many(jobs, self.limits, self.workers, self.isolation), nonces, strict=True))
        for i in where:
            outputs, failure = [], None
            for result, nonce in (next(results) for _ in range(self.runs)):
                finished, label = read_report(result, nonce)
                if finished:
                    line = next(x for x in result.report.decode().splitlines() if x.startswith(nonce + " "))
                    outputs.append(ast.literal_eval(line.split(" ", 1)[1]))
                elif failure is None:
                    status = "timeout" if result.status == "timeout" else label.get("status", result.status)
                    failure = (status if status != "ok" else "error", label.get("error") or why_unfinished(result))
            if failure is not None:
                verdicts[i] = self._verdict(failure[0], None, [failure[1]])
            elif not all(same_output(out, outputs[0]) for out in outputs[1:]):
                verdicts[i] = self._verdict("nondeterministic", outputs[0], [f"runs disagree: {outputs[:2]}"])
            else:
                verdicts[i] = self._judge(outputs[0], rollouts[i])
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
