"""Resource limits for one sandboxed run, applied inside the child before the untrusted code starts."""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass, fields

from selfimprove.errors import UserError

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one run may use. Every limit applies in every isolation mode.

    ``timeout`` is wall-clock time, enforced from outside by killing the whole process tree; ``cpu`` (default:
    the timeout) is enforced by the kernel. ``processes`` counts processes and threads of the run's user, so it
    bounds fork storms only where the run has a user of its own (see docs/sandbox.md).
    """

    timeout: float = 5.0
    cpu: float | None = None
    memory_mb: int = 1024  # address space of each process
    file_size_mb: int = 16  # largest file a process may write
    processes: int = 32
    open_files: int = 256
    output_bytes: int = 64 * 1024  # kept per stream (stdout, stderr); the rest is read and dropped
    tmp_mb: int = 64  # size of the private writable /tmp (bubblewrap mode)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not value > 0:
                raise UserError(f"sandbox limit {f.name} must be positive, got {value!r}")

    def rlimits(self, base_processes: int = 0) -> list[tuple[int, int, int]]:
        """``(resource, soft, hard)`` triples for ``resource.setrlimit``.

        ``base_processes`` is how many tasks the run's user already has: RLIMIT_NPROC counts all of them.
        The CPU limit's soft edge sends SIGXCPU (reported as a timeout), the hard edge one second later SIGKILL.
        """
        cpu = math.ceil(self.cpu if self.cpu is not None else self.timeout)
        memory = self.memory_mb * MB
        return [
            (resource.RLIMIT_CPU, cpu, cpu + 1),
            (resource.RLIMIT_AS, memory, memory),
            (resource.RLIMIT_FSIZE, self.file_size_mb * MB, self.file_size_mb * MB),
            (resource.RLIMIT_NPROC, base_processes + self.processes, base_processes + self.processes),
            (resource.RLIMIT_NOFILE, self.open_files, self.open_files),
            (resource.RLIMIT_CORE, 0, 0),  # a segfault must not write a core file
        ]
