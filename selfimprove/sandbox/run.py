"""Run untrusted Python in the sandbox: ``run_python`` for one program, ``run_many`` for a bounded pool.

A run starts ``python -I -S -B`` (no site-packages, no environment variables read, no .pyc written: the
standard library only, and a fast start) on a small fixed bootstrap. The bootstrap reads the job (source,
limits, uid) from an anonymous file, sets the limits, drops to the run's own uid where it can, and executes the
source as ``__main__``. File descriptor 3 is a report channel to the caller (``Result.report``), which the
verifiers use to prove that their test code ran to its end (see ``selfimprove/verifiers/code.py``).
"""

from __future__ import annotations

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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from selfimprove.errors import UserError
from selfimprove.sandbox import bwrap
from selfimprove.sandbox.limits import MB, Limits

ISOLATIONS = ("auto", "bwrap", "none")
REPORT_FD = 3
REPORT_CAP = 1024 * 1024
UID_BASE = 1 << 30  # far above any real account; one uid per concurrent run of this process

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
    if job["report_fd"] != 3:
        os.dup2(job["report_fd"], 3)
        os.close(job["report_fd"])
    sys.argv = ["main.py", *job["args"]]
    return compile(job["source"], "main.py", "exec")
exec(_job(), {"__name__": "__main__", "__builtins__": __builtins__})
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
    candidates = []
    if path and root:
        candidates.append(Mode(bwrap.Bwrap(path, as_root=True), drop_uid=True))
    if path:
        gaps = ("the process limit (root in a user namespace is exempt)",) if root else ()
        candidates.append(Mode(bwrap.Bwrap(path, as_root=False), drop_uid=False, gaps=gaps))
    problems = []
    for candidate in candidates:
        problem = _trial(candidate)
        if problem is None:
            return candidate
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
        dropped = Mode(None, drop_uid=True, gaps=tuple(gaps))
        if _trial(dropped) is None:
            return dropped
    if root:
        gaps.append("the process limit (root is exempt from RLIMIT_NPROC)")
    fallback = Mode(None, drop_uid=False, gaps=tuple(gaps))
    problem = _trial(fallback)
    if problem is not None:
        raise RuntimeError(f"the sandbox cannot run Python here: {problem}")
    return fallback


def _trial(candidate: Mode) -> str | None:
    """Run a program the way every run will be run; None when it worked, else what went wrong."""
    slot = _slots.acquire()
    try:
        result = _run("print('ok')", b"", [], Limits(timeout=30), candidate, slot)
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
        why = "bubblewrap runs in a user namespace mapped to root"
    elif asked == "none":
        why = "isolation 'none' was asked for"
    else:
        why = "bubblewrap is not installed" if shutil.which("bwrap") is None else "bubblewrap does not work here"
    warnings.warn(
        f"SANDBOX NOT FULLY ISOLATED ({why}). Model-written code is NOT contained in: "
        + "; ".join(found.gaps)
        + ". Resource limits still apply. Install bubblewrap (apt-get install bubblewrap); see docs/sandbox.md.",
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
    limits = limits or Limits()
    found = mode(isolation)
    slot = _slots.acquire()
    try:
        return _run(source, stdin, list(args), limits, found, slot)
    finally:
        _slots.release(slot)


def _run(source: str, stdin: bytes, args: list[str], limits: Limits, found: Mode, slot: int) -> Result:
    uid = _uid(slot) if found.drop_uid else None
    base = 0 if found.isolated or found.drop_uid or os.geteuid() == 0 else _user_tasks(os.geteuid())
    token = secrets.token_hex(8)
    report_r, report_w = os.pipe()
    job = {"source": source, "args": args, "rlimits": limits.rlimits(base), "uid": uid, "report_fd": report_w}
    job_fd = _memfd("job", marshal.dumps(job))
    stdin_fd = _memfd("stdin", stdin) if stdin else None
    argv = [interpreter(), "-I", "-S", "-B", "-c", BOOTSTRAP, str(job_fd), f"selfimprove-sandbox-{token}"]
    workdir = None
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    if found.isolated:
        env["HOME"] = "/tmp"
        cmd, cwd = bwrap.command(found.bwrap, argv, env, limits.tmp_mb * MB), None
    else:
        workdir = tempfile.mkdtemp(prefix="selfimprove-sandbox-")
        if uid is not None:
            os.chown(workdir, uid, uid)
        env |= {"HOME": workdir, "TMPDIR": workdir, "SELFIMPROVE_SANDBOX_RUN": token}
        cmd, cwd = argv, workdir
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=stdin_fd if stdin_fd is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(job_fd, report_w),
            cwd=cwd,
            env=env,  # bubblewrap too: its PID 1 in the sandbox would otherwise show our environment in /proc
            start_new_session=True,  # its own process group, killed as a whole
        )
    except BaseException:
        os.close(report_r)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        for fd in (job_fd, report_w, stdin_fd):
            if fd is not None:
                os.close(fd)
    tree = _Tree(proc, None if found.isolated else token)
    try:
        streams, truncated, timed_out = _collect(proc, tree, report_r, limits, start + limits.timeout)
    finally:
        tree.kill()
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        os.close(report_r)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - start
    stdout, stderr = (streams[k].decode("utf-8", "replace") for k in ("stdout", "stderr"))
    returncode = None if timed_out else _returncode(proc.returncode, found)
    return Result(_status(returncode, stderr), stdout, stderr, returncode, seconds, streams["report"], truncated)


