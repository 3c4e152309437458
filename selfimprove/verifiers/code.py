"""Unit tests: a completion's code against its problem's tests (``rollout.meta["tests"]``), in two sandboxes.

The code runs in one sandboxed process, the tests in another (``code_program`` and ``code_driver``; see
docs/sandbox.md). The tests call the program's functions through proxies that carry plain values both ways, so
every comparison in the tests is made by built-in types, and only the tests' process can report. A pass is
that process's single ``("passed",)`` label on its report channel together with its exit code 0; nothing the
program can reach holds that channel.
"""

from __future__ import annotations

import signal

from selfimprove.errors import UserError
from selfimprove.parsers.fences import FenceError, last_block
from selfimprove.records import Rollout, Verdict
from selfimprove.sandbox import Job, Limits, Result, inline, run_pairs
from selfimprove.sandbox.plain import NotPlainText, decode
from selfimprove.sandbox.run import ISOLATIONS
from selfimprove.verifiers.code_names import program_names, prompt_helpers
from selfimprove.verifiers.code_peer import PROGRAM_ENDED

DRIVER, PROGRAM = "selfimprove.verifiers.code_driver", "selfimprove.verifiers.code_program"  # the two harnesses
STATUSES = ("passed", "failed", "timeout", "memory", "syntax", "error")
LABELS = ("failed", "syntax", "memory", "error")  # what the tests' process may report besides a pass


def extract_code(completion: str) -> str:
    """The last ```python fenced block, else the last untagged one, else the whole completion
    (``selfimprove.parsers.fences``; raises its ``FenceError`` for a completion too long to scan)."""
    code = last_block(completion, ["python"])
    return completion if code is None else code


def read_label(report: bytes) -> tuple[str, ...] | None:
    """The tests' process's label: exactly one frame, ``("passed",)`` or ``(status, stage, error)``; else None."""
    text, newline, rest = report.partition(b"\n")
    if not newline or rest:
        return None
    try:
        label = decode(text.decode("utf-8"))
    except (UnicodeDecodeError, NotPlainText):
        return None
    if label == ("passed",):
        return label
    if type(label) is tuple and len(label) == 3 and label[0] in LABELS and all(type(x) is str for x in label):
        return label
    return None


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


def verdict_limits(timeout: float, memory_mb: int, processes: int = 32) -> Limits:
    """The limits of one verification. ``timeout`` is CPU time per process, enforced by the kernel, so a verdict
    does not depend on how loaded the machine is. The wall clock, which ends a run that waits (a sleep, a pipe)
    rather than computes, allows ``2 * timeout + 1`` seconds: a process that gets only half a core (a machine
    with twice as many runnable tasks as cores) still reaches its CPU limit first."""
    if not timeout > 0:
        raise UserError(f"timeout must be positive, got {timeout!r}")
    return Limits(timeout=2 * timeout + 1, cpu=timeout, memory_mb=memory_mb, processes=processes)


def timeout_error(limits: Limits) -> str:
    return f"no result within {limits.cpu:g} s of CPU time ({limits.timeout:g} s of wall time)"


def check_pool(isolation: str, workers: int) -> None:
    """The recipe arguments shared by the sandboxed verifiers."""
    if isolation not in ISOLATIONS:
        raise UserError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    if workers < 0:
        raise UserError(f"workers must be 0 (one per CPU) or more, got {workers}")


class CodeVerifier:
    """Passes when the completion's code passes its problem's tests.

    ``rollout.meta["tests"]``: Python source (or a list of statements) with asserts; it must call what it tests
    itself (HumanEval: ``check(candidate)`` included). Optional: ``meta["entry_point"]``, a function the tests get
    from the program even if they never name it, and ``meta["prompt_code"]``, trusted code whose definitions
    other than the entry point's run on the tests' side. ``info["status"]`` is one of ``STATUSES``.
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
        self.limits = verdict_limits(timeout, memory_mb, processes)
        self.workers, self.isolation, self.max_output = workers, isolation, max_output

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        verdicts: list[Verdict | None] = [None] * len(rollouts)
        pairs, where = [], []
        for i, rollout in enumerate(rollouts):
            prepared = self.prepare(rollout)
            if isinstance(prepared, Verdict):
                verdicts[i] = prepared
            else:
                pairs.append(prepared)
                where.append(i)
        results = run_pairs(pairs, self.limits, self.workers, self.isolation)
        for i, (driver, program) in zip(where, results, strict=True):
            verdicts[i] = self.judge(driver, program)
        return verdicts  # type: ignore[return-value]

    def prepare(self, rollout: Rollout) -> tuple[Job, Job] | Verdict:
        """The (tests, program) pair to run, or the verdict when the record cannot be run."""
        meta = rollout.meta
        tests = meta.get("tests")
        if isinstance(tests, list):
            tests = "\n".join(map(str, tests))
        if not isinstance(tests, str) or not tests.strip():
            return self.verdict("error", "rollout.meta has no 'tests' (Python source with asserts)")
        entry = meta.get("entry_point")
        if entry is not None and not (isinstance(entry, str) and entry.isidentifier()):
            return self.verdict("error", f"rollout.meta['entry_point'] is not a Python name: {entry!r}")
        stage, prelude = "prompt", ""
        try:
            if entry and isinstance(meta.get("prompt_code"), str):
                prelude = prompt_helpers(meta["prompt_code"], entry)
            stage = "tests"
            names = program_names(tests, prelude, entry)
        except SyntaxError as exc:
            return self.verdict("syntax", f"{stage}: SyntaxError: {exc.msg} (line {exc.lineno})")
        except (ValueError, RecursionError, MemoryError) as exc:  # a null byte; nesting too deep for the parser
            return self.verdict("syntax", f"{stage}: {type(exc).__name__}: {exc}"[:500])
        try:
            code = extract_code(rollout.completion)
        except FenceError as exc:
            return self.verdict("error", f"program: {exc}")
        driver = Job(f"drive({prelude!r}, {tests!r}, {names!r})\n", preamble=inline.source(DRIVER))
        program = Job(f"serve({code!r}, {names!r})\n", preamble=inline.source(PROGRAM))
        return driver, program

    def judge(self, driver: Result, program: Result) -> Verdict:
        label = read_label(driver.report)
        passed = label == ("passed",) and driver.returncode == 0
        if passed:
            status, error = "passed", ""
        elif driver.status == "timeout":
            status, error = "timeout", timeout_error(self.limits)
        elif label is not None and len(label) == 3:
            status, stage, error = label
            if error == PROGRAM_ENDED:  # say how: an exit, a signal, a limit
                status = program.status if program.status in ("timeout", "memory") else "error"
                error = why_unfinished(program)
            error = f"{stage}: {error}"
        else:
            status = "memory" if driver.status == "memory" else "error"
            error = f"tests: {why_unfinished(driver)}"
        output = {"stdout": program.stdout + driver.stdout, "stderr": program.stderr + driver.stderr}
        return self.verdict(status, error, output, driver.seconds)

    def verdict(self, status: str, error: str, output: dict[str, str] | None = None, seconds: float = 0.0) -> Verdict:
        output = output or {"stdout": "", "stderr": ""}
        info = {
            "status": status,
            "error": error[-self.max_output :] if self.max_output else "",
            "stdout": output["stdout"][: self.max_output],
            "stderr": output["stderr"][-self.max_output :] if self.max_output else "",
            "seconds": round(seconds, 3),
        }
        passed = status == "passed"
        return Verdict(float(passed), passed, info)
