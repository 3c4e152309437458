"""The sandbox on its own: results, limits, output caps, the report channel, isolation, the pool, the warning."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import time
import warnings

import pytest

from selfimprove.errors import UserError
from selfimprove.sandbox import Job, Limits, mode, run_many, run_pair, run_python
from selfimprove.sandbox import run as sandbox_run

MODES = ["bwrap", "none"] if shutil.which("bwrap") else ["none"]


@pytest.fixture(params=MODES)
def isolation(request) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mode(request.param)
        except UserError as exc:
            pytest.skip(str(exc))
    return request.param


def run(source: str, isolation: str, **limits) -> sandbox_run.Result:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_python(source, limits=Limits(**{"timeout": 2.0, **limits}), isolation=isolation)


def test_stdout_stderr_returncode(isolation):
    result = run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)", isolation)
    assert (result.status, result.stdout, result.stderr, result.returncode) == ("error", "out\n", "err\n", 3)
    assert run("print(6 * 7)", isolation).stdout == "42\n"
    assert run("pass", isolation).status == "ok"


def test_stdin_and_args(isolation):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = "import sys\nprint(sys.stdin.read().upper(), sys.argv[1:])"
        result = run_python(source, stdin=b"abc", args=["x", "y"], isolation=isolation)
    assert result.stdout == "ABC ['x', 'y']\n"
    big = b"z" * 300_000  # larger than a pipe's buffer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_python("import sys\nprint(len(sys.stdin.buffer.read()))", stdin=big, isolation=isolation).stdout == (
            "300000\n"
        )


def test_a_child_holding_the_pipes_does_not_hold_the_run(isolation):
    source = "import os, sys, time\nif os.fork() == 0:\n    time.sleep(30)\nelse:\n    print('bye' * 1000)"
    result = run(source, isolation, timeout=10)
    assert result.status == "ok" and result.stdout == "bye" * 1000 + "\n" and result.seconds < 5


def test_report_channel(isolation):
    assert run("import os\nos.write(3, b'done')", isolation).report == b"done"


def test_output_is_capped_and_flagged(isolation):
    result = run("print('x' * 100_000)", isolation, output_bytes=1000)
    assert len(result.stdout) == 1000 and result.truncated and result.status == "ok"


def test_timeout_kills_and_reports(isolation):
    start = time.monotonic()
    result = run("while True:\n    pass", isolation, timeout=0.5)
    assert result.status == "timeout" and result.returncode is None
    assert 0.5 <= time.monotonic() - start < 1.5


def test_cpu_limit_is_a_timeout(isolation):
    # 1 CPU-second within a generous wall clock: the kernel's SIGXCPU ends it (about 1 s on an idle machine)
    result = run("while True:\n    pass", isolation, timeout=10.0, cpu=1.0)
    assert result.status == "timeout" and result.returncode == -signal.SIGXCPU


def test_memory_limit(isolation):
    result = run("x = bytearray(600 * 1024 * 1024)", isolation, memory_mb=256)
    assert result.status == "memory"
    assert run("x = bytearray(100 * 1024 * 1024)\nprint(len(x))", isolation, memory_mb=512).stdout == "104857600\n"


def test_file_size_and_open_files(isolation):
    result = run("open('f', 'wb').write(b'x' * 3 * 1024 * 1024)", isolation, file_size_mb=1)
    assert result.status == "error" and "File too large" in result.stderr  # Python ignores SIGXFSZ: EFBIG
    result = run("import os\nfds = [os.open('/dev/null', os.O_RDONLY) for _ in range(100)]", isolation, open_files=50)
    assert "Too many open files" in result.stderr


def test_limits_reach_the_program(isolation):
    source = "import resource as r\nprint(r.getrlimit(r.RLIMIT_AS)[0] >> 20, r.getrlimit(r.RLIMIT_CORE))"
    assert run(source, isolation, memory_mb=300).stdout == "300 (0, 0)\n"


def test_environment_is_scrubbed(isolation, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_SECRET_TOKEN", "hunter2")
    result = run("import os\nprint(sorted(os.environ))", isolation)
    assert "SELFIMPROVE_SECRET_TOKEN" not in result.stdout and "hunter2" not in result.stdout


def test_bwrap_isolation():
    if "bwrap" not in MODES:
        pytest.skip("bubblewrap is not installed")
    source = """
