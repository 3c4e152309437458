"""Online GRPO end to end -- generation, verification, update -- ours against TRL's GRPOTrainer, on CPU.

Both sides train the embedded SmolLM2-135M-Instruct with the same LoRA adapter (r 16, all linear layers), on the same
problems in the same order (our sampler's draw for each step, handed to TRL unshuffled), with the same prompt (the
recipe's system message and exemplars, as chat messages), group size, max new tokens, temperature, learning rate,
loss (``grpo``: mean over each completion's tokens then over completions, group-normalised rewards, epsilon 0.2,
``--beta``), one optimizer step per generation batch (TRL's in micro-batches of ``--trl-micro-batch`` rows), and
the same reward (our ``numeric`` verifier, called from TRL's reward function). Settings not given on the command
line are the recipe's. TRL generates with transformers' ``generate`` on its PEFT model; ours is the real online loop
(``selfimprove run recipes/grpo_arithmetic.yaml``), run directory, records and checkpoints included.

TRL otherwise runs its documented ``GRPOConfig`` defaults (AdamW, gradient clipping at 1.0, no weight decay, as
ours). Changed from them, and why: ``learning_rate``, ``temperature``, ``max_completion_length``, ``beta`` and
``epsilon`` to the recipe's; ``loss_type="grpo"`` (default ``dapo``) and ``lr_scheduler_type="constant"`` (default
``linear``) to be the same algorithm as ours; ``shuffle_dataset=False`` for the same problems in the same order;
``gradient_checkpointing=False`` (default True) because ours does not recompute activations, which makes TRL faster,
not slower; ``disable_dropout=True`` as ours (the model and LoRA have no dropout here, so it changes nothing);
``use_cpu=True``, ``bf16=False`` on this CPU; and micro-batches of ``--trl-micro-batch`` rows with gradients
accumulated into one optimizer step per generation batch (the whole batch at once was killed for memory at 24 GiB).

Each side runs in its own process with the same number of threads, for ``--steps`` steps after one warm-up step.
Then both final adapters are evaluated the same way: greedy, with the prompt they were trained on (the recipe's
exemplars), on ``--eval`` held-out problems.

Where the speed comes from. Ours skips work exactly, in four places that each have a switch (docs/online.md): the
prompts' shared prefix in generation (``generator.share_prefix``) and in the training passes
(``updater.share_prefix``), rows with all-zero advantages (``updater.skip_zero_advantage``) and generation through
the LoRA adapter (``updater.merged_generation``, a merged copy instead). Each variant turns one off. TRL runs as
above, and again with ``use_transformers_continuous_batching=True`` (transformers' continuous-batching generation,
TRL's faster documented option). The workloads:

- ``few-shot``: the recipe's prompt (a system message and three exemplars, 174 shared tokens), its 32-token answers;
- ``zero-shot``: the same without the exemplars (little to share);
- ``long``: zero-shot, with answers of up to 256 tokens (generation-bound, a prefix worth little).

Prints a table: per workload and variant, seconds per step (wall and CPU: all threads' time, so CPU / wall is the
cores used) and the ratio to ours with every shortcut; for ours, where the step's time went; the held-out accuracy
of ours and TRL on the recipe's workload; and last ``time_ratio=<ours / TRL's faster variant, wall seconds per
step, few-shot workload>``.

Run:  .venv/bin/python benchmarks/online_grpo_vs_trl.py [--steps 5] [--workloads few-shot,zero-shot,long]
          [--variants ours,no-gen-prefix,no-train-prefix,no-skip,no-merge,trl,trl-cb] [--problems 8] [--group 8]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "grpo_arithmetic.yaml"


# variant: (side, our overrides); each "no-" variant turns one exact shortcut off
VARIANTS = {
    "ours": ("ours", []),
    "no-gen-prefix": ("ours", ["generator.share_prefix=false"]),
    "no-train-prefix": ("ours", ["updater.share_prefix=false"]),
    "no-skip": ("ours", ["updater.skip_zero_advantage=false"]),
    "no-merge": ("ours", ["updater.merged_generation=false"]),
    "trl": ("trl", []),
    "trl-cb": ("trl", []),
}
# workload: (overrides, max new tokens)
WORKLOADS = {
    "few-shot": ([], None),
    "zero-shot": (["roles.0.prompt.few_shot=[]"], None),
    "long": (["roles.0.prompt.few_shot=[]"], 256),
}


def overrides(args: argparse.Namespace) -> list[str]:
    workload, new_tokens = WORKLOADS[args.workload]
    out = [
        f"loop.steps={args.steps + 1}", f"loop.batch_size={args.problems}", f"roles.0.n={args.group}",
        f"updater.beta={args.beta}", "eval.tasks=[]", "loop.eval_every=0", f"loop.save_every={args.steps + 1}",
        *workload, *VARIANTS[args.variant][1],
    ]  # fmt: skip
    new_tokens = args.max_new_tokens or new_tokens
    if new_tokens:
        out += [f"generator.max_new_tokens={new_tokens}", f"updater.max_completion_length={new_tokens}"]
    if args.lr:
        out.append(f"updater.learning_rate={args.lr}")
    return out


def run_ours(args: argparse.Namespace, out: Path) -> dict:
    from selfimprove.config import load_recipe
    from selfimprove.loop.runner import run_recipe

    recipe = load_recipe(RECIPE, overrides(args))
    start, cpu = time.perf_counter(), time.process_time()
    run_recipe(recipe, out / "run", show_progress=False)
    steps = [json.loads(x) for x in (out / "run" / "metrics.jsonl").open()]
    steps = [s for s in steps if s["stage"] == "step" and s["step"] > 1]  # step 1 is the warm-up
    total = sum(s["seconds"] for s in steps)
    parts = {k: sum(s[f"{k}_seconds"] for s in steps) for k in ("generate", "verify", "reward", "other")}
    forward_backward = sum(s["forward_backward_seconds"] for s in steps)
    update_rest = sum(s["update_seconds"] for s in steps) - forward_backward
    return {
        "seconds_per_step": total / len(steps),
        "cpu_seconds_per_step": sum(s["cpu_seconds"] for s in steps) / len(steps),
        "cpu_seconds": time.process_time() - cpu,
        "wall_seconds": time.perf_counter() - start,
        "generate_share": parts["generate"] / total,
        "verify_share": parts["verify"] / total,
        "forward_backward_share": forward_backward / total,
        "outside_share": (parts["reward"] + parts["other"] + update_rest) / total,
        "reward": [s["solver/reward"] for s in steps],
        "adapter": str(out / "run" / "checkpoints" / f"step-{args.steps + 1:06d}" / "policy"),
    }


def run_trl(args: argparse.Namespace, out: Path) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from selfimprove.config import load_recipe
    from selfimprove.loop.engine import load_problems
    from selfimprove.loop.sampler import EpochSampler
    from selfimprove.models.embedded import resolve
    from selfimprove.prompts import render
    from selfimprove.records import Rollout
    from selfimprove.verifiers.numeric import NumericVerifier

    recipe = load_recipe(RECIPE, overrides(args))
    sampler = EpochSampler(load_problems(recipe.task), args.problems, recipe.loop.seed)
    problems = [p for step in range(1, args.steps + 2) for p in sampler.batch(step)]  # ours, in our order
    prompt = recipe.roles[0].prompt
    dataset = Dataset.from_dict(
        {"prompt": [render(prompt, p) for p in problems], "answer": [p.answer for p in problems]}
    )
    generation = recipe.generator.args
    updater = recipe.updater.args
    verifier = NumericVerifier()

    def reward(completions, answer, **kw):
        rollouts = [Rollout(str(i), "solver", str(i), [], c[0]["content"], a) for i, (c, a) in
                    enumerate(zip(completions, answer, strict=True))]  # fmt: skip
        return [v.score for v in verifier.verify(rollouts)]

    times: list[tuple[float, float]] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, targs, state, control, **kw):
            self.start = time.perf_counter(), time.process_time()

        def on_step_end(self, targs, state, control, **kw):
            if state.global_step > 1:  # global_step was just incremented: this skips the warm-up step
                times.append((time.perf_counter() - self.start[0], time.process_time() - self.start[1]))

    # one generation batch (problems x group) and one optimizer step per step, in micro-batches as ours runs in
    # token-budgeted ones: the whole batch at once holds 64 full-vocabulary logit rows and outgrows 24 GiB
    accumulation, rest = divmod(args.problems * args.group, args.trl_micro_batch)
    if rest:
        sys.exit("--trl-micro-batch must divide problems x group")
    config = GRPOConfig(
        output_dir=str(out / "trl"), per_device_train_batch_size=args.trl_micro_batch, num_generations=args.group,
        gradient_accumulation_steps=accumulation, steps_per_generation=accumulation, num_iterations=1,
        max_steps=args.steps + 1, learning_rate=updater["learning_rate"], lr_scheduler_type="constant",
        warmup_steps=0, beta=args.beta, epsilon=0.2, loss_type="grpo", scale_rewards="group",
        temperature=generation["temperature"], max_completion_length=generation["max_new_tokens"],
        shuffle_dataset=False, disable_dropout=True,
        bf16=False, gradient_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
        logging_steps=1, seed=recipe.loop.seed, disable_tqdm=True,
        use_transformers_continuous_batching=args.variant == "trl-cb",
    )  # fmt: skip
    start, cpu = time.perf_counter(), time.process_time()
    trainer = GRPOTrainer(
        model=resolve(recipe.model), reward_funcs=reward, args=config, train_dataset=dataset,
        peft_config=LoraConfig(r=recipe.adapter.r, lora_alpha=recipe.adapter.alpha, target_modules="all-linear",
                               task_type="CAUSAL_LM"),
        callbacks=[Timer()],
    )  # fmt: skip
    trainer.train()
    trainer.save_model(str(out / "trl-adapter"))
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log][1:]
    return {
        "seconds_per_step": sum(t for t, _ in times) / len(times),
        "cpu_seconds_per_step": sum(c for _, c in times) / len(times),
        "cpu_seconds": time.process_time() - cpu,
        "wall_seconds": time.perf_counter() - start,
        "reward": rewards,
        "adapter": str(out / "trl-adapter"),
    }


def heldout_accuracy(adapter: str, limit: int) -> float:
    """Greedy accuracy of base + ``adapter`` on the held-out arithmetic problems, as the loop evaluates them."""
    from selfimprove.config import load_recipe
    from selfimprove.config.schema import Component
    from selfimprove.eval.evaluate import EvalTask, Sampling, evaluate
    from selfimprove.loop.engine import load_problems
    from selfimprove.loop.heldout import RunStages
    from selfimprove.models import Policy
    from selfimprove.models.embedded import resolve
    from selfimprove.models.live import LoadedPolicy
    from selfimprove.prompts import render
    from selfimprove.rundir import RunDir
    from selfimprove.verifiers.numeric import NumericVerifier

    recipe = load_recipe(RECIPE)
    task = Component("task", "arithmetic", split="test", limit=limit)
    problems = load_problems(task)
    prompts = [render(recipe.roles[0].prompt, p, few_shot=recipe.eval.few_shot) for p in problems]
    policy = LoadedPolicy(Policy(resolve(recipe.model), adapter))
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate(
            RunStages(RunDir(tmp), policy, show_progress=False), "eval",
            [EvalTask("arithmetic", problems, prompts, NumericVerifier())], recipe.generator,
            Sampling(recipe.eval.generation), seed=0,
        )  # fmt: skip
    return results["arithmetic"].metrics["accuracy"]


def side(variant: str, workload: str, args: argparse.Namespace, out: Path) -> dict:
    """One variant on one workload in its own process, or ``{"error": why}`` (the table keeps its row)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--side", variant, "--workload", workload, "--out", str(out), *sys.argv[1:]]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode < 0:  # the kernel's OOM killer leaves no traceback
        name = signal.Signals(-result.returncode).name
        return {"error": f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")}
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1][:200] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps, after one warm-up step")
    parser.add_argument("--problems", type=int, default=8, help="problems per step")
    parser.add_argument("--group", type=int, default=8, help="samples per problem (GRPO's group)")
    parser.add_argument("--max-new-tokens", type=int, help="[default: the workload's]")
    parser.add_argument("--lr", type=float, help="[default: the recipe's]")
    parser.add_argument("--beta", type=float, default=0.0, help="KL coefficient (0.04: the GRPO paper's)")
    parser.add_argument("--eval", type=int, default=64, help="held-out problems for the final accuracy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trl-micro-batch", type=int, default=16, help="TRL's rows per forward/backward pass")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--side", choices=list(VARIANTS))
    parser.add_argument("--workload", choices=list(WORKLOADS), default="few-shot")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.side:
        from selfimprove.quiet import quiet_libraries

        quiet_libraries()
        import torch

        torch.set_num_threads(args.threads)
        args.variant = args.side
        run = run_ours if VARIANTS[args.side][0] == "ours" else run_trl
        print(json.dumps(run(args, Path(args.out))))
        return
    workloads, variants = args.workloads.split(","), args.variants.split(",")
    results: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workload in workloads:
            for variant in variants:
                results[workload, variant] = r = side(variant, workload, args, Path(tmp) / workload / variant)
                print(f"{workload:9} {variant:15} " + (f"{r['seconds_per_step']:.1f} s/step" if "error" not in r
                                                        else r["error"]), file=sys.stderr, flush=True)  # fmt: skip
        for (workload, variant), r in results.items():
            if workload == "few-shot" and variant in ("ours", "trl") and "adapter" in r:
                r["heldout_accuracy"] = heldout_accuracy(r["adapter"], args.eval)
    print(f"settings: recipes/grpo_arithmetic.yaml, {args.problems} problems x {args.group} samples a step, "
          f"{args.steps} timed steps after one warm-up, {args.threads} threads a side, beta {args.beta}")  # fmt: skip
    print("| workload | variant | wall s/step | CPU s/step | wall / ours |")
    print("|---|---|---|---|---|")
    for (workload, variant), r in results.items():
        if "error" in r:
            print(f"| {workload} | {variant} | {r['error']} | | |")
            continue
        ours = results.get((workload, "ours"), {}).get("seconds_per_step")
        against = f"{r['seconds_per_step'] / ours:.2f}" if ours else ""
        print(f"| {workload} | {variant} | {r['seconds_per_step']:.1f} | {r['cpu_seconds_per_step']:.1f} | "
              f"{against} |")  # fmt: skip
    for workload in workloads:
        ours = results.get((workload, "ours"), {})
        if "generate_share" in ours:
            print(f"ours, {workload}, share of the step: generation {ours['generate_share']:.1%}, forward/backward "
                  f"{ours['forward_backward_share']:.1%}, verification {ours['verify_share']:.1%}, everything "
                  f"else {ours['outside_share']:.1%}")  # fmt: skip
    for variant in ("ours", "trl"):
        r = results.get(("few-shot", variant), {})
        if "heldout_accuracy" in r:
            print(f"{variant}, few-shot: held-out greedy accuracy {r['heldout_accuracy']:.1%} after {args.steps + 1} "
                  f"steps, mean reward per step {[round(x, 3) for x in r['reward']]}")  # fmt: skip
    ours = results.get(("few-shot", "ours"), {}).get("seconds_per_step")
    trl = [results[k]["seconds_per_step"] for k in (("few-shot", "trl"), ("few-shot", "trl-cb"))
           if "seconds_per_step" in results.get(k, {})]  # fmt: skip
    print(f"time_ratio={ours / min(trl):.2f}" if ours and trl else "time_ratio=n/a")


if __name__ == "__main__":
    main()