def _collect(
    proc: subprocess.Popen, tree: _Tree, report_r: int, limits: Limits, deadline: float
) -> tuple[dict[str, bytes], bool, bool]:
    """Read stdout, stderr and the report until they close or the deadline passes; keep the first bytes of each.

    Read, not ``communicate``: an output bomb must cost nothing beyond its cap.
    """
    caps = {"stdout": limits.output_bytes, "stderr": limits.output_bytes, "report": REPORT_CAP}
    bufs = {name: bytearray() for name in caps}
    truncated = False
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    sel.register(report_r, selectors.EVENT_READ, "report")
    exited = False
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                return {k: bytes(v) for k, v in bufs.items()}, truncated, not tree.exited()
            if not exited and tree.exited():
                # The program is done; whatever still holds its pipes (a daemon, without bubblewrap) goes now.
                exited = True
                tree.kill()
                deadline = min(deadline, now + 0.5)
            for key, _ in sel.select(min(deadline - now, 0.05)):
                fd = key.fileobj if isinstance(key.fileobj, int) else key.fileobj.fileno()
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                buf, room = bufs[key.data], caps[key.data] - len(bufs[key.data])
                truncated |= len(data) > room and key.data != "report"
                buf += data[: max(room, 0)]
    finally:
        sel.close()
    return {k: bytes(v) for k, v in bufs.items()}, truncated, False


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
    if returncode is None or returncode == -signal.SIGXCPU:
        return "timeout"
    if returncode == 0:
        return "ok"
    tail = stderr[-2000:]
    if "MemoryError" in tail or "Cannot allocate memory" in tail or "std::bad_alloc" in tail:
        return "memory"
    return "error"


@dataclass
class Job:
    """One program for ``run_many``."""

    source: str
    stdin: bytes = b""
    args: list[str] = field(default_factory=list)


def run_many(
    jobs: Sequence[Job], limits: Limits | None = None, workers: int = 0, isolation: str = "auto"
) -> list[Result]:
    """Run ``jobs`` with at most ``workers`` at a time (0: one per CPU); results in order."""
    workers = workers or os.cpu_count() or 1
    mode(isolation)  # probe and warn once, before the threads start
    if len(jobs) <= 1 or workers == 1:
        return [run_python(j.source, stdin=j.stdin, args=j.args, limits=limits, isolation=isolation) for j in jobs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        runs = [
            pool.submit(run_python, j.source, stdin=j.stdin, args=j.args, limits=limits, isolation=isolation)
            for j in jobs
        ]
        return [r.result() for r in runs]
