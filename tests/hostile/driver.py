"""Verify hostile programs and report what happened; run as PID 1 of a PID namespace by tests/test_hostile.py.

Reads ``{"isolation", "timeout", "memory_mb", "verifier", "arguments", "records"}`` as JSON on stdin, where
``verifier`` is ``code`` or ``executor``, ``arguments`` more verifier arguments, and each record is
``{"completion", "meta"}``. Verifies the records one after the other and prints one JSON line: each verdict
with the seconds its verification took, and the processes still alive in this namespace afterwards.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

from selfimprove.records import Rollout
from selfimprove.sandbox import mode
from selfimprove.verifiers.code import CodeVerifier
from selfimprove.verifiers.executor import ExecutorVerifier

VERIFIERS = {"code": CodeVerifier, "executor": ExecutorVerifier}


def survivors() -> list[str]:
    """Processes of this namespace other than this one that are not dead (zombies are reaped first)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    alive = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
        except OSError:
            continue
        if state not in "ZX":
            alive.append(f"{pid} {state} {cmdline}")
    return alive


def keys() -> list[str]:
    """Kernel keys and keyrings that the hostile cases name (``selfimprove-hostile``, ``answer``) and this process
    can see in /proc/keys: none may outlive a run."""
    try:
        with open("/proc/keys") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [line for line in lines if "selfimprove-hostile" in line or line.rstrip().endswith("answer: 1")]


def main() -> None:
    case = json.load(sys.stdin)
    warnings.simplefilter("ignore")
    mode(case["isolation"])  # probe before the clock starts
    arguments = {"timeout": case["timeout"], "memory_mb": case["memory_mb"], **case.get("arguments", {})}
    if case["verifier"] == "code":
        arguments["max_output"] = 4000
    verifier = VERIFIERS[case["verifier"]](**arguments, isolation=case["isolation"], workers=1)
    verdicts = []
    for i, record in enumerate(case["records"]):
        rollout = Rollout(f"r{i}", "solver", "p", [], record["completion"], meta=record["meta"])
        start = time.monotonic()
        verdict = verifier.verify([rollout])[0]
        verdicts.append({"passed": verdict.passed, "info": verdict.info, "seconds": time.monotonic() - start})
    left = survivors()
    for _ in range(20):  # a SIGKILLed process may take a moment to be gone
        if not left:
            break
        time.sleep(0.05)
        left = survivors()
    print(json.dumps({"verdicts": verdicts, "survivors": left, "keys": keys()}), flush=True)


if __name__ == "__main__":
    main()
