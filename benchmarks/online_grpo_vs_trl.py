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

Prints, per side, seconds per step (wall and CPU); for ours, where the step's time went (generation, verification,
forward/backward passes, the rest), and last ``time_ratio=<ours/TRL wall seconds per step>``.

Run:  .venv/bin/python benchmarks/online_grpo_vs_trl.py [--steps 5] [--problems 8] [--group 8] [--beta 0.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "grpo_arithmetic.yaml"


def overrides(args: argparse.Namespace) -> list[str]:
    out = [
        f"loop.steps={args.steps + 1}", f"loop.batch_size={args.problems}", f"roles.0.n={args.group}",
        f"updater.beta={args.beta}", "eval.tasks=[]", "loop.eval_every=0", f"loop.save_every={args.steps + 1}",
    ]  # fmt: skip
    if args.max_new_tokens:
        out += [
            f"generator.max_new_tokens={args.max_new_tokens}",
            f"updater.max_completion_length={args.max_new_tokens}",
        ]
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
    from selfimprove.loop.runner import load_problems
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

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, targs, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, targs, state, control, **kw):
            if state.global_step > 1:  # global_step was just incremented: this skips the warm-up step
                times.append(time.perf_counter() - self.start)

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
        "seconds_per_step": sum(times) / len(times),
        "cpu_seconds": time.process_time() - cpu,
        "wall_seconds": time.perf_counter() - start,
        "reward": rewards,
        "adapter": str(out / "trl-adapter"),
    }


def heldout_accuracy(adapter: str, limit: int) -> float:
    """Greedy accuracy of base + ``adapter`` on the held-out arithmetic problems, as the loop evaluates them."""
    from selfimprove.config import load_recipe
    from selfimprove.config.schema import Component
    from selfimprove.eval.evaluate import Sampling, evaluate_task
    from selfimprove.loop.rundir import RunDir
    from selfimprove.loop.runner import load_problems
    from selfimprove.models import Policy
    from selfimprove.models.embedded import resolve
    from selfimprove.models.live import LoadedPolicy
    from selfimprove.prompts import render
    from selfimprove.verifiers.numeric import NumericVerifier

    recipe = load_recipe(RECIPE)
    task = Component("task", "arithmetic", split="test", limit=limit)
    problems = load_problems(task)
    prompts = [render(recipe.roles[0].prompt, p, few_shot=recipe.eval.few_shot) for p in problems]
    with tempfile.TemporaryDirectory() as tmp:
        metrics, _, _ = evaluate_task(
            RunDir(tmp), "eval", "arithmetic", problems, prompts, recipe.generator,
            Sampling(recipe.eval.generation), NumericVerifier(),
            LoadedPolicy(Policy(resolve(recipe.model), adapter)), seed=0, show_progress=False,
        )  # fmt: skip
    return metrics["accuracy"]


def side(name: str, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--side", name, "--out", str(out), *sys.argv[1:]]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode < 0:  # the kernel's OOM killer leaves no traceback
        sys.exit(f"{name} was killed by signal {-result.returncode} (SIGKILL: out of memory?)")
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps, after one warm-up step")
    parser.add_argument("--problems", type=int, default=8, help="problems per step")
    parser.add_argument("--group", type=int, default=8, help="samples per problem (GRPO's group)")
    parser.add_argument("--max-new-tokens", type=int, help="[default: the recipe's]")
    parser.add_argument("--lr", type=float, help="[default: the recipe's]")
    parser.add_argument("--beta", type=float, default=0.0, help="KL coefficient (0.04: the GRPO paper's)")
    parser.add_argument("--eval", type=int, default=64, help="held-out problems for the final accuracy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trl-micro-batch", type=int, default=16, help="TRL's rows per forward/backward pass")
    parser.add_argument("--side", choices=["ours", "trl"])
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.side:
        from selfimprove.quiet import quiet_libraries

        quiet_libraries()
        import torch

        torch.set_num_threads(args.threads)
        out = Path(args.out)
        print(json.dumps((run_ours if args.side == "ours" else run_trl)(args, out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        results = {name: side(name, args, out / name) for name in ("ours", "trl")}
        for r in results.values():
            r["heldout_accuracy"] = heldout_accuracy(r["adapter"], args.eval)
    print(f"settings: recipes/grpo_arithmetic.yaml with {' '.join(overrides(args))}; {args.steps} timed steps, "
          f"{args.threads} threads per side")  # fmt: skip
    for name, r in results.items():
        print(f"{name}: {r['seconds_per_step']:.1f} s/step, held-out greedy accuracy {r['heldout_accuracy']:.1%} "
              f"after {args.steps + 1} steps, mean reward per step {[round(x, 3) for x in r['reward']]}")  # fmt: skip
    ours = results["ours"]
    print(f"ours, share of the step: generation {ours['generate_share']:.1%}, forward/backward "
          f"{ours['forward_backward_share']:.1%}, verification {ours['verify_share']:.1%}, "
          f"everything else {ours['outside_share']:.1%}")  # fmt: skip
    print(f"time_ratio={ours['seconds_per_step'] / results['trl']['seconds_per_step']:.2f}")


if __name__ == "__main__":
    main()
