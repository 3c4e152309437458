"""The seccomp filter of the bubblewrap mode: system calls that would let a program out of its limits, refused.

Built once per process with libseccomp (through ``pyseccomp``, its ctypes binding; the BPF program is libseccomp's
own, for this machine's architecture, with every other architecture's calls, i386 and x32 included, killing the
process) and handed to bubblewrap with ``--seccomp FD``, which loads it after the sandbox is set up, so it holds
for the whole run and everything the run starts. Every other system call is allowed: the limits and namespaces
already bound them (docs/sandbox.md). What is refused, each group for the one property it protects:

- memory the address-space limit does not count: ``memfd_create`` and ``memfd_secret`` (an anonymous file a
  process writes into holds memory outside RLIMIT_AS: 640 MB under a 64 MB limit), System V shared memory,
  message queues and semaphores (kernel memory that outlives the process);
- state shared beyond the run: the kernel keyrings (``add_key``, ``keyctl``, ``request_key``: per uid, not per
  namespace, so a key outlives the run and a later run with the same uid reads it back; a session keyring the
  verifier runs under would be inherited), and ``inotify`` (watching which files the tests' process opens);
- new namespaces: ``unshare``, ``setns``, ``clone`` with a namespace flag, and ``clone3``, whose flags a filter
  cannot read (refused with ENOSYS, so the C library falls back to ``clone``): a user namespace gives a process
  capabilities inside it, which is kernel attack surface a Python program never needs;
- kernel surface that no standard-library program uses: ``bpf``, ``perf_event_open``, ``userfaultfd``,
  ``io_uring_*``, loading kernels and modules.

Refused calls fail with EPERM (ENOSYS for ``clone3``), as under Docker's default profile, so a program sees an
ordinary ``OSError`` rather than being killed.
"""

from __future__ import annotations

import errno
import functools
import tempfile

REFUSED = (
    "memfd_create", "memfd_secret", "shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl",
    "add_key", "keyctl", "request_key", "inotify_init", "inotify_init1", "fanotify_init",
    "unshare", "setns",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
)  # fmt: skip
CLONE_NAMESPACES = (  # CLONE_NEW* flags of clone(2)
    0x00000080, 0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
)  # fmt: skip


@functools.cache
def bpf() -> bytes | str:
    """The filter as a BPF program for ``bwrap --seccomp``, or why it cannot be built here."""
    try:
        import pyseccomp as seccomp  # raises RuntimeError when libseccomp itself is missing
    except (ImportError, RuntimeError, OSError) as exc:
        return f"libseccomp's Python binding is not usable ({type(exc).__name__}: {exc}; pip install pyseccomp)"
    try:
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        for name in REFUSED:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        for flag in CLONE_NAMESPACES:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        with tempfile.TemporaryFile() as out:
            rules.export_bpf(out)
            out.seek(0)
            return out.read()
    except (OSError, ValueError, RuntimeError) as exc:  # e.g. a call this libseccomp does not know
        return f"libseccomp could not build the filter ({type(exc).__name__}: {exc})"
