"""Bubblewrap: the command line that isolates one run.

The sandbox sees a read-only system (/usr, /etc, the library dirs and the Python it runs on), a private
size-capped tmpfs at /tmp as its working directory and HOME, another at /dev/shm (POSIX shared memory, which
``multiprocessing`` needs), a minimal /dev and its own /proc; nothing of /home, /root, /work, /var or the host's
/tmp. It has its own PID, network (loopback only, down), IPC and UTS namespaces, and the seccomp filter of
``selfimprove.sandbox.seccomp``. When the sandbox's PID 1 dies, the kernel kills everything left in the
namespace, so nothing the program starts outlives the run; ``--die-with-parent`` makes that happen when we kill
bubblewrap.

Two ways to run it (docs/sandbox.md says why):

- as root: no user namespace. A user namespace would map the sandbox's user to root, and the kernel exempts
  root from RLIMIT_NPROC, so a fork storm would be bounded only by the timeout. Instead the bootstrap drops to
  a uid of its own (no capabilities, no_new_privs) after the limits are set, and the process limit holds.
- as any other user: bubblewrap's unprivileged mode, in a user namespace mapped to that user, with
  ``--disable-userns`` where this bubblewrap has it (0.8 and later): no further user namespace inside.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
NAMESPACES = ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts")


@dataclass(frozen=True)
class Bwrap:
    path: str
    as_root: bool  # bubblewrap runs as real root: no user namespace, the bootstrap drops to its own uid


def interpreter_dirs() -> list[str]:
    """Folders the sandboxed Python needs that the system dirs may not cover (pyenv, a source build)."""
    dirs = []
    for prefix in {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}:
        if not any(prefix == d or prefix.startswith(d + "/") for d in SYSTEM_DIRS):
            dirs.append(prefix)
    return sorted(dirs)


def _system_binds() -> list[str]:
    args = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for d in interpreter_dirs():
        # its parents are created in the sandbox's root; open them to the dropped uid (/root is 0700)
        parents = [p for p in _parents(d) if p not in SYSTEM_DIRS]
        args += [x for p in parents for x in ("--perms", "0755", "--dir", p)]
        args += ["--ro-bind", d, d]
    return args


def _parents(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]``."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


@functools.cache
def has_option(path: str, option: str) -> bool:
    """This bubblewrap knows ``option`` (``--disable-userns`` came in 0.8)."""
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return option in usage.split()


@functools.cache
def _static_args(path: str, as_root: bool) -> tuple[str, ...]:
    userns = () if as_root else ("--unshare-user",)
    if not as_root and has_option(path, "--disable-userns"):
        userns += ("--disable-userns",)
    return (
        *NAMESPACES,
        *userns,
        "--die-with-parent",
        "--new-session",  # no controlling terminal: a program cannot push keystrokes into ours (TIOCSTI)
        "--hostname",
        "sandbox",
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    )


def command(
    bw: Bwrap, argv: list[str], env: dict[str, str], tmp_bytes: int, seccomp_fd: int | None = None
) -> list[str]:
    """The bubblewrap command line that runs ``argv`` with exactly ``env`` (and the filter read from
    ``seccomp_fd``)."""
    envargs = [x for key, value in env.items() for x in ("--setenv", key, value)]
    workspace = ["--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    workspace += ["--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/dev/shm"]
    readonly_root = ["--remount-ro", "/"]  # the sandbox's own root tmpfs too, whoever owns it; /tmp stays writable
    seccomp = ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
    static = _static_args(bw.path, bw.as_root)
    return [bw.path, *static, *workspace, *readonly_root, *seccomp, "--clearenv", *envargs, "--", *argv]
