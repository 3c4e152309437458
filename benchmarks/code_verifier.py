"""Throughput of the code verifier: small programs with unit tests through the sandbox vs plain subprocess.run.

Both sides run the same programs (a solution then its asserts) with the same concurrency (``--workers``,
default 2: this machine's cores). The sandbox side is ``CodeVerifier.verify`` on all of them: two sandboxes per
program (bubblewrap when it works here, resource limits), the program in one and its tests in the other, joined
by pipes that carry plain values; the plain side is ``subprocess.run([sys.executable, "-c", ...])``
per program from a thread pool of the same size, with no isolation or limits. A third line runs plain
subprocesses with the sandbox's interpreter flags (``-I -S -B``), which separates the cost of isolation from the
cost of this venv's site-packages start-up. Prints programs/s for each, then ``ratio=<sandbox/plain>`` last.

    .venv/bin/python benchmarks/code_verifier.py [--programs 500] [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from selfimprove.records import Rollout
from selfimprove.sandbox import mode
from selfimprove.sandbox.run import interpreter
from selfimprove.verifiers.code import CodeVerifier

TEMPLATES = [
    ("def solve(xs):\n    return sum(xs)\n", "assert solve([{a}, {b}]) == {a} + {b}\n"),
    ("def solve(s):\n    return s[::-1]\n", "assert solve('ab{a}') == '{a}ba'\n"),
    (
        "def solve(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
        "assert solve(10) == 55\nassert solve({a} % 20) >= 0\n",
    ),
    ("def solve(xs):\n    return sorted(xs)\n", "assert solve([{b}, {a}, 0]) == sorted([0, {a}, {b}])\n"),
    ("def solve(n):\n    return n * 2\n", "assert solve({a}) == {a} + {a} + 1\n"),  # fails on purpose
]


def programs(n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        code, tests = TEMPLATES[i % len(TEMPLATES)]
        out.append((code, tests.format(a=i, b=i * 7 % 13)))
    return out


def plain(jobs: list[tuple[str, str]], workers: int, argv: list[str]) -> tuple[float, int]:
    def run(job: tuple[str, str]) -> bool:
        done = subprocess.run([*argv, "-c", job[0] + job[1]], capture_output=True, timeout=30)
        return done.returncode == 0

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        passed = sum(pool.map(run, jobs))
    return time.perf_counter() - start, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    jobs = programs(args.programs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = mode("auto")
    print(f"sandbox mode: {'bubblewrap' if found.isolated else 'limits only'}, workers={args.workers}")

    verifier = CodeVerifier(timeout=10, workers=args.workers)
    rollouts = [Rollout(f"r{i}", "solver", f"p{i}", [], code, meta={"tests": t}) for i, (code, t) in enumerate(jobs)]
    start = time.perf_counter()
    verdicts = verifier.verify(rollouts)
    sandbox_s, sandbox_passed = time.perf_counter() - start, sum(v.passed for v in verdicts)

    plain_s, plain_passed = plain(jobs, args.workers, [sys.executable])
    flags_s, flags_passed = plain(jobs, args.workers, [interpreter(), "-I", "-S", "-B"])
    if not sandbox_passed == plain_passed == flags_passed:
        sys.exit(f"disagreement: sandbox passed {sandbox_passed}, plain {plain_passed}, plain -I -S {flags_passed}")

    n = len(jobs)
    print(f"programs={n} passed={sandbox_passed} (each side agrees)")
    print(f"sandbox: {n / sandbox_s:.1f} programs/s ({sandbox_s:.1f} s)")
    print(f"plain subprocess.run [sys.executable, -c]: {n / plain_s:.1f} programs/s ({plain_s:.1f} s)")
    print(f"plain subprocess.run [python -I -S -B, -c]: {n / flags_s:.1f} programs/s ({flags_s:.1f} s)")
    print(f"ratio_vs_same_flags={flags_s / sandbox_s:.2f}")
    print(f"ratio={plain_s / sandbox_s:.2f}")


if __name__ == "__main__":
    main()