import json, os, socket
try:
    open("/usr/pwned", "w")
except OSError as exc:
    readonly = exc.errno
try:
    os.mkdir("/pwned")
except OSError as exc:
    readonly_root = exc.errno
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1)
except OSError as exc:
    network = exc.errno
open("scratch", "w").write("ok")
print(json.dumps({
    "cwd": os.getcwd(), "home": os.environ["HOME"], "root": sorted(os.listdir("/")), "readonly": readonly,
    "readonly_root": readonly_root, "network": network, "scratch": open("/tmp/scratch").read(),
    "uid": os.getuid(), "pid": os.getpid(),
}))
"""
    seen = json.loads(run(source, "bwrap").stdout)
    assert seen["cwd"] == seen["home"] == "/tmp" and seen["scratch"] == "ok"
    assert set(seen["root"]) <= {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "root",
        "sbin",
        "tmp",
        "usr",
    }
    assert seen["readonly"] in (errno.EROFS, errno.EACCES) and seen["readonly_root"] == errno.EROFS
    assert seen["network"] == errno.ENETUNREACH
    assert seen["uid"] != 0 and seen["pid"] < 10  # its own PID namespace


def test_bwrap_tmp_is_size_capped():
    if "bwrap" not in MODES:
        pytest.skip("bubblewrap is not installed")
    source = "import os\nfor i in range(20):\n    open(f'f{i}', 'wb').write(b'x' * 2 ** 20)"
    assert "No space left on device" in run(source, "bwrap", tmp_mb=4).stderr


SYSCALLS = """
import ctypes, errno, json, os, threading, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def call(number, *args):
    return -ctypes.get_errno() if libc.syscall(number, *args) < 0 else 0
