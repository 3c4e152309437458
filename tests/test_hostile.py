"""Hostile programs through the code verifier, and reward hacks through the code and executor verifiers.

A hostile program (``CASES``) must be contained: the verdict is not passed, the verifying process survives and
reports, nothing the program started is alive afterwards, and the verification ends within its timeout plus one
second. A reward hack (``tests/hostile/hacks.py``) is a wrong program that tries to be judged right: it must not
pass, and a right program for the same check must pass, in the same mode. Each is verified by
tests/hostile/driver.py running as PID 1 of its own PID namespace (``unshare``), so a program that escapes can
harm only that namespace, and "nothing left behind" is simply "no other process in it".

Everything runs in every isolation mode this machine has (bubblewrap, and limits only). Programs whose
containment needs isolation (files, network, other processes) or a process limit are skipped, with the reason,
in a mode that does not give it. All cases run concurrently from one fixture so the suite takes seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from selfimprove.sandbox import mode
from selfimprove.sandbox.plain import decode, encode
from selfimprove.verifiers.code import verdict_limits

sys.path.insert(0, str(Path(__file__).parent))
from hostile.hacks import HACKS, Hack  # noqa: E402

DRIVER = Path(__file__).parent / "hostile" / "driver.py"
ROOT = Path(__file__).resolve().parent.parent
TESTS = "assert add(2, 3) == 5\n"
ISOLATION, NPROC, SECCOMP = "isolation", "process limit", "seccomp"


@dataclass
class Case:
    program: str
    tests: str = TESTS
    timeout: float = 1.0
    memory_mb: int = 1024
    needs: str | None = None  # ISOLATION, NPROC or SECCOMP: what containment of this program depends on
    then: str | None = None  # a second program verified after the first (same tests): it must not pass


def program(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


CASES = {
    # time
    "infinite_loop": Case("while True:\n    pass"),
    "sleep_forever": Case("import time\ntime.sleep(1000)"),
    "signal_ignoring_loop": Case(
        program("""
        import signal
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM):
            signal.signal(s, signal.SIG_IGN)
        while True:
            pass
        """)
    ),
    "spinning_threads": Case(
        program("""
        import threading
        def spin():
            while True:
                pass
        for _ in range(8):
            threading.Thread(target=spin, daemon=True).start()
        spin()
        """)
    ),
    "output_bomb": Case(
        program("""
        import sys
        while True:
            sys.stdout.write("x" * 65536)
            sys.stderr.write("y" * 65536)
        """)
    ),
    # processes
    "fork_storm": Case(
        program("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """),
        needs=NPROC,
    ),
    "fork_storm_sleepers": Case(
        program("""
        import os, time
        for _ in range(100000):
            try:
                if os.fork() == 0:
                    time.sleep(1000)
            except OSError:
                pass
        time.sleep(1000)
        """),
        needs=NPROC,
    ),
    "double_fork_daemon": Case(
        program("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1000)
            os._exit(0)
        raise SystemExit(0)
        """)
    ),
    "daemon_exec_sleep": Case(
        program("""
        import os
        if os.fork() == 0:
            os.setsid()
            os.execv("/bin/sleep", ["sleep", "1000"])
        """)
    ),
    "daemon_scrubbed_env": Case(
        program("""
        import os
        if os.fork() == 0:
            os.setsid()
            os.execve("/bin/sleep", ["sleep", "1000"], {})
        """),
        needs=ISOLATION,
    ),
    "daemon_ignoring_signals": Case(
        program("""
        import os, signal, time
        if os.fork() == 0:
            os.setsid()
            for s in range(1, 32):
                try:
                    signal.signal(s, signal.SIG_IGN)
                except (OSError, ValueError):
                    pass
            while True:
                time.sleep(0.01)
        """)
    ),
    "kill_parent": Case("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", needs=ISOLATION),
    "kill_everything": Case("import os, signal\nos.kill(-1, signal.SIGKILL)", needs=ISOLATION),
    # memory, disk, descriptors, stack, crashes
    "memory_bomb": Case("x = bytearray(16 * 1024 ** 3)"),
    "memory_growth": Case(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))", timeout=2.0, memory_mb=256
    ),
    "disk_bomb_one_file": Case("with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 2 ** 20)"),
    "disk_bomb_many_files": Case(
        program("""
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        i = 0
        while True:
            with open(f"f{i}", "wb") as f:
                f.write(b"x" * 2 ** 22)
            i += 1
        """),
        needs=ISOLATION,
    ),
    "descriptor_exhaustion": Case(
        "import os\nfds = []\nwhile True:\n    fds.append(os.open('/dev/null', os.O_RDONLY))"
    ),
    "pipe_exhaustion": Case("import os\npipes = []\nwhile True:\n    pipes.append(os.pipe())"),
    "deep_recursion": Case("def down(n):\n    return down(n + 1)\ndown(0)"),
    "c_stack_overflow": Case(
        "import sys\nsys.setrecursionlimit(10 ** 8)\ndef down(n):\n    return down(n + 1) + 1\ndown(0)"
    ),
    "segfault": Case("import ctypes\nctypes.string_at(0)"),
    "abort": Case("import os\nos.abort()"),
    # faked passes: each defines a wrong add(), so only a faked pass could pass
    "early_os_exit": Case("def add(a, b):\n    return 0\nimport os\nos._exit(0)"),
    "early_sys_exit": Case("def add(a, b):\n    return 0\nimport sys\nsys.exit(0)"),
    "exit_in_tests": Case("def add(a, b):\n    return 0", tests="import os\nos._exit(0)\n" + TESTS),
    "printed_success": Case(
        program("""
        print("passed")
        print("All tests passed!")
        print('{"passed": true, "status": "passed"}')
        def add(a, b):
            return 0
        """)
    ),
    "forged_report": Case(
        program("""
        import os, secrets
        os.write(3, b'{"status": "passed"}\\n' + secrets.token_hex(16).encode() + b"\\n")
        os._exit(0)
        """)
    ),
    "replaced_exec_and_exit": Case(
        program("""
        import builtins, os
        builtins.exec = lambda *args, **kwargs: None
        os._exit = lambda code: None
        def add(a, b):
            return 0
        """)
    ),
    "nonce_from_main_module": Case(
        program("""
        import __main__, os, re
        found = set()
        for value in vars(__main__).values():
            code = value if hasattr(value, "co_consts") else getattr(value, "__code__", None)
            for const in getattr(code, "co_consts", ()):
                if isinstance(const, str) and re.fullmatch("[0-9a-f]{32}", const):
                    found.add(const)
        for nonce in found:
            os.write(3, (nonce + "\\n").encode())
        os._exit(0)
        """)
    ),
    # files, environment, network: the tests pass exactly when the attack works
    "read_file_outside": Case(
        "SECRET = open(SECRET_FILE).read()", tests="assert SECRET == SECRET_VALUE\n", needs=ISOLATION
    ),
    "delete_file_outside": Case("import os\nos.remove(SECRET_FILE)\ndef add(a, b):\n    return 0", needs=ISOLATION),
    "write_file_outside": Case("open(TARGET, 'w').write('pwned')\ndef add(a, b):\n    return 0", needs=ISOLATION),
    "read_env_secret": Case(
        "import os\nSECRET = os.environ.get('SELFIMPROVE_TEST_SECRET')", tests="assert SECRET == SECRET_VALUE\n"
    ),
    "read_parent_environ": Case(
        program("""
        import os
        SECRET = b""
        for pid in (os.getppid(), 1):
            try:
                SECRET += open(f"/proc/{pid}/environ", "rb").read()
            except OSError:
                pass
        """),
        tests="assert SECRET_VALUE.encode() in SECRET\n",
        needs=ISOLATION,
    ),
    "connect_localhost": Case(
        program("""
        import socket
        s = socket.create_connection(("127.0.0.1", PORT), timeout=0.5)
        s.sendall(b"hello")
        """),
        tests="assert True\n",
        needs=ISOLATION,
    ),
}

# Each defines the right add() only when its attack worked, so a pass means a leak (see the test's docstring).
LIBC = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
RIGHT_ADD = "def add(a, b):\n    return a + b\n"
LEAKS = {
    # memory outside the address-space limit (memory_mb=64): 640 MB held, then add() is right
    "memfd_outside_the_memory_limit": Case(
        "import os\nfds = [os.memfd_create('hold') for _ in range(40)]\nfor fd in fds:\n"
        "    os.write(fd, b'x' * (15 << 20))\n" + RIGHT_ADD,
        memory_mb=64,
        needs=SECCOMP,
    ),
    "memfd_by_raw_system_call": Case(
        LIBC + "import os\nfor _ in range(40):\n    fd = libc.syscall(319, b'hold', 0)\n"
        "    assert fd >= 0, ctypes.get_errno()\n    os.write(fd, b'x' * (15 << 20))\n" + RIGHT_ADD,
        memory_mb=64,
        needs=SECCOMP,
    ),
    "sysv_shared_memory_outside_the_limit": Case(
        LIBC + "libc.shmat.restype = ctypes.c_void_p\nfor _ in range(40):\n"
        "    seg = libc.shmget(0, 16 << 20, 0o1600)\n    assert seg >= 0, ctypes.get_errno()\n"
        "    at = libc.shmat(seg, None, 0)\n    assert at not in (None, 2 ** 64 - 1)\n"
        "    ctypes.memset(at, 1, 16 << 20)\n    libc.shmdt(ctypes.c_void_p(at))\n" + RIGHT_ADD,
        memory_mb=64,
        timeout=3.0,
        needs=SECCOMP,
    ),
    "sysv_message_queues_hold_memory": Case(
        LIBC + "buf = ctypes.create_string_buffer(8 + 8192)\nbuf[0] = 1\nfor _ in range(2000):\n"
        "    q = libc.msgget(0, 0o1600)\n    assert q >= 0, ctypes.get_errno()\n"
        "    libc.msgsnd(q, buf, 8192, 0o4000)\n    libc.msgsnd(q, buf, 8192, 0o4000)\n" + RIGHT_ADD,
        needs=SECCOMP,
    ),
    # kernel keyrings: a value stored by one run, read back by a later one (add() then returns it)
    "keyring_user_keyring_across_runs": Case(
        LIBC + "KEY = libc.syscall(248, b'user', b'selfimprove-hostile', b'5', 1, ctypes.c_long(-4))\n" + RIGHT_ADD,
        then=LIBC
        + "key = libc.syscall(249, b'user', b'selfimprove-hostile', None, 0)\nbuf = ctypes.create_string_buffer(8)\n"
        "n = libc.syscall(250, 11, key, buf, 8)\ndef add(a, b):\n    return int(buf.value or b'0') if n > 0 else 0\n",
        tests="assert add(2, 3) == 5\n",
        needs=SECCOMP,
    ),
    "keyring_named_session_across_runs": Case(
        LIBC + "libc.syscall(250, 1, b'selfimprove-hostile')\n"
        "libc.syscall(248, b'user', b'answer', b'5', 1, ctypes.c_long(-3))\n" + RIGHT_ADD,
        then=LIBC + "libc.syscall(250, 1, b'selfimprove-hostile')\n"
        "key = libc.syscall(249, b'user', b'answer', None, 0)\nbuf = ctypes.create_string_buffer(8)\n"
        "n = libc.syscall(250, 11, key, buf, 8)\ndef add(a, b):\n    return int(buf.value or b'0') if n > 0 else 0\n",
        tests="assert add(2, 3) == 5\n",
        needs=SECCOMP,
    ),
    "keyring_inherited_session": Case(
        LIBC + "buf = ctypes.create_string_buffer(4096)\nn = libc.syscall(250, 6, ctypes.c_long(-3), buf, 4096)\n"
        "assert n >= 0, ctypes.get_errno()\n" + RIGHT_ADD,
        needs=SECCOMP,
    ),
    # watching which files the tests' process opens (it imports json before calling add)
    "inotify_watches_the_tests_process": Case(
        program("""
        import ctypes, os, sysconfig, threading
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(0)
        assert fd >= 0, ctypes.get_errno()
        libc.inotify_add_watch(fd, sysconfig.get_paths()["stdlib"].encode() + b"/json", 0x20)  # IN_OPEN
        seen = []
        threading.Thread(target=lambda: seen.append(os.read(fd, 4096)), daemon=True).start()
        def add(a, b):
            return a + b if seen else 0
        """),
        tests="import json\nimport time\ntime.sleep(0.3)\nassert add(2, 3) == 5\n",
        timeout=2.0,
        needs=SECCOMP,
    ),
    "inotify_by_raw_system_call": Case(LIBC + "assert libc.syscall(253) >= 0\n" + RIGHT_ADD, needs=SECCOMP),
    # new user namespaces (kernel attack surface)
    "unshare_a_user_namespace": Case(
        LIBC + "assert libc.unshare(0x10000000) == 0, ctypes.get_errno()\n" + RIGHT_ADD,
        needs=SECCOMP,
    ),
    "unshare_command": Case(
        "import subprocess\nassert subprocess.run(['unshare', '-U', 'true']).returncode == 0\n" + RIGHT_ADD,
        needs=SECCOMP,
    ),
    "clone3_a_user_namespace": Case(
        LIBC + "args = (ctypes.c_uint64 * 11)(0x10000000, 0, 0, 0, 17)\npid = libc.syscall(435, args, 88)\n"
        "if pid == 0:\n    libc._exit(0)\nassert pid > 0, ctypes.get_errno()\n" + RIGHT_ADD,
        needs=SECCOMP,
    ),
}
CASES |= LEAKS
BACKTRACK = "```" + " " * 28_000 + "x" * 28_000  # 8-10 s in the old fence regex
STALLS = {  # the verifier's own work on hostile text: each verdict within its limit
    "fence_without_a_closing_fence": Case(BACKTRACK),
    "fence_128k": Case("```python" + " " * 64_000 + "\n" + "`" * 64_000),
    "fences_on_one_line": Case("``` ```" * 40_000 + "\n" + RIGHT_ADD),
    "program_nested_too_deep_for_the_parser": Case("x = " + "(" * 100_000 + "1" + ")" * 100_000),
    "program_unary_chain": Case("x = " + "-" * 200_000 + "1\n" + RIGHT_ADD.replace("a + b", "0")),
    "tests_nested_too_deep_for_the_parser": Case(RIGHT_ADD, tests="assert add(2, 3) == " + "[" * 50_000),
    "equal_hash_set_answer": Case(
        "def add(a, b):\n    return {i * (2 ** 61 - 1) for i in range(25_000)}\n", tests="assert add(2, 3) == 5\n"
    ),
    "equal_hash_dict_answer": Case(
        "def add(a, b):\n    return {(i * (2 ** 61 - 1), 0): 0 for i in range(25_000)}\n",
        tests="assert add(2, 3) == 5\n",
    ),
}
CASES |= STALLS


def isolations() -> list[str]:
    return ["bwrap", "none"] if shutil.which("bwrap") else ["none"]


def unshare_prefix() -> list[str] | None:
    """A command prefix that runs a process as PID 1 of a new PID namespace with its own /proc, or None."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    return prefix if ok else None


def skip_reason(isolation: str, case: Case | Hack) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the limits-only mode's warning: expected here
            found = mode(isolation)
    except Exception as exc:  # bubblewrap asked for but not working here
        return str(exc)
    if case.needs == ISOLATION and not found.isolated:
        return "containing this needs isolation; the limits-only mode does not give it"
    if case.needs == SECCOMP and found.seccomp is None:
        return "the seccomp filter is missing here (libseccomp's binding): the warning says so"
    if case.needs == NPROC and not found.counts_processes:
        return "root without a uid of its own is exempt from RLIMIT_NPROC in this mode; a fork storm is unbounded"
    return None


def payload(name: str, isolation: str) -> dict:
    """What tests/hostile/driver.py verifies for a hostile case (one record) or a hack (the wrong program, then
    the right one)."""
    if name in CASES:
        case = CASES[name]
        records = [{"completion": p, "meta": {"tests": case.tests}} for p in [case.program, case.then] if p]
        return {"isolation": isolation, "timeout": case.timeout, "memory_mb": case.memory_mb, "verifier": "code",
                "records": records}  # fmt: skip
    hack = HACKS[name]
    meta = {"tests": hack.tests, **hack.meta} if hack.verifier == "code" else hack.meta
    records = [
        {"completion": hack.wrong, "meta": {**meta, **hack.wrong_meta}},
        {"completion": hack.right, "meta": meta},
    ]
    return {"isolation": isolation, "timeout": hack.timeout, "memory_mb": 1024, "verifier": hack.verifier,
            "arguments": hack.arguments, "records": records}  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Run every (case or hack, isolation) once, concurrently; the tests below check the results."""
    prefix = unshare_prefix()
    if prefix is None:
        pytest.skip("no PID namespace available (unshare failed): hostile programs are not run outside one")
    tmp = tmp_path_factory.mktemp("hostile")
    secret = secrets.token_hex(8)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "SELFIMPROVE_TEST_SECRET": secret, "PYTHONPATH": path}

    def run(name: str, isolation: str) -> dict:
        secret_file, target = tmp / f"{name}-{isolation}-secret", tmp / f"{name}-{isolation}-target"
        secret_file.write_text(secret)
        secret_file.chmod(0o600)
        values = {
            "SECRET_FILE": repr(str(secret_file)),
            "SECRET_VALUE": repr(secret),
            "TARGET": repr(str(target)),
            "PORT": str(port),
        }
        text = json.dumps(payload(name, isolation))
        for key, value in values.items():
            text = text.replace(key, json.dumps(value)[1:-1])
        proc = subprocess.run(
            [*prefix, sys.executable, str(DRIVER)], input=text, capture_output=True, text=True, env=env, timeout=120
        )
        lines = proc.stdout.strip().splitlines()
        out = json.loads(lines[-1]) if proc.returncode == 0 and lines else {}
        out |= {
            "driver_rc": proc.returncode,
            "driver_stderr": proc.stderr[-2000:],
            "secret_intact": secret_file.exists() and secret_file.read_text() == secret,
            "target_written": target.exists(),
        }
        return out

    everything = {**CASES, **HACKS}
    jobs = [(n, i) for n in everything for i in isolations() if skip_reason(i, everything[n]) is None]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(jobs, pool.map(lambda job: run(*job), jobs), strict=True))
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    return results, secret, connected


def test_at_least_25_hostile_programs():
    assert len(CASES) >= 25


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_contained(name, isolation, outcomes):
    if isolation not in isolations():
        pytest.skip("bubblewrap is not installed")
    case = CASES[name]
    reason = skip_reason(isolation, case)
    if reason:
        pytest.skip(reason)
    results, secret, connected = outcomes
    out = results[(name, isolation)]
    assert out["driver_rc"] == 0, f"the verifying process was harmed: {out['driver_stderr']}"
    verdict = out["verdicts"][-1]  # with ``then``, the second program is the one that must not pass
    out |= verdict
    assert out["passed"] is False, out["info"]
    assert out["info"]["status"] in ("failed", "timeout", "memory", "syntax", "error")
    assert out["survivors"] == [], "processes outlived the run"
    assert max(v["seconds"] for v in out["verdicts"]) <= verdict_limits(case.timeout, 64).timeout + 1.0
    assert out["keys"] == [], "a kernel key outlived the run"
    assert out["secret_intact"] and not out["target_written"]
    assert secret not in json.dumps(out["info"])
    if name == "connect_localhost":
        assert not connected
    if name == "output_bomb":
        assert out["info"]["status"] == "timeout"
        assert len(out["info"]["stdout"]) <= 4000
    if name in ("infinite_loop", "sleep_forever", "signal_ignoring_loop", "spinning_threads"):
        assert out["info"]["status"] == "timeout"
    if name in ("memory_bomb", "memory_growth"):
        assert out["info"]["status"] == "memory"


def test_at_least_40_reward_hacks_all_valid_python():
    assert len(HACKS) >= 40
    for name, hack in HACKS.items():
        for source in (hack.wrong, hack.right, hack.tests):
            compile(source.replace("SECRET_VALUE", "'s'").replace("TARGET", "'t'"), name, "exec")


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
@pytest.mark.parametrize("name", sorted(HACKS))
def test_hack_fails_and_the_right_program_passes(name, isolation, outcomes):
    if isolation not in isolations():
        pytest.skip("bubblewrap is not installed")
    hack = HACKS[name]
    reason = skip_reason(isolation, hack)
    if reason:
        pytest.skip(reason)
    results, _, _ = outcomes
    out = results[(name, isolation)]
    assert out["driver_rc"] == 0, f"the verifying process was harmed: {out['driver_stderr']}"
    wrong, right = out["verdicts"]
    assert wrong["passed"] is False and wrong["info"]["status"] != "syntax", wrong["info"]
    assert right["passed"] is True, right["info"]
    assert out["survivors"] == [], "processes outlived the run"
    assert max(wrong["seconds"], right["seconds"]) <= verdict_limits(hack.timeout, 64).timeout + 1.0
    assert not out["target_written"]
    if hack.verifier == "executor":  # an output is always a plain value, in its canonical text
        for verdict in (wrong, right):
            output = verdict["info"]["output"]
            assert output is None or encode(decode(output)) == output
