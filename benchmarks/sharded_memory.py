"""Per-process memory of the trained state, and the cost of gathering the weights for generation, with the online
trainer unsharded (one process) and sharded by FSDP2 over two processes (``trainer.sharding: fsdp``; torchrun, gloo).

Each side builds the trainer on the embedded SmolLM2-135M-Instruct with full fine-tuning (or ``--model``), makes one
GRPO update on ``--examples`` fixed examples, and counts the bytes each process holds of the parameters, of the
gradients (at the optimizer step, before they are freed) and of AdamW's state (after it). Then it times, on the
sharded side, gathering the whole model for generation and freeing it (``TrainedPolicy.gathered``, what the HF
generator does once per generate call) against all-gathering one FSDP module at a time, and one generate call of
``--prompts`` prompts x ``--max-new-tokens`` tokens, and one update, for the share of a step the gather costs.

Run:  .venv/bin/python benchmarks/sharded_memory.py [--model smollm2-135m-instruct] [--threads 1]
On one GPU (what the GPU check should call):  python benchmarks/sharded_memory.py --sides sharded-alone
(FSDP over a process group of one: the all-gather is a local copy, the rest of the gather is what it costs there).
Last line:  gather_share=<gather seconds / (gather + generation + update seconds)> of the sharded side
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

GB = 2**30


def local_bytes(tensor) -> int:
    from torch.distributed.tensor import DTensor

    if isinstance(tensor, DTensor):
        tensor = tensor.to_local()
    return tensor.numel() * tensor.element_size()


def work(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from selfimprove.config.schema import Adapter
    from selfimprove.generators import Request
    from selfimprove.generators.hf import HFGenerator
    from selfimprove.models.embedded import resolve
    from selfimprove.progress import Tracker
    from selfimprove.quiet import quiet_libraries
    from selfimprove.records import Example
    from selfimprove.training.sharding import gathered
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    quiet_libraries()
    torch.set_num_threads(args.threads)
    if args.side == "sharded-alone" and not dist.is_initialized():  # FSDP over a group of one process
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{args.port}", rank=0, world_size=1)
    sharding = "none" if args.side == "whole" else "fsdp"
    objective = GRPO(learning_rate=1e-6, max_completion_length=64)
    trainer = Trainer(resolve(args.model), Adapter(type="full"), objective, seed=0, total_steps=1, sharding=sharding)
    grads: list[int] = []
    optimizer = getattr(trainer.optimizers[0], "optimizer", trainer.optimizers[0])  # inside accelerate's wrapper
    optimizer.register_step_pre_hook(
        lambda opt, *_: grads.append(
            sum(local_bytes(p.grad) for g in opt.param_groups for p in g["params"] if p.grad is not None)
        )  # fmt: skip
    )
    examples = [
        Example(f"e{i}", [{"role": "user", "content": f"What is {i} + {i}?"}], f"{i} + {i} = {2 * i}. " * 4,
                reward=float(i % 2), group=f"g{i // 2}", role="solver")
        for i in range(args.examples)
    ]  # fmt: skip
    world, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
    start = time.perf_counter()
    trainer.step(examples, seed=0)
    update = time.perf_counter() - start
    params = sum(local_bytes(p) for p in trainer.actor.parameters())
    state = sum(local_bytes(v) for o in trainer.optimizers for s in o.state.values() for v in s.values()
                if torch.is_tensor(v))  # fmt: skip
    result = {"side": args.side, "processes": world, "params_gb": params / GB, "grads_gb": max(grads) / GB,
              "optimizer_gb": state / GB, "update_s": update}  # fmt: skip
    result["total_gb"] = result["params_gb"] + result["grads_gb"] + result["optimizer_gb"]
    if trainer.sharded:
        from torch.distributed.fsdp import FSDPModule

        def timed(block) -> float:
            dist.barrier()
            start = time.perf_counter()
            for _ in range(args.repeats):
                block()
            return (time.perf_counter() - start) / args.repeats

        def whole() -> None:
            with trainer.policy.gathered():
                pass

        modules = [m for m in trainer.actor.modules() if isinstance(m, FSDPModule)]

        def by_layer() -> None:
            for m in modules:
                m.unshard()
                m.reshard()

        whole()  # warm-up: the plain model for generation is made on first use
        result["gather_whole_s"], result["gather_by_layer_s"] = timed(whole), timed(by_layer)
        with gathered(trainer.actor):
            full = sum(p.numel() * p.element_size() for p in trainer.actor.parameters())
        result["gathered_gb"] = full / GB
        layers = [sum(p.numel() * p.element_size() for p in m.parameters()) for m in modules if m is not trainer.actor]
        result["largest_module_gb"] = max([*layers, full - sum(layers)]) / GB  # the root: embeddings, LM head
        generator = HFGenerator(temperature=1.0, max_new_tokens=args.max_new_tokens, batch_size=args.prompts)
        requests = [Request(f"r{i}", [{"role": "user", "content": f"What is {i} + 7?"}]) for i in range(args.prompts)]
        dist.barrier()
        start = time.perf_counter()
        for _ in generator.generate(trainer.policy, requests, seed=0, done=set(), tracker=Tracker(None, None),
                                    shard=(rank, world)):  # fmt: skip
            pass
        result["generate_call_s"] = time.perf_counter() - start  # includes one whole gather
    if rank == 0:
        print(json.dumps(result))


def side(name: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [__file__, "--work", name, "--model", args.model, "--threads", str(args.threads), "--examples",
               str(args.examples), "--prompts", str(args.prompts), "--max-new-tokens", str(args.max_new_tokens),
               "--repeats", str(args.repeats), "--port", str(port)]  # fmt: skip
    if name == "sharded":
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.processes),
                   "--master-port", str(port), *command]  # fmt: skip
    else:
        command = [sys.executable, *command]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--sides", default="whole,sharded", help="whole, sharded (torchrun), sharded-alone")
    parser.add_argument("--processes", type=int, default=2, help="processes of the sharded side")
    parser.add_argument("--threads", type=int, default=1, help="threads per process")
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", dest="side")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.side:
        work(args)
        return
    results = [side(name, args) for name in args.sides.split(",")]
    print(f"{args.model}, full fine-tuning, AdamW; {args.threads} thread(s) per process; GB = 2^30 bytes per process")
    for r in results:
        print(f"{r['side']:>13} x{r['processes']}: parameters {r['params_gb']:.3f} + gradients {r['grads_gb']:.3f} + "
              f"optimizer {r['optimizer_gb']:.3f} = {r['total_gb']:.3f} GB; update {r['update_s']:.1f} s")  # fmt: skip
    sharded = [r for r in results if "gather_whole_s" in r]
    for r in sharded:
        print(f"gather for generation ({r['side']} x{r['processes']}): whole {r['gather_whole_s']:.3f} s "
              f"(peak +{r['gathered_gb']:.3f} GB), one module at a time {r['gather_by_layer_s']:.3f} s "
              f"(peak +{r['largest_module_gb']:.3f} GB); one generate call ({args.prompts} prompts x "
              f"{args.max_new_tokens} tokens, gather included) {r['generate_call_s']:.1f} s")  # fmt: skip
    if sharded:
        r = sharded[-1]
        share = r["gather_whole_s"] / (r["generate_call_s"] + r["update_s"])
        print(f"gather_share={share:.4f}")


if __name__ == "__main__":
    main()
