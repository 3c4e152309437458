"""Generation shared out over processes: the same requests with 1 and with 2 processes (torchrun, gloo), and with
1 process of twice the threads.

The loop's generation stage (``selfimprove.loop.stages.Stages.generate``) samples ``--prompts`` arithmetic prompts x
``--samples`` from the embedded SmolLM2-135M-Instruct in batches of ``--batch-size``; under two processes each takes
every other batch (the same batches and seeds as one process) and the shares are gathered after each round. Each
process gets ``--threads`` threads, so two processes use twice the cores of one, as two GPUs would: the first ratio
is how close sharing comes to halving the time (0.5). On a machine whose cores are all there is (this one: 2), the
real alternative to two processes is one process with all the threads: the second ratio, printed last, compares
those two at the same cores. The stage's wall time is measured on the main process after the model is loaded and
warmed up; one and two processes must produce the same records (with another thread count, float sums round
differently and sampling can part).

Run:  .venv/bin/python benchmarks/sharded_generation.py [--prompts 32] [--samples 2] [--batch-size 8] [--threads 1]
Last line:  ratio=<2 processes x T threads / 1 process x 2T threads, wall seconds>
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def work(args: argparse.Namespace) -> None:
    """One side: generate (under torchrun when there are two processes) and print the stage's seconds."""
    import torch

    from selfimprove.config.schema import Component, Prompt
    from selfimprove.loop.distributed import Processes
    from selfimprove.loop.stages import Stages
    from selfimprove.models import Policy
    from selfimprove.models.embedded import resolve
    from selfimprove.models.live import LoadedPolicy
    from selfimprove.prompts import render
    from selfimprove.quiet import quiet_libraries
    from selfimprove.rundir import RunDir
    from selfimprove.tasks.arithmetic import Arithmetic

    quiet_libraries()
    torch.set_num_threads(args.threads)
    procs = Processes.current()
    problems = Arithmetic().load("train")[: args.prompts]
    prompt = Prompt(system='Solve the problem. Write the calculation, then "The answer is N."')
    jobs = [(p, render(prompt, p), None) for p in problems]
    generator = Component("generator", "hf").build(temperature=1.0, max_new_tokens=args.max_new_tokens,
                                                   batch_size=args.batch_size)  # fmt: skip
    policy = LoadedPolicy(Policy(resolve("smollm2-135m-instruct")))
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: the first batches pay one-off costs
        warm = Stages(RunDir(tmp), 1, procs, show_progress=False)
        warm.generate("warm.jsonl", generator, policy, jobs[: args.batch_size], "warm", 1, 1)
    run = Stages(RunDir(args.out), 0, procs, show_progress=False)
    procs.share(None)  # start together
    start = time.perf_counter()
    rollouts = run.generate("rollouts.jsonl", generator, policy, jobs, "solver", args.samples, 0)
    seconds = time.perf_counter() - start
    if procs.is_main:
        print(json.dumps({"seconds": seconds, "rollouts": len(rollouts), "per_process": procs.take_generated()}))
    else:
        procs.take_generated()


def side(processes: int, threads: int, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [__file__, "--work", "--out", str(out), "--prompts", str(args.prompts), "--samples", str(args.samples),
               "--batch-size", str(args.batch_size), "--threads", str(threads),
               "--max-new-tokens", str(args.max_new_tokens)]  # fmt: skip
    if processes == 1:
        command = [sys.executable, *command]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # torchrun, not accelerate launch: with --cpu that starts one process whatever --num_processes says
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
                   "--master-port", str(port), *command]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{processes} processes failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="threads per process")
    parser.add_argument("--work", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.work:
        work(args)
        return
    t = args.threads
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"one": (1, t), "wide": (1, 2 * t), "two": (2, t)}
        seconds = {name: side(p, k, args, Path(tmp) / name) for name, (p, k) in runs.items()}
        records = {name: (Path(tmp) / name / "rollouts.jsonl").read_text() for name in runs}
    one, wide, two = seconds["one"], seconds["wide"], seconds["two"]
    requests = args.prompts * args.samples
    print(f"{requests} requests ({args.prompts} prompts x {args.samples}), batches of {args.batch_size}, "
          f"{args.max_new_tokens} new tokens")  # fmt: skip
    print(f"1 process,   {t} thread(s):  {one['seconds']:.1f} s  (requests per process {one['per_process']})")
    print(f"1 process,   {2 * t} thread(s):  {wide['seconds']:.1f} s")
    print(f"2 processes, {t} thread(s) each: {two['seconds']:.1f} s  (requests per process {two['per_process']})")
    # the same threads per process: the same numbers; another thread count rounds sums otherwise, and sampling follows
    print(f"same records, 1 and 2 processes: {records['one'] == records['two']}; "
          f"1 process of {2 * t} threads: {records['wide'] == records['one']}")  # fmt: skip
    print(f"ratio against 1 process of {t} thread(s) (twice the cores: 0.5 is perfect): "
          f"{two['seconds'] / one['seconds']:.2f}")  # fmt: skip
    print(f"ratio={two['seconds'] / wide['seconds']:.2f}")


if __name__ == "__main__":
    main()
