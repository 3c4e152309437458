"""Run untrusted Python in the sandbox: ``run_python`` for one program, ``run_many`` for a bounded pool.

A run starts ``python -I -S -B`` (no site-packages, no environment variables read, no .pyc written: the
standard library only, and a fast start) on a small fixed bootstrap. The bootstrap reads the job (source,
limits, uid) from an anonymous file, sets the limits, drops to the run's own uid where it can, and executes the
source as ``__main__``. File descriptor 3 is a report channel to the caller (``Result.report``), which the
verifiers use to send their verdicts (see ``selfimprove/verifiers/code.py``).

``run_pair`` runs two programs at once, each in a sandbox of its own, connected by two pipes: a driver, which
has the report channel, and a program, which has none. The code verifier runs the untrusted code as the program
and its tests as the driver, so nothing the untrusted code can reach holds the channel that carries the verdict.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import marshal
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from selfimprove.errors import UserError
from selfimprove.sandbox import bwrap, seccomp
from selfimprove.sandbox.limits import MB, Limits

ISOLATIONS = ("auto", "bwrap", "none")
REPORT_FD = 3
PEER_IN_FD, PEER_OUT_FD = 4, 5  # in a pair: what the other program writes, and the way to it
REPORT_CAP = 1024 * 1024
UNFILTERED = "kernel keyrings, memfd, System V IPC and new namespaces (no seccomp filter)"
UID_BASE = 1 << 30  # far above any real account; one uid per concurrent run of this process
T, R = TypeVar("T"), TypeVar("R")

# marshal, not json: it is built in, and importing json would cost a run more time than bubblewrap does.
BOOTSTRAP = """\
import marshal, os, resource, sys
def _job():
    with open(int(sys.argv[1]), "rb") as f:
        job = marshal.loads(f.read())
    for res, soft, hard in job["rlimits"]:
        resource.setrlimit(res, (soft, hard))
    if job["uid"] is not None:
        os.setgroups([])
        os.setresgid(job["uid"], job["uid"], job["uid"])
        os.setresuid(job["uid"], job["uid"], job["uid"])
    for target, fd in job["fds"]:
        os.dup2(fd, target)
        os.close(fd)
    if job["seccomp"]:  # without bubblewrap, which would load it: PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP
        import ctypes
        class Program(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
        libc = ctypes.CDLL(None, use_errno=True)
        program = Program(len(job["seccomp"]) // 8, job["seccomp"])
        if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(program), 0, 0):
            raise OSError(ctypes.get_errno(), "the seccomp filter did not load")
    sys.argv = ["main.py", *job["args"]]
    preamble = [marshal.loads(job["preamble"])] if job["preamble"] else []
    return [*preamble, compile(job["source"], "main.py", "exec")]
_main = sys.modules["__main__"] = type(sys)("__main__")  # a module of its own: pickle finds its functions
for _code in _job():
    exec(_code, _main.__dict__)
"""


@dataclass
class Result:
    """What one run did. ``status``: ``ok`` (exit 0), ``error`` (other exit or a signal), ``timeout`` (wall or
    CPU limit), ``memory`` (MemoryError or out of address space). ``returncode`` is negative for a signal and
    None after a timeout; ``report`` is what the program wrote to file descriptor 3."""

    status: str
    stdout: str
    stderr: str
    returncode: int | None
    seconds: float
    report: bytes = b""
    truncated: bool = False  # stdout or stderr was longer than the limit


@dataclass(frozen=True)
class Mode:
    """How runs are isolated on this machine, decided once per process."""

    bwrap: bwrap.Bwrap | None
    drop_uid: bool  # each run gets a uid of its own (we are root and the interpreter is reachable)
    gaps: tuple[str, ...] = ()  # what is not contained, for the one-time warning
    seccomp: bytes | None = field(default=None, repr=False)  # the filter (selfimprove.sandbox.seccomp), if any

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    @property
    def counts_processes(self) -> bool:
        """RLIMIT_NPROC bounds this run's processes (root is exempt, so it needs a uid of its own)."""
        return os.geteuid() != 0 or self.drop_uid


def interpreter() -> str:
    """The real interpreter (not a venv's launcher): the sandbox runs it without site-packages."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _reachable_by_others(path: str) -> bool:
    """Every folder above ``path`` lets other users through, so a dropped uid can still run this Python."""
    path = os.path.realpath(path)
    while path != "/":
        path = os.path.dirname(path)
        if not os.stat(path).st_mode & 0o001:
            return False
    return True


_mode_lock = threading.Lock()
_modes: dict[str, Mode] = {}
_warned = False


def mode(isolation: str = "auto") -> Mode:
    """The isolation mode for ``isolation`` (``auto``, ``bwrap``, ``none``), probed once per process."""
    if isolation not in ISOLATIONS:
        raise UserError(f"sandbox isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    with _mode_lock:
        if isolation not in _modes:
            _modes[isolation] = _decide(isolation)
        found = _modes[isolation]
    if found.gaps:
        _warn_once(found, isolation)
    return found


def _decide(isolation: str) -> Mode:
    """The strongest mode whose trial run works here. A trial, not a look for the binary: user namespaces may be
    disabled, a container may forbid mounts or uid changes, and a mode that fails every run would silently turn
    every reward into zero."""
    root = os.geteuid() == 0
    path = shutil.which("bwrap") if isolation != "none" else None
    built = seccomp.bpf()
    candidates = []
    if path and root:
        candidates.append(Mode(bwrap.Bwrap(path, as_root=True), drop_uid=True))
    if path:
        gaps = ("the process limit (root in a user namespace is exempt)",) if root else ()
        candidates.append(Mode(bwrap.Bwrap(path, as_root=False), drop_uid=False, gaps=gaps))
    problems = []
    for candidate in candidates:
        found, problem = _filtered(candidate, built)
        if found is not None:
            return found
        problems.append(problem)
    if isolation == "bwrap":
        state = "does not work here: " + problems[0] if problems else "is not installed (apt-get install bubblewrap)"
        raise UserError(f"sandbox isolation 'bwrap' was asked for, but bubblewrap {state}")
    gaps = [
        "the file system (a program can read and write whatever this user can)",
        "the network",
        "other processes (a program can signal this one)",
        "the environment of other processes",
    ]
    if root and _reachable_by_others(interpreter()):
        dropped, _ = _filtered(Mode(None, drop_uid=True, gaps=tuple(gaps)), built)
        if dropped is not None:
            return dropped
    if root:
        gaps.append("the process limit (root is exempt from RLIMIT_NPROC)")
    fallback, problem = _filtered(Mode(None, drop_uid=False, gaps=tuple(gaps)), built)
    if fallback is None:
        raise RuntimeError(f"the sandbox cannot run Python here: {problem}")
    return fallback


def _filtered(candidate: Mode, built: bytes | str) -> tuple[Mode | None, str | None]:
    """``candidate`` with the seccomp filter (``built``; a string says why there is none) when a trial run works
    so, else without it and the gap named, else None and what went wrong."""
    why = built
    if isinstance(built, bytes):
        filtered = dataclasses.replace(candidate, seccomp=built)
        why = _trial(filtered)
        if why is None:
            return filtered, None
        why = f"the filter does not load here: {why}"
    unfiltered = dataclasses.replace(candidate, gaps=(f"{UNFILTERED} ({why})", *candidate.gaps))
    problem = _trial(unfiltered)
    return (unfiltered, None) if problem is None else (None, problem)


def _trial(candidate: Mode) -> str | None:
    """Run a program the way every run will be run; None when it worked, else what went wrong."""
    slot = _slots.acquire()
    try:
        result = _run(Job("print('ok')"), Limits(timeout=30), candidate, slot)
    except OSError as exc:
        return str(exc)
    finally:
        _slots.release(slot)
    if result.stdout == "ok\n":
        return None
    return (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]


def _warn_once(found: Mode, asked: str) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    if found.isolated:
        why = "bubblewrap without a seccomp filter" if found.seccomp is None else "bubblewrap as mapped root"
    elif asked == "none":
        why = "isolation 'none' was asked for"
    else:
        why = "bubblewrap is not installed" if shutil.which("bwrap") is None else "bubblewrap does not work here"
    warnings.warn(
        f"SANDBOX NOT FULLY ISOLATED ({why}). Model-written code is NOT contained in: "
        + "; ".join(found.gaps)
        + ". Resource limits still apply. Install bubblewrap (apt-get install bubblewrap) and libseccomp's binding"
        + " (pip install pyseccomp); see docs/sandbox.md.",
        RuntimeWarning,
        stacklevel=3,
    )


class _Slots:
    """Numbers for concurrent runs; a run's uid is ``UID_BASE + (pid % 4096) * 256 + slot``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[int] = []
        self._next = 0

    def acquire(self) -> int:
        with self._lock:
            if self._free:
                return self._free.pop()
            if self._next >= 256:
                raise RuntimeError("more than 256 concurrent sandbox runs")
            self._next += 1
            return self._next - 1

    def release(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)


_slots = _Slots()


def _uid(slot: int) -> int:
    return UID_BASE + (os.getpid() % 4096) * 256 + slot


def _user_tasks(uid: int) -> int:
    """Tasks (processes and threads) of ``uid``: RLIMIT_NPROC counts them all for a user without a namespace."""
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/status", "rb") as f:
                    status = f.read()
            except OSError:
                continue
            fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
            if int(fields.get(b"Uid", b"-1").split()[0]) == uid:
                count += int(fields.get(b"Threads", b"1"))
    return count


def _memfd(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding ``data``: the child reads it without a pipe writer thread."""
    fd = os.memfd_create(name)
    with open(fd, "wb", closefd=False) as f:
        f.write(data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run_python(
    source: str,
    *,
    stdin: bytes = b"",
    args: Sequence[str] = (),
    limits: Limits | None = None,
    isolation: str = "auto",
) -> Result:
    """Run ``source`` as a Python program in the sandbox and return what it did. Never raises for what the
    program does; raises ``UserError`` only for a bad ``isolation``."""
    return _run_job(Job(source, stdin, list(args)), limits or Limits(), isolation)


def _run_job(job: Job, limits: Limits, isolation: str) -> Result:
    found = mode(isolation)
    slot = _slots.acquire()
    try:
        return _run(job, limits, found, slot)
    finally:
        _slots.release(slot)


def run_pair(
    driver: Job,
    program: Job,
    limits: Limits | None = None,
    program_limits: Limits | None = None,
    isolation: str = "auto",
) -> tuple[Result, Result]:
    """Run ``driver`` and ``program`` at once, each in a sandbox of its own (its own namespaces, and where runs
    get uids, its own uid), connected by two pipes: each reads what the other writes on file descriptor 4 and
    writes to the other on descriptor 5. Only the driver has the report channel (descriptor 3).

    One wall-clock deadline, ``limits.timeout`` from the start, ends both; when the driver ends, the program is
    killed. Each runs under its own limits (``program_limits`` defaults to ``limits``). Results: the driver's,
    then the program's."""
    limits = limits or Limits()
    found = mode(isolation)
    slots = [_slots.acquire()]
    try:
        slots.append(_slots.acquire())
        to_program, to_driver = os.pipe(), os.pipe()
        specs = [
            _Spec(driver, limits, {PEER_IN_FD: to_driver[0], PEER_OUT_FD: to_program[1]}, report=True),
            _Spec(program, program_limits or limits, {PEER_IN_FD: to_program[0], PEER_OUT_FD: to_driver[1]}),
        ]
        driver_result, program_result = _run_group(specs, found, slots)
        return driver_result, program_result
    finally:
        for slot in slots:
            _slots.release(slot)


def _run(job: Job, limits: Limits, found: Mode, slot: int) -> Result:
    return _run_group([_Spec(job, limits, {}, report=True)], found, [slot])[0]


@dataclass
class _Spec:
    """One process of a group: its job, its limits, and descriptors it inherits (its number -> ours; ours are
    closed once the group has started, or failed to)."""

    job: Job
    limits: Limits
    fds: dict[int, int]
    report: bool = False  # a report channel on descriptor 3


@dataclass
class _Started:
    """A process of a group while it runs."""

    proc: subprocess.Popen
    tree: _Tree
    report_r: int | None
    workdir: str | None
    cap: int  # bytes kept of stdout and of stderr
    bufs: dict[str, bytearray] = field(default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()})
    truncated: bool = False
    timed_out: bool = False


def _run_group(specs: list[_Spec], found: Mode, slots: list[int]) -> list[Result]:
    """Start every process of ``specs`` (the first is the leader: the others are killed when it ends) under one
    deadline, the leader's timeout, and collect what each did."""
    for spec in specs:
        spec.fds = {target: _high(fd) for target, fd in spec.fds.items()}
    started: list[_Started] = []
    start = time.monotonic()
    try:
        for spec, slot in reversed(list(zip(specs, slots, strict=True))):  # the leader last: it waits on the others
            started.append(_start(spec, found, slot))
    except BaseException:
        for run in started:
            _cleanup(run)
        raise
    finally:
        for spec in specs:
            for fd in spec.fds.values():
                os.close(fd)
    started.reverse()
    try:
        _collect(started, start + specs[0].limits.timeout)
    finally:
        for run in started:
            _cleanup(run)
    seconds = time.monotonic() - start
    results = []
    for run in started:
        stdout, stderr = (run.bufs[k].decode("utf-8", "replace") for k in ("stdout", "stderr"))
        returncode = None if run.timed_out else _returncode(run.proc.returncode, found)
        report = bytes(run.bufs.get("report", b""))
        results.append(Result(_status(returncode, stderr), stdout, stderr, returncode, seconds, report, run.truncated))
    return results


def _high(fd: int) -> int:
    """``fd`` moved to a number of 10 or more (the original is closed), so that placing the inherited descriptors
    (3 to 9) in the child never overwrites one that is still to be placed."""
    if fd >= 10:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def _start(spec: _Spec, found: Mode, slot: int) -> _Started:
    limits, job = spec.limits, spec.job
    uid = _uid(slot) if found.drop_uid else None
    base = 0 if found.isolated or found.drop_uid or os.geteuid() == 0 else _user_tasks(os.geteuid())
    token = secrets.token_hex(8)
    report_r = report_w = None
    if spec.report:
        report_r, report_w = os.pipe()
        report_w = _high(report_w)
    fds = {**spec.fds, **({REPORT_FD: report_w} if report_w is not None else {})}
    job_dict = {"source": job.source, "args": job.args, "rlimits": limits.rlimits(base), "uid": uid}
    job_dict |= {"fds": sorted(fds.items()), "preamble": _compiled(job.preamble) if job.preamble else b""}
    job_dict["seccomp"] = b"" if found.isolated else found.seccomp or b""  # bubblewrap loads it itself
    job_fd = _memfd("job", marshal.dumps(job_dict))
    stdin_fd = _memfd("stdin", job.stdin) if job.stdin else None
    argv = [interpreter(), "-I", "-S", "-B", "-c", BOOTSTRAP, str(job_fd), f"selfimprove-sandbox-{token}"]
    workdir = None
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    filter_fd = _memfd("seccomp", found.seccomp) if found.isolated and found.seccomp else None
    if found.isolated:
        env["HOME"] = "/tmp"
        cmd, cwd = bwrap.command(found.bwrap, argv, env, limits.tmp_mb * MB, filter_fd), None
    else:
        workdir = tempfile.mkdtemp(prefix="selfimprove-sandbox-")
        if uid is not None:
            os.chown(workdir, uid, uid)
        env |= {"HOME": workdir, "TMPDIR": workdir, "SELFIMPROVE_SANDBOX_RUN": token}
        cmd, cwd = argv, workdir
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=stdin_fd if stdin_fd is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(job_fd, *fds.values(), *([] if filter_fd is None else [filter_fd])),
            cwd=cwd,
            env=env,  # bubblewrap too: its PID 1 in the sandbox would otherwise show our environment in /proc
            start_new_session=True,  # its own process group, killed as a whole
        )
    except BaseException:
        if report_r is not None:
            os.close(report_r)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        for fd in (job_fd, report_w, stdin_fd, filter_fd):
            if fd is not None:
                os.close(fd)
    run = _Started(proc, _Tree(proc, None if found.isolated else token), report_r, workdir, limits.output_bytes)
    if report_r is not None:
        run.bufs["report"] = bytearray()
    return run


