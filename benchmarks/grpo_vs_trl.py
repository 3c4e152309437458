"""One GRPO update step on fixed rollouts: selfimprove's `grpo` updater against TRL's GRPOTrainer, on CPU.

Both sides train the same model (default: the embedded SmolLM2-135M-Instruct) with the same LoRA adapter, on the
same 2 prompts x 4 completions and rewards, with the same settings (beta 0.04 with the k3 estimator and the
base model as reference, epsilon 0.2, per-sequence token mean, lr 1e-5, fp32, no gradient checkpointing). A
step is everything between generation and the next generation: rewards to advantages, the reference's
log-probs, the loss, backward, the optimizer step. TRL's generation is replaced by the fixed completions.

Each side runs in its own process (so neither inherits the other's allocations), does one warm-up step, then
``--steps`` timed steps. Memory is the peak resident memory those steps add on top of the process after setup
(the kernel's high-water mark VmHWM, reset through /proc/self/clear_refs after the warm-up; glibc's mmap
threshold is fixed so freed tensors leave the resident set): the model and the libraries are common to both and
are left out. Time is wall seconds per step and CPU seconds per step of
the process; the ratio uses CPU seconds, which a busy machine does not inflate (with one thread they equal the
wall time of a quiet machine).

Run:  .venv/bin/python benchmarks/grpo_vs_trl.py [--model PATH] [--steps 2] [--threads 1]
Last line:  time_ratio=<ours/trl> mem_ratio=<ours/trl>
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PROMPTS = [
    "A baker makes 14 trays of rolls with 12 rolls on each tray. She sells 150 rolls. How many rolls are left?",
    "Tom reads 18 pages a day for 5 days, then 25 pages a day for 2 days. How many pages does he read in total?",
]
COMPLETIONS = [
    [
        "The baker makes 14 * 12 = 168 rolls. After selling 150 rolls, 168 - 150 = 18 rolls are left. "
        "The answer is 18.",
        "14 trays with 12 rolls is 14 + 12 = 26 rolls. She sells 150, so she has none left. The answer is 0.",
        "First find the number of rolls: 14 times 12 is 168. Then subtract the rolls she sold: 168 minus 150 "
        "equals 18. So there are 18 rolls left over at the end of the day. The answer is 18.",
        "She has 150 - 14 = 136 rolls. The answer is 136.",
    ],
    [
        "In 5 days he reads 18 * 5 = 90 pages. In 2 days he reads 25 * 2 = 50 pages. In total 90 + 50 = 140. "
        "The answer is 140.",
        "18 + 25 = 43 pages. The answer is 43.",
        "He reads 18 pages for 5 days, which is 90 pages, and 25 pages for 2 days, which is 50 pages, so 140 pages "
        "in total. The answer is 140.",
        "18 * 7 = 126 pages. The answer is 126.",
    ],
]
REWARDS = [[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]]
LR, BETA, EPSILON, LORA_R = 1e-5, 0.04, 0.2, 16


def memory_kb() -> dict[str, int]:
    status = Path("/proc/self/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+)", status).group(1)) for key in ("VmRSS", "VmHWM")}


class Meter:
    """Times steps and measures the peak resident memory they add, after a warm-up step."""

    def __init__(self) -> None:
        self.times: list[float] = []  # wall seconds per step
        self.cpu_times: list[float] = []  # CPU seconds of this process per step: the work, whatever the load
        self.base_kb = 0

    def start_measuring(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
        self.base_kb = memory_kb()["VmRSS"]

    def report(self) -> None:
        peak = memory_kb()["VmHWM"]
        print(json.dumps({
            "seconds_per_step": sum(self.times) / len(self.times),
            "cpu_seconds_per_step": sum(self.cpu_times) / len(self.cpu_times),
            "step_peak_mb": (peak - self.base_kb) / 1024,
            "process_peak_mb": peak / 1024,
        }))  # fmt: skip


def examples() -> list:
    from selfimprove.records import Example

    return [
        Example(f"{i}/{k}", [{"role": "user", "content": p}], c, reward=REWARDS[i][k], group=str(i))
        for i, p in enumerate(PROMPTS)
        for k, c in enumerate(COMPLETIONS[i])
    ]


def run_ours(model: str, steps: int) -> None:
    from selfimprove.config.schema import Adapter
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    objective = GRPO(learning_rate=LR, beta=BETA, epsilon=EPSILON, max_completion_length=256)
    trainer = Trainer(model, Adapter(r=LORA_R, alpha=2 * LORA_R), objective, seed=0, total_steps=steps + 1)
    meter = Meter()
    for step in range(steps + 1):
        if step == 1:
            meter.start_measuring()
        start, cpu = time.perf_counter(), time.process_time()
        trainer.step(examples(), seed=step)
        if step:
            meter.times.append(time.perf_counter() - start)
            meter.cpu_times.append(time.process_time() - cpu)
    meter.report()


def run_trl(model: str, steps: int, out: str) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from selfimprove.models.loading import load_tokenizer
    from selfimprove.tokens import encode_completion

    tokenizer = load_tokenizer(model)
    exs = examples()
    completion_ids = {e.id: encode_completion(tokenizer, e.completion)[:256] for e in exs}
    by_prompt = {p: [completion_ids[f"{i}/{k}"] for k in range(4)] for i, p in enumerate(PROMPTS)}
    rewards = {tuple(completion_ids[e.id]): e.reward for e in exs}
    prompt_text = {tuple(tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                       tokenize=True, return_dict=True)["input_ids"]): p
                   for p in PROMPTS}  # fmt: skip

    class FixedRollouts(GRPOTrainer):
        """TRL's trainer with generation replaced by the benchmark's completions."""

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, **kw):
            taken: dict[str, int] = {}
            out = []
            for ids in prompt_ids:
                prompt = prompt_text[tuple(ids)]
                out.append(by_prompt[prompt][taken.setdefault(prompt, 0)])
                taken[prompt] += 1
            return out, None

    def reward(completions, completion_ids, **kw):
        return [rewards[tuple(ids)] for ids in completion_ids]

    meter = Meter()

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 1:
                meter.start_measuring()
            self.start, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step > 1:  # global_step was just incremented: this skips the warm-up step
                meter.times.append(time.perf_counter() - self.start)
                meter.cpu_times.append(time.process_time() - self.cpu)

    args = GRPOConfig(
        output_dir=out, per_device_train_batch_size=8, num_generations=4, max_steps=steps + 1, learning_rate=LR,
        lr_scheduler_type="constant", beta=BETA, epsilon=EPSILON, loss_type="grpo", max_completion_length=256,
        use_bias_correction_kl=False, bf16=False, gradient_checkpointing=False, use_cpu=True, report_to="none",
        save_strategy="no", logging_steps=1000, seed=0, disable_tqdm=True,
    )  # fmt: skip
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in PROMPTS] * (steps + 1)})
    trainer = FixedRollouts(
        model=model, reward_funcs=reward, args=args, train_dataset=dataset, processing_class=tokenizer,
        peft_config=LoraConfig(r=LORA_R, lora_alpha=2 * LORA_R, target_modules="all-linear", task_type="CAUSAL_LM"),
        callbacks=[Timer()],
    )  # fmt: skip
    trainer.train()
    meter.report()


def side(name: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    # A fixed mmap threshold: glibc then serves every large block (tensors) by mmap and unmaps it when freed, so
    # the resident size follows live memory instead of what an earlier step happened to leave in the heap.
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    command = [sys.executable, __file__, "--side", name, "--model", args.model, "--steps", str(args.steps)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--side", choices=["ours", "trl"])
    args = parser.parse_args()
    if args.side:
        from selfimprove.quiet import quiet_libraries

        quiet_libraries()
        import torch

        torch.set_num_threads(args.threads)
        if args.side == "ours":
            run_ours(args.model, args.steps)
        else:
            import tempfile

            with tempfile.TemporaryDirectory() as out:
                run_trl(args.model, args.steps, out)
        return
    from selfimprove.models.embedded import resolve

    args.model = resolve(args.model)
    ours, trl = side("ours", args), side("trl", args)
    print(f"GRPO step on {len(PROMPTS)} prompts x 4 completions, LoRA r={LORA_R}, {args.threads} thread(s), CPU")
    print(f"{'':6} {'s/step':>8} {'CPU s/step':>11} {'step peak MB':>13} {'process peak MB':>16}")
    for name, r in (("ours", ours), ("trl", trl)):
        print(f"{name:6} {r['seconds_per_step']:8.3f} {r['cpu_seconds_per_step']:11.3f} {r['step_peak_mb']:13.1f} "
              f"{r['process_peak_mb']:16.1f}")  # fmt: skip
    time_ratio = ours["cpu_seconds_per_step"] / trl["cpu_seconds_per_step"]
    mem_ratio = ours["step_peak_mb"] / trl["step_peak_mb"]
    print(f"time_ratio={time_ratio:.3f} mem_ratio={mem_ratio:.3f}")


if __name__ == "__main__":
    main()
