"""Unit tests: a completion's code, then its problem's tests (``rollout.meta["tests"]``), in the sandbox.

A pass is counted only when the test code ran to its end. The harness writes a random per-run nonce to the
sandbox's report channel after the last test statement, and nowhere else; an early ``os._exit(0)`` or
``sys.exit(0)``, a killed process, or a printed "passed" never produces it. The nonce is a local of the
harness's frame, so a program would have to inspect the interpreter's own frames to find it (docs/sandbox.md).
"""

from __future__ import annotations

import ast
import re
import secrets
import signal

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict
from selfimprove.sandbox import Job, Limits, Result, run_many
from selfimprove.sandbox.run import ISOLATIONS

STATUSES = ("passed", "failed", "timeout", "memory", "syntax", "error")
_FENCE = re.compile(r"```[ \t]*(python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

# The completion runs in a fresh namespace named "solution" (so its `if __name__ == "__main__":` block does not
# run), then the tests in the same namespace. Everything the harness uses after the tests is bound before the
# untrusted code runs, so replacing builtins.exec or os.write cannot forge a pass.
HARNESS = """\
import os

def _describe(exc):
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in ("solution.py", "tests.py"):
            where = f" ({tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno})"
        tb = tb.tb_next
    try:
        text = str(exc)
        return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:2000] + where
    except BaseException:
        return type(exc).__name__ + where

def _harness(program, tests, nonce, _exec=exec, _write=os.write, _exit=os._exit, _describe=_describe):
    def label(status, stage, error):
        _write(3, f"{status}\\t{stage}\\t{error!r}\\n".encode())
    try:
        codes = [("program", compile(program, "solution.py", "exec")), ("tests", compile(tests, "tests.py", "exec"))]
    except SyntaxError as exc:
        stage = "program" if exc.filename == "solution.py" else "tests"
        return label("syntax", stage, f"SyntaxError: {exc.msg} (line {exc.lineno})")
    namespace = {"__name__": "solution"}
    for stage, code in codes:
        try:
            _exec(code, namespace)
        except MemoryError:
            return label("memory", stage, "MemoryError")
        except SystemExit as exc:
            return label("error", stage, f"exited early (SystemExit {exc.code!r})")
        except BaseException as exc:
            return label("failed" if stage == "tests" else "error", stage, _describe(exc))
    try:
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        _write(3, (nonce + "\\n").encode())
        _exit(0)

_harness(ARGS)
"""


def extract_code(completion: str) -> str:
    """The last ```python (or untagged) fenced block, else the whole completion."""
    blocks = _FENCE.findall(completion)
    if not blocks:
        return completion
    tagged = [code for tag, code in blocks if tag]
    return (tagged or [code for _, code in blocks])[-1]


def harness(template: str, *values: str) -> str:
    """A harness program: ``template`` with its ``_harness(ARGS)`` call given ``values`` as literals."""
    return template.replace("_harness(ARGS)", f"_harness({', '.join(map(repr, values))})")


def read_report(result: Result, nonce: str) -> tuple[bool, dict[str, str]]:
    """Whether the harness finished (its nonce line arrived and the process exited 0), and its last label
    (``status``, ``stage``, ``error``): what the harness saw go wrong. A label never says passed."""
    lines = result.report.decode("utf-8", "replace").splitlines()
    finished = any(line.split(" ", 1)[0] == nonce for line in lines) and result.returncode == 0
    for line in reversed(lines):
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[0] in STATUSES[1:]:
            try:
                error = ast.literal_eval(parts[2])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            return finished, {"status": parts[0], "stage": parts[1], "error": str(error)}
    return finished, {}


def why_unfinished(result: Result) -> str:
    """How a run ended without its harness finishing, in words."""
    if result.returncode is None:
        return "timed out"
    if result.returncode < 0:
        try:
            return f"killed by {signal.Signals(-result.returncode).name}"
        except ValueError:
            return f"killed by signal {-result.returncode}"
    return f"exited with code {result.returncode} before the tests finished"


def check_pool(isolation: str, workers: int) -> None:
    """The recipe arguments shared by the sandboxed verifiers."""
    if isolation not in ISOLATIONS:
        raise UserError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    if workers < 0:
        raise UserError(f"workers must be 0 (one per CPU) or more, got {workers}")


class CodeVerifier:
    """Passes when the completion's code passes its problem's tests.

    ``rollout.meta["tests"]``: Python source (or a list of statements) with asserts, run after the code in the
    same namespace; it must call what it tests itself (HumanEval: ``check(candidate)`` included).
    ``info["status"]`` is one of passed, failed, timeout, memory, syntax, error.
    """

    def __init__(
        self,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        workers: int = 0,
        isolation: str = "auto",
        processes: int = 32,
        max_output: int = 1000,
    ):
        check_pool(isolation, workers)
        if max_output < 0:
            raise UserError(f"max_output must be 0 or more, got {max_output}")
        self.limits = Limits(timeout=timeout, memory_mb=memory_mb, processes=processes)
        self.workers, self.isolation, self.max_output = workers, isolation, max_output

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        jobs, nonces, where = [], [], []
        for i, rollout in enumerate(rollouts):
            tests = rollout.meta.get("tests")
            if isinstance(tests, list):
                tests = "\n".join(map(str, tests))
            if not isinstance(tests, str) or not tests.strip():
                error = "rollout.meta has no 'tests' (Python source with asserts)"
                verdicts[i] = Verdict(0.0, False, {"status": "error", "error": error})
                continue
            nonce = secrets.token_hex(16)
            program = extract_code(rollout.completion)
            jobs.append(Job(harness(HARNESS, program, tests, nonce)))
            nonces.append(nonce)
            where.append(i)
        results = run_many(jobs, self.limits, self.workers, self.isolation)
        for i, result, nonce in zip(where, results, nonces, strict=True):
            verdicts[i] = self.judge(result, nonce)
        return verdicts  # type: ignore[return-value]

    def judge(self, result: Result, nonce: str) -> Verdict:
        finished, label = read_report(result, nonce)
        if finished:
            status, error = "passed", ""
        elif result.status == "timeout":
            status, error = "timeout", f"no result within {self.limits.timeout:g} s"
        elif label:
            status, error = label["status"], f"{label.get('stage')}: {label.get('error', '')}"
        else:
            status = "memory" if result.status == "memory" else "error"
            error = why_unfinished(result)
        info = {
            "status": status,
            "error": error[-self.max_output :],
            "stdout": result.stdout[: self.max_output],
            "stderr": result.stderr[-self.max_output :],
            "seconds": round(result.seconds, 3),
        }
        return Verdict(float(finished), finished, info)