KEY_SPEC_SESSION_KEYRING = ctypes.c_long(-3)
refused = {
    "memfd_create": call(319, b"m", 0),
    "keyctl": call(250, 0, KEY_SPEC_SESSION_KEYRING, 0),
    "add_key": call(248, b"user", b"k", b"v", 1, KEY_SPEC_SESSION_KEYRING),
    "request_key": call(249, b"user", b"k", None, 0),
    "shmget": call(29, 0, 1 << 20, 0o1600),
    "msgget": call(68, 0, 0o1600),
    "semget": call(64, 0, 1, 0o1600),
    "inotify_init1": call(294, 0),
    "unshare": call(272, 0x10000000),
    "clone3": call(435, None, 0),
    "io_uring_setup": call(425, 1, None),
}
thread = threading.Thread(target=lambda: None)
thread.start()
thread.join()
works = subprocess.run(["/bin/echo", "ok"], capture_output=True, text=True).stdout
print(json.dumps({"refused": refused, "works": works}))
"""


def test_seccomp_filter_refuses_what_escapes_the_limits(isolation):
    """Keyrings, memfd, System V IPC, inotify and new namespaces fail with EPERM (clone3 with ENOSYS, so the C
    library falls back to clone); threads and processes still work. Bubblewrap loads the filter, or without it
    the bootstrap does."""
    if mode(isolation).seccomp is None:
        pytest.skip("libseccomp's binding is missing (the warning test covers that)")
    if os.uname().machine != "x86_64":
        pytest.skip("the system call numbers in this test are x86-64's")
    seen = json.loads(run(SYSCALLS, isolation).stdout)
    assert seen["works"] == "ok\n"
    assert seen["refused"] == {name: -errno.EPERM for name in seen["refused"]} | {"clone3": -errno.ENOSYS}


@pytest.mark.parametrize("asked", MODES)
def test_missing_seccomp_binding_is_a_loud_gap(monkeypatch, asked):
    monkeypatch.setattr(sandbox_run, "_modes", {})
    monkeypatch.setattr(sandbox_run, "_warned", False)
    monkeypatch.setattr(sandbox_run.seccomp, "bpf", lambda: "libseccomp's Python binding is not usable (test)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = mode(asked)
        assert run_python("print(1)", isolation=asked).stdout == "1\n"  # still runs, with the other limits
    assert found.isolated == (asked == "bwrap") and found.seccomp is None
    (message,) = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert "NOT FULLY ISOLATED" in message and "kernel keyrings, memfd" in message and "pyseccomp" in message


def test_multiprocessing_works(isolation):
    source = (
        "import multiprocessing as mp\ndef square(x):\n    return x * x\n"
        "with mp.Pool(2) as pool:\n    print(pool.map(square, [1, 2, 3]))"
    )
    assert run(source, isolation, timeout=10).stdout == "[1, 4, 9]\n"


def test_process_limit(isolation):
    if not mode(isolation).counts_processes:
        pytest.skip("root without a uid of its own is exempt from RLIMIT_NPROC in this mode")
    source = (
        "import os, time\nn = 0\ntry:\n    for _ in range(200):\n        if os.fork() == 0:\n"
        "            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)"
    )
    forked = int(run(source, isolation, processes=10, timeout=3).stdout)
    assert forked < 10


def test_runs_have_their_own_uid_when_root():
    found = mode(MODES[0])
    if not found.drop_uid:
        pytest.skip("runs get a uid of their own only when the verifier runs as root")
    results = run_many([Job("import os, time\ntime.sleep(0.3)\nprint(os.getuid())")] * 2, workers=2)
    uids = {int(r.stdout) for r in results}
    assert len(uids) == 2 and all(uid >= sandbox_run.UID_BASE for uid in uids)


def test_run_many_keeps_order_and_bounds_concurrency():
    jobs = [Job(f"import time\ntime.sleep(0.4)\nprint({i})") for i in range(4)]
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_many(jobs, workers=2)
    elapsed = time.monotonic() - start
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(4)]
    assert elapsed >= 0.8  # two waves of two


def test_limits_are_validated():
    with pytest.raises(UserError, match="memory_mb"):
        Limits(memory_mb=0)
    with pytest.raises(UserError, match="timeout"):
        Limits(timeout=-1)
    with pytest.raises(UserError, match="isolation"):
        mode("docker")


def test_fallback_warns_once_and_says_what_is_not_isolated(monkeypatch):
    monkeypatch.setattr(sandbox_run, "_modes", {})
    monkeypatch.setattr(sandbox_run, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_python("pass", isolation="none")
        run_python("pass", isolation="none")
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    assert "NOT FULLY ISOLATED" in messages[0] and "file system" in messages[0] and "network" in messages[0]


@pytest.mark.parametrize("which, message", [(None, "apt-get install bubblewrap"), ("/bin/false", "does not work")])
def test_bwrap_missing_or_broken(monkeypatch, which, message):
    """A trial run decides, not the binary's presence: a broken bwrap falls back (auto) or is an error (bwrap)."""
    monkeypatch.setattr(sandbox_run, "_modes", {})
    monkeypatch.setattr(sandbox_run.shutil, "which", lambda name: which)
    with pytest.raises(UserError, match=message):
        mode("bwrap")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not mode("auto").isolated
        assert run_python("print(1)", isolation="auto").stdout == "1\n"


def test_nothing_left_in_tmp_without_bwrap():
    before = {p for p in os.listdir("/tmp") if p.startswith("selfimprove-sandbox-")}
    run("open('x', 'w').write('y')", "none")
    after = {p for p in os.listdir("/tmp") if p.startswith("selfimprove-sandbox-")}
    assert after <= before