def _cleanup(run: _Started) -> None:
    run.tree.kill()
    for stream in (run.proc.stdout, run.proc.stderr):
        stream.close()
    if run.report_r is not None:
        os.close(run.report_r)
        run.report_r = None
    if run.workdir:
        shutil.rmtree(run.workdir, ignore_errors=True)
        run.workdir = None


def _collect(runs: list[_Started], deadline: float) -> None:
    """Read every process's stdout, stderr and report until they close or the deadline passes; keep the first
    bytes of each. When the leader (``runs[0]``) exits, the others are killed.

    Read, not ``communicate``: an output bomb must cost nothing beyond its cap.
    """
    sel = selectors.DefaultSelector()
    for run in runs:
        sel.register(run.proc.stdout, selectors.EVENT_READ, (run, "stdout"))
        sel.register(run.proc.stderr, selectors.EVENT_READ, (run, "stderr"))
        if run.report_r is not None:
            sel.register(run.report_r, selectors.EVENT_READ, (run, "report"))
    ended = [False] * len(runs)
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                for run in runs:
                    run.timed_out = not run.tree.exited()
                return
            for i, run in enumerate(runs):
                if not ended[i] and run.tree.exited():
                    # Done; whatever still holds its pipes (a daemon, without bubblewrap) goes now, and with the
                    # leader, every other process of the group.
                    ended[i] = True
                    for other in runs if i == 0 else [run]:
                        other.tree.kill()
                    if i == 0:
                        deadline = min(deadline, now + 0.5)
            for key, _ in sel.select(min(deadline - now, 0.05)):
                run, name = key.data
                fd = key.fileobj if isinstance(key.fileobj, int) else key.fileobj.fileno()
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                cap = REPORT_CAP if name == "report" else run.cap
                buf = run.bufs[name]
                room = cap - len(buf)
                run.truncated |= len(data) > room and name != "report"
                buf += data[: max(room, 0)]
    finally:
        sel.close()


