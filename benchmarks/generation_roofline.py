"""Generation against this machine's limit: a GRPO step's sampling as a share of the matmul roofline, and where the
rest of the time goes.

1. The machine: fp32 matmul throughput (GFLOP/s) with ``--threads`` threads, the best of square products of a few
   sizes (the BLAS's peak; the skinny products of decoding reach less of it, which is part of the answer).
2. The roofline it implies for the model: ``GFLOP/s / (2 N)`` token-forwards per second, N the model's parameters
   (its tied embedding counted once, as the LM head's multiply).
3. One step of ``recipes/grpo_arithmetic.yaml``'s generation (its prompt with exemplars, problems x group samples,
   its temperature, new tokens and batch size) with the HF generator, after a warm-up step, the best of
   ``--repeats`` runs (a shared machine's neighbours only ever slow a run down), counting the
   token-forwards an ideal engine must run: each distinct prompt position once (a prefix shared by the batch once,
   as the generator computes it) and each sampled token; padding is not work.
4. With ``--cascade-ab N``: the step N times each with cascade attention on and off (``generator.cascade``),
   alternating, and whether both sample the same texts.
5. Where the time goes: a profile of the same step (the operators' own CPU time, top ``--top``), the share of
   computed positions that are padding, and the time outside operators (Python per token, the generate loop).

Prints the figures and last ``share=<achieved / roofline>``.

Run:  .venv/bin/python benchmarks/generation_roofline.py [--threads 2] [--problems 8] [--group 8] [--repeats 3]
          [--cascade-ab 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch


def matmul_gflops(threads: int, seconds: float = 2.0) -> float:
    """The best fp32 GFLOP/s of square matrix products of a few sizes, each run for about ``seconds``."""
    torch.set_num_threads(threads)
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start) / 1e9)
    return best


def cascade_ab(generator: Any, generate: Callable[[], list], rounds: int) -> None:
    """The step with cascade attention on and off, alternating, so that a drift in the machine's speed (minutes
    long on a shared VM) falls on both sides alike; and whether both sides sample the same texts."""
    import statistics

    times: dict[bool, list[float]] = {True: [], False: []}
    texts: dict[bool, list[str]] = {}
    for i in range(2 * rounds):
        generator.cascade = on = i % 2 == 0
        start = time.perf_counter()
        texts[on] = [o.text for o in generate()]
        times[on].append(time.perf_counter() - start)
    generator.cascade = True
    for on, name in ((True, "on "), (False, "off")):
        runs = ", ".join(f"{t:.1f}" for t in times[on])
        print(f"cascade {name}: best {min(times[on]):.2f} s, median {statistics.median(times[on]):.2f} s ({runs})")
    best = min(times[False]) / min(times[True])
    median = statistics.median(times[False]) / statistics.median(times[True])
    print(f"cascade speed-up: best {best:.2f}x, median {median:.2f}x; same texts: {texts[True] == texts[False]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--problems", type=int, default=8, help="problems per step (the recipe's loop.batch_size)")
    parser.add_argument("--group", type=int, default=8, help="samples per problem (the recipe's n)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the step; the best is reported")
    parser.add_argument("--top", type=int, default=12, help="operators in the profile")
    parser.add_argument(
        "--cascade-ab",
        type=int,
        default=0,
        metavar="N",
        help="also time the step N times each with cascade attention on and off, alternating",
    )
    args = parser.parse_args()

    from pathlib import Path

    from selfimprove.config import load_recipe
    from selfimprove.generators import Request
    from selfimprove.generators.hf import common_prefix
    from selfimprove.loop.engine import load_problems
    from selfimprove.loop.sampler import EpochSampler
    from selfimprove.models import Policy
    from selfimprove.models.embedded import resolve
    from selfimprove.models.live import LoadedPolicy
    from selfimprove.progress import Tracker
    from selfimprove.prompts import render, render_chat
    from selfimprove.quiet import quiet_libraries

    quiet_libraries()
    gflops = matmul_gflops(args.threads)
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / "grpo_arithmetic.yaml")
    policy = LoadedPolicy(Policy(resolve(recipe.model)))
    n = sum(p.numel() for p in policy.inference_model().parameters())
    roofline = gflops * 1e9 / (2 * n)
    generator = recipe.generator.build()
    sampler = EpochSampler(load_problems(recipe.task), args.problems, recipe.loop.seed)

    def requests(step: int) -> list[Request]:
        return [Request(f"{p.id}/{k}", render(recipe.roles[0].prompt, p)) for p in sampler.batch(step)
                for k in range(args.group)]  # fmt: skip

    def generate(batch: list[Request], seed: int) -> list:
        tracker = Tracker(None, None)
        return [o for b in generator.generate(policy, batch, seed=seed, done=set(), tracker=tracker) for o in b]

    generate(requests(1), seed=1)  # warm-up: one-off costs
    batch = requests(2)
    times = []
    for _ in range(args.repeats):  # the same seeded batch each time: the best time is the least disturbed one
        start = time.perf_counter()
        outputs = generate(batch, seed=2)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    tokenizer = policy.tokenizer
    prompts = [tokenizer(render_chat(tokenizer, r.messages), add_special_tokens=False)["input_ids"] for r in batch]
    prefix = common_prefix(prompts) if generator.share_prefix else 0
    generated = sum(o.num_tokens for o in outputs)
    needed = prefix + sum(len(p) - prefix for p in prompts) + generated
    # what the generator computed: per batch, the prefix once, then every row padded to the batch's widest row for
    # the prompt and decoding to the batch's longest completion
    computed = 0
    by_id = {o.id: o for o in outputs}
    for rows in generator.batches([len(p) for p in prompts]):
        width = max(len(prompts[i]) - prefix for i in rows)
        longest = max(by_id[batch[i].id].num_tokens for i in rows)
        computed += prefix + len(rows) * (width + longest)
    achieved = needed / seconds
    if args.cascade_ab:
        cascade_ab(generator, lambda: generate(batch, seed=2), args.cascade_ab)

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        start = time.perf_counter()
        generate(batch, seed=2)
        profiled = time.perf_counter() - start
    events = profile.key_averages()
    operators = sum(e.self_cpu_time_total for e in events) / 1e6  # the calling thread's time inside operators

    print(f"machine: fp32 matmul {gflops:.0f} GFLOP/s on {args.threads} thread(s)")
    print(f"model: {n / 1e6:.1f}M parameters; roofline {roofline:.0f} token-forwards/s (2 FLOPs per parameter)")
    print(f"step: {len(batch)} samples ({args.problems} problems x {args.group}), prompts {len(prompts[0])} tokens "
          f"({prefix} shared), {generated} tokens sampled, batch size {generator.batch_size}, "
          f"{generator.max_new_tokens} new tokens at most")  # fmt: skip
    print(f"generation: {seconds:.1f} s (best of {', '.join(f'{t:.1f}' for t in times)}), {needed} token-forwards "
          f"needed, {achieved:.0f}/s")  # fmt: skip
    print(f"padding: {1 - needed / computed:.1%} of the {computed} positions computed (rows decode to their batch's "
          "longest completion and pad to its widest prompt)")  # fmt: skip
    print(f"profile ({profiled:.1f} s under the profiler): time inside operators {operators:.1f} s; "
          f"outside operators (Python, the generate loop) about {max(0.0, profiled - operators):.1f} s")  # fmt: skip
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=40))
    print(f"share={achieved / roofline:.2f}")


if __name__ == "__main__":
    main()