# -- two connected programs --------------------------------------------------------------------------------


def pair(driver: str, program: str, isolation: str, **limits) -> tuple[sandbox_run.Result, sandbox_run.Result]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_pair(Job(driver), Job(program), Limits(**{"timeout": 3.0, **limits}), isolation=isolation)


def test_pair_talks_over_its_pipes_and_only_the_driver_reports(isolation):
    driver = "import os\nos.write(5, b'ping')\nos.write(3, b'got ' + os.read(4, 100))"
    program = (
        "import os\ndata = os.read(4, 100)\n"
        "try:\n    os.fstat(3)\n    has3 = b'yes'\nexcept OSError:\n    has3 = b'no'\n"
        "os.write(5, data.upper() + b' fd3=' + has3)"
    )
    got, served = pair(driver, program, isolation)
    assert got.status == "ok" and got.report == b"got PING fd3=no"
    assert served.report == b""


def test_pair_driver_sees_the_end_of_the_program(isolation):
    driver = "import os\nos.write(3, b'eof' if os.read(4, 10) == b'' else b'data')"
    got, served = pair(driver, "import os\nos._exit(7)", isolation)
    assert got.report == b"eof" and served.returncode == 7


def test_pair_program_is_killed_when_the_driver_ends(isolation):
    start = time.monotonic()
    got, served = pair("pass", "import time\nprint('up', flush=True)\ntime.sleep(30)", isolation, timeout=10)
    assert got.status == "ok" and served.returncode == -signal.SIGKILL
    assert time.monotonic() - start < 3


def test_pair_shares_one_deadline(isolation):
    start = time.monotonic()
    got, served = pair("import os\nos.read(4, 1)", "import time\ntime.sleep(30)", isolation, timeout=0.5)
    assert got.status == served.status == "timeout"
    assert time.monotonic() - start < 1.5


def test_pair_limits_apply_to_each(isolation):
    source = "import os, resource as r\nos.write({fd}, str(r.getrlimit(r.RLIMIT_AS)[0] >> 20).encode())"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, _ = run_pair(
            Job(source.format(fd=3) + "\nos.write(3, b' ' + os.read(4, 20))"),
            Job(source.format(fd=5)),
            Limits(memory_mb=300),
            program_limits=Limits(memory_mb=200),
            isolation=isolation,
        )
    assert got.report == b"300 200"


PROBE = """
import json, os
def token(pid):  # a run's command line ends with its token
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")[-2].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return ""
seen = sorted({token(pid) for pid in os.listdir("/proc") if pid.isdigit()})
os.write(FD, json.dumps([os.getuid(), token("self"), seen]).encode() + b"\\n")
"""


def test_pair_sides_cannot_see_each_other():
    if "bwrap" not in MODES:
        pytest.skip("bubblewrap is not installed")
    driver = PROBE.replace("FD", "3") + "os.close(5)\nos.write(3, os.read(4, 1 << 20))"
    results = {}
    for isolation in ("bwrap", "none"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = PROBE.replace("FD", "5") + "os.read(4, 1)"  # alive until the driver is done
            got, _ = run_pair(Job(driver), Job(program), Limits(timeout=3), isolation=isolation)
        results[isolation] = [json.loads(line) for line in got.report.decode().splitlines()]
    (uid_d, token_d, seen_d), (uid_p, token_p, seen_p) = results["bwrap"]
    assert token_d in seen_d and token_p in seen_p  # each sees itself...
    assert token_p not in seen_d and token_d not in seen_p  # ...not the other: separate PID namespaces
    if mode("bwrap").drop_uid:
        assert uid_d != uid_p
    (_, token_d, seen_d), (_, token_p, _) = results["none"]
    assert token_p in seen_d  # the probe works: without isolation the driver sees the program