class _Tree:
    """Everything one run started, killed as a whole.

    With bubblewrap, killing its process group ends the sandbox's PID namespace and with it every process
    inside. Without it, the process group goes, and then any process that left the group (setsid, double fork)
    but still carries the run's token in its environment. The leader is reaped only after its group is killed,
    so the group id cannot have been reused by then.
    """

    def __init__(self, proc: subprocess.Popen, token: str | None):
        self.proc, self.token, self.done = proc, token, False

    def exited(self) -> bool:
        """The leader has exited (without reaping it)."""
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def kill(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.token is not None:
            _kill_marked(self.token)
        self.proc.wait()


def _kill_marked(token: str) -> None:
    # /proc/PID/environ holds a process's initial environment, which a program cannot rewrite in place.
    marker = f"SELFIMPROVE_SANDBOX_RUN={token}".encode()
    for _ in range(5):  # a process may fork while we scan: repeat until a scan finds none
        found = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if marker in f.read():
                        os.kill(int(pid), signal.SIGKILL)
                        found += 1
            except OSError:
                continue
        if not found:
            return


def _returncode(code: int, found: Mode) -> int:
    # bubblewrap reports a command killed by signal N as exit code 128 + N
    if found.isolated and 128 < code < 128 + signal.NSIG:
        return 128 - code
    return code


def _status(returncode: int | None, stderr: str) -> str:
    if returncode is None or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"  # SIGKILL: the CPU limit's hard edge, a second after an ignored SIGXCPU
    if returncode == 0:
        return "ok"
    tail = stderr[-2000:]
    if "MemoryError" in tail or "Cannot allocate memory" in tail or "std::bad_alloc" in tail:
        return "memory"
    return "error"


@dataclass
class Job:
    """One program for ``run_many``, or one side of ``run_pair``. ``preamble`` is code run first in the program's
    namespace (a harness's functions): compiled once here and sent compiled, which saves each run compiling it."""

    source: str
    stdin: bytes = b""
    args: list[str] = field(default_factory=list)
    preamble: str = ""


@functools.lru_cache(maxsize=16)
def _compiled(preamble: str) -> bytes:
    """``preamble`` compiled for the sandbox's interpreter (the same version as this one, so marshal fits)."""
    return marshal.dumps(compile(preamble, "preamble.py", "exec", dont_inherit=True))


def run_many(
    jobs: Sequence[Job], limits: Limits | None = None, workers: int = 0, isolation: str = "auto"
) -> list[Result]:
    """Run ``jobs`` with at most ``workers`` at a time (0: one per CPU); results in order."""

    return _pool(lambda job: _run_job(job, limits or Limits(), isolation), jobs, workers, isolation)


def run_pairs(
    pairs: Sequence[tuple[Job, Job]], limits: Limits | None = None, workers: int = 0, isolation: str = "auto"
) -> list[tuple[Result, Result]]:
    """``run_pair`` on each ``(driver, program)``, at most ``workers`` pairs at a time (0: one per CPU)."""
    return _pool(lambda pair: run_pair(*pair, limits=limits, isolation=isolation), pairs, workers, isolation)


def _pool(fn: Callable[[T], R], items: Sequence[T], workers: int, isolation: str) -> list[R]:
    workers = workers or os.cpu_count() or 1
    mode(isolation)  # probe and warn once, before the threads start
    if len(items) <= 1 or workers == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(fn, items))
