"""Online GRPO at real shapes on one GPU -- ours against TRL's GRPOTrainer (transformers generation), one run.

NOT YET RUN ON A GPU: this project's sessions have had no GPU so far. ``--shape tiny --prompts 2 --group 2
--max-new-tokens 8`` runs the whole script on CPU in about a minute, which is how it has been checked.

The model is random-initialised from a config built here with the real shapes of Qwen2.5-0.5B or 1.5B (layers,
hidden size, heads, grouped keys and values, the 151,936-token vocabulary, tied embeddings; Llama's architecture,
which is Qwen2's), which is exact for speed and memory. Its tokenizer is a word-level one over the same 151,936 ids
("w0", "w1", ...), so every sampled id decodes and a completion runs its full length (the end-of-sequence id is one
in 151,936). The reward is whether a
completion's first word ends in 0-4 (about half pass): the built-in ``regex`` verifier for ours, the same verifier
called from TRL's reward function. The prompts are the arithmetic recipe's (``recipes/grpo_arithmetic.yaml``), its
words mostly unknown to this tokenizer, which leaves their length.

Both sides: the same adapter (LoRA r 16 on all linear layers, QLoRA: the same LoRA on 4-bit NF4 weights, or full
fine-tuning), ``--prompts`` x ``--group``
completions of ``--max-new-tokens`` per step, all generated in one batch, one optimizer step per generation, loss
``grpo`` with epsilon 0.2 and beta 0, bf16 on CUDA. Each side runs in its own process, ``--steps`` timed steps after
one warm-up step.

Prints, per adapter: seconds per step of both; generation tokens/s of both; ours' update tokens/s (prompt and
completion tokens of the step over the time of its forward and backward passes) and model-FLOP utilisation against
``--peak-tflops`` (default: 989 for an H100 SXM or H200, 756 for an H100 PCIe: NVIDIA's dense bf16 figures; 1 on
CPU) with 2N FLOPs per token forward and 2N (LoRA, QLoRA) or 4N (full) backward, N the weights of the matrix
multiplies, lm head included, attention's own FLOPs left out; peak memory of both (``torch.cuda.max_memory_allocated``,
or peak RSS on CPU); and last ``time_ratio=<ours/TRL s per step>``, the mean over the adapters both sides ran.

Each side runs in its own process with a time limit (``--side-timeout``): one that fails or hangs costs only itself,
and ``--json`` gets every figure and every side's error or reason for being skipped, written after each side.

Run:  python benchmarks/gpu_online_grpo.py [--shape qwen2.5-0.5b] [--adapters lora,full,qlora] [--steps 3]
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

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "grpo_arithmetic.yaml"
PATTERN = r"^\s*w\d*[0-4]\b"  # the first word's id ends in 0-4: about half the completions pass

SHAPES = {  # Qwen2.5's published configs, less the weights
    "qwen2.5-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                     "num_attention_heads": 14, "num_key_value_heads": 2},
    "qwen2.5-1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096},
}  # fmt: skip
VOCAB = 151_936  # Qwen2.5's; the tiny shape, a check of the script, takes 4,096


def build_model(shape: str, folder: Path) -> None:
    """A random-initialised Qwen2 model with ``shape``'s dimensions and a word-level tokenizer over its vocabulary."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast
    from transformers.utils.logging import disable_progress_bar

    # Qwen2 is Llama's architecture with biases on q, k and v (here on o too: 0.0002% more weights). A Qwen2 config
    # would make transformers 5 load its own byte-level tokenizer over the word-level one below.
    dims = {"vocab_size": VOCAB, **SHAPES[shape]}
    config = LlamaConfig(max_position_embeddings=32768, rope_theta=1_000_000.0, attention_bias=True,
                         tie_word_embeddings=True, rms_norm_eps=1e-6, hidden_act="silu", bos_token_id=0,
                         eos_token_id=0, pad_token_id=2, **dims)  # fmt: skip
    torch.manual_seed(0)
    disable_progress_bar()
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    words = Tokenizer(models.WordLevel({f"w{i}": i for i in range(dims["vocab_size"])}, unk_token="w1"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    words.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, eos_token="w0", unk_token="w1", pad_token="w2")
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    tokenizer.save_pretrained(folder)
    settings = folder / "tokenizer_config.json"  # the class every transformers version loads a tokenizer.json with
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "tokenizer_class": "PreTrainedTokenizerFast"}))


def recipe_file(args: argparse.Namespace, model: Path, adapter: str, out: Path) -> Path:
    """The arithmetic GRPO recipe at this benchmark's settings."""
    data = yaml.safe_load(RECIPE.read_text())
    data["model"] = str(model)
    data["adapter"] = {"type": "full"} if adapter == "full" else {**data["adapter"], "type": adapter}
    data["roles"][0]["n"] = args.group
    data["verifier"] = {"name": "regex", "pattern": PATTERN}
    data["generator"] |= {"temperature": 1.0, "max_new_tokens": args.max_new_tokens,
                          "batch_size": args.prompts * args.group}  # fmt: skip
    data["updater"] |= {"temperature": 1.0, "max_completion_length": args.max_new_tokens,
                        "max_tokens_per_micro_batch": args.micro_tokens,
                        "learning_rate": learning_rate(adapter)}  # fmt: skip
    data["eval"] = {"tasks": []}
    data["loop"] |= {"steps": args.steps + 1, "batch_size": args.prompts, "eval_every": 0,
                     "save_every": args.steps + 1}  # fmt: skip
    path = out / f"recipe-{adapter}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def learning_rate(adapter: str) -> float:
    return 1e-6 if adapter == "full" else 1e-5


def peak_memory_gib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def matmul_weights(model_dir: Path) -> int:
    """N: the weights every token multiplies through (linear layers and the lm head; not the embedding lookup)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_dir)
    head_dim = c.hidden_size // c.num_attention_heads
    attention = c.hidden_size * head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    mlp = 3 * c.hidden_size * c.intermediate_size
    return c.num_hidden_layers * (attention + mlp) + c.hidden_size * c.vocab_size


def run_ours(args: argparse.Namespace, model: Path, adapter: str, out: Path) -> dict:
    from selfimprove.config import load_recipe
    from selfimprove.loop.runner import run_recipe

    recipe = load_recipe(recipe_file(args, model, adapter, out))
    run_recipe(recipe, out / "run", show_progress=False)
    steps = [json.loads(x) for x in (out / "run" / "metrics.jsonl").open()]
    steps = [s for s in steps if s["stage"] == "step" and s["step"] > 1]  # step 1 is the warm-up
    generated = sum(s["tokens_per_second"] * s["generate_seconds"] for s in steps)
    return {
        "seconds_per_step": sum(s["seconds"] for s in steps) / len(steps),
        "generation_tokens_per_second": generated / sum(s["generate_seconds"] for s in steps),
        "update_tokens_per_second": sum(s["tokens"] for s in steps) / sum(s["forward_backward_seconds"] for s in steps),
        "peak_memory_gib": peak_memory_gib(),
    }


def run_trl(args: argparse.Namespace, model: Path, adapter: str, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from trl.extras import profiling

    from selfimprove.config import load_recipe
    from selfimprove.loop.engine import load_problems
    from selfimprove.loop.sampler import EpochSampler
    from selfimprove.prompts import render
    from selfimprove.records import Rollout
    from selfimprove.verifiers.regex import RegexVerifier

    recipe = load_recipe(recipe_file(args, model, adapter, out))
    sampler = EpochSampler(load_problems(recipe.task), args.prompts, recipe.loop.seed)
    problems = [p for step in range(1, args.steps + 2) for p in sampler.batch(step)]
    dataset = Dataset.from_dict({"prompt": [render(recipe.roles[0].prompt, p) for p in problems]})
    verifier = RegexVerifier(PATTERN)

    def reward(completions, **kw):
        rollouts = [Rollout(str(i), "solver", str(i), [], c[0]["content"], None) for i, c in enumerate(completions)]
        return [v.score for v in verifier.verify(rollouts)]

    times: list[float] = []
    generation: list[float] = []
    log_metrics = profiling.ProfilingContext._log_metrics

    def timed(self, duration: float) -> None:  # TRL times its generate call; keep the timed steps' figures
        if self.name.endswith("transformers.generate") and (self.step or 0) >= 1:
            generation.append(duration)
        log_metrics(self, duration)

    profiling.ProfilingContext._log_metrics = timed

    class Timer(TrainerCallback):
        def on_step_begin(self, targs, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, targs, state, control, **kw):
            if state.global_step > 1:  # global_step was just incremented: this skips the warm-up step
                times.append(time.perf_counter() - self.start)

    completions = args.prompts * args.group
    micro = min(args.trl_micro_batch, completions)
    cuda = torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=str(out / "trl"), per_device_train_batch_size=micro, num_generations=args.group,
        gradient_accumulation_steps=completions // micro, steps_per_generation=completions // micro,
        num_iterations=1, max_steps=args.steps + 1, learning_rate=learning_rate(adapter),
        lr_scheduler_type="constant", warmup_steps=0, beta=0.0, epsilon=0.2, loss_type="grpo",
        scale_rewards="group", temperature=1.0, max_completion_length=args.max_new_tokens, shuffle_dataset=False,
        disable_dropout=True, bf16=cuda, gradient_checkpointing=False, use_cpu=not cuda, report_to="none",
        save_strategy="no", logging_steps=1, seed=recipe.loop.seed, disable_tqdm=True,
    )  # fmt: skip
    if adapter == "qlora":  # the same 4-bit NF4 quantisation our loader applies (selfimprove/models/loading.py)
        from transformers import BitsAndBytesConfig

        config.model_init_kwargs = {"dtype": torch.bfloat16, "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)}  # fmt: skip
    peft = None
    if adapter in ("lora", "qlora"):
        peft = LoraConfig(r=recipe.adapter.r, lora_alpha=recipe.adapter.alpha, target_modules="all-linear",
                          task_type="CAUSAL_LM")  # fmt: skip
    trainer = GRPOTrainer(model=str(model), reward_funcs=reward, args=config, train_dataset=dataset,
                          peft_config=peft, callbacks=[Timer()])  # fmt: skip
    trainer.train()
    return {
        "seconds_per_step": sum(times) / len(times),
        "generation_tokens_per_second": completions * args.max_new_tokens * len(generation) / sum(generation)
        if generation
        else float("nan"),  # every completion runs its full length: the end-of-sequence id is 1 in 151,936
        "peak_memory_gib": peak_memory_gib(),
    }


def missing(name: str, adapter: str) -> str | None:
    """Why a side cannot run here, before it starts (None: it can)."""
    import importlib.util

    import torch

    needs = ["trl", "datasets"] if name == "trl" else []
    if adapter == "qlora":
        if not torch.cuda.is_available():
            return "QLoRA needs CUDA"
        needs.append("bitsandbytes")
    absent = [module for module in needs if importlib.util.find_spec(module) is None]
    return f"not installed: {', '.join(absent)}" if absent else None


def side(name: str, adapter: str, model: Path, out: Path, timeout: float) -> dict:
    """One side's figures from its own process, or ``{"skipped": why}`` / ``{"error": what}``."""
    reason = missing(name, adapter) or (None if timeout >= 5 else "out of the benchmark's time budget")
    if reason:
        return {"skipped": reason}
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--side", name, "--adapter", adapter, "--model", str(model),
               "--out", str(out), *sys.argv[1:]]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=os.environ, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if result.returncode != 0:
        return {"error": f"exit {result.returncode}: {result.stderr.strip()[-1500:]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_tflops(given: float | None) -> tuple[float | None, str]:
    """The device's dense bf16 peak: given, or NVIDIA's figure for the card; none on CPU (no MFU there)."""
    import torch

    if given:
        return given, "given"
    if not torch.cuda.is_available():
        return None, "CPU: no MFU"
    name = torch.cuda.get_device_name()
    if "H100" in name and "PCIe" in name:
        return 756.0, f"{name}: H100 PCIe dense bf16"
    if "H100" in name or "H200" in name:
        return 989.0, f"{name}: H100 SXM / H200 dense bf16"
    return 312.0, f"{name}: unknown card, A100's dense bf16 assumed (pass --peak-tflops)"


def compare(args: argparse.Namespace, adapter: str, ours: dict, trl: dict, n: int, peak: float | None) -> dict:
    """The adapter's figures, both sides', and the line printed for them."""
    line = f"{adapter}:"
    if "seconds_per_step" in ours:
        backward = 4 if adapter == "full" else 2  # LoRA: gradients of the activations only
        ours["mfu"] = ours["update_tokens_per_second"] * (2 + backward) * n / (peak * 1e12) if peak else None
        mfu = f"{ours['mfu']:.1%}" if peak else "n/a"
        line += (f" ours {ours['seconds_per_step']:.2f} s/step, generation {ours['generation_tokens_per_second']:.0f}"
                 f" tok/s, update {ours['update_tokens_per_second']:.0f} tok/s, MFU {mfu}, peak"
                 f" {ours['peak_memory_gib']:.1f} GiB;")  # fmt: skip
    else:
        line += f" ours {next(iter(ours))}: {next(iter(ours.values()))[:300]};"
    if "seconds_per_step" in trl:
        line += (f" TRL {trl['seconds_per_step']:.2f} s/step, generation {trl['generation_tokens_per_second']:.0f}"
                 f" tok/s, peak {trl['peak_memory_gib']:.1f} GiB")  # fmt: skip
    else:
        line += f" TRL {next(iter(trl))}: {next(iter(trl.values()))[:300]}"
    figures = {"ours": ours, "trl": trl, "line": line}
    if "seconds_per_step" in ours and "seconds_per_step" in trl:
        figures["time_ratio"] = ours["seconds_per_step"] / trl["seconds_per_step"]
        figures["line"] += f"; time_ratio {figures['time_ratio']:.2f}"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=list(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--adapters", default="lora,full", help="comma-separated: lora, full, qlora")
    parser.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--micro-tokens", type=int, default=8192, help="ours: tokens per forward/backward pass")
    parser.add_argument("--trl-micro-batch", type=int, default=16, help="TRL: completions per forward/backward")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (default: from its name)")
    parser.add_argument("--side-timeout", type=float, default=1800, help="seconds each side may run")
    parser.add_argument("--budget", type=float, default=float("inf"), help="seconds for every side together")
    parser.add_argument("--json", help="write every figure here, after each side")
    parser.add_argument("--side", choices=["ours", "trl"])
    parser.add_argument("--adapter", choices=["lora", "full", "qlora"])
    parser.add_argument("--model")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.side:
        from selfimprove.quiet import quiet_libraries

        quiet_libraries()
        run = run_ours if args.side == "ours" else run_trl
        print(json.dumps(run(args, Path(args.model), args.adapter, Path(args.out))))
        return

    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (a check of the script, no figures)"
    peak, peak_source = peak_tflops(args.peak_tflops)
    print(f"device: {device}; shape {args.shape}; {args.prompts} prompts x {args.group} completions of "
          f"{args.max_new_tokens} new tokens per step; {args.steps} timed steps after one warm-up; "
          f"peak {peak or 0:.0f} TFLOP/s ({peak_source})", flush=True)  # fmt: skip
    report: dict = {"device": device, "shape": args.shape, "peak_tflops": peak, "peak_source": peak_source,
                    "work": {"prompts": args.prompts, "group": args.group, "max_new_tokens": args.max_new_tokens,
                             "timed_steps": args.steps}, "adapters": {}}  # fmt: skip

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))

    deadline = time.perf_counter() + args.budget

    def timeout() -> float:
        return min(args.side_timeout, deadline - time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        build_model(args.shape, model)
        n = matmul_weights(model)
        for adapter in args.adapters.split(","):
            ours = side("ours", adapter, model, Path(tmp) / adapter / "ours", timeout())
            report["adapters"][adapter] = {"ours": ours}
            save()
            trl = side("trl", adapter, model, Path(tmp) / adapter / "trl", timeout())
            report["adapters"][adapter] = compare(args, adapter, ours, trl, n, peak)
            save()
            print(report["adapters"][adapter]["line"], flush=True)
    ratios = [a["time_ratio"] for a in report["adapters"].values() if "time_ratio" in a]
    report["time_ratio"] = sum(ratios) / len(ratios) if ratios else None
    save()
    print(f"time_ratio={report['time_ratio']:.2f}" if ratios else "time_ratio=n/a (no adapter ran on both sides)")


if __name__ == "__main__":
    main()
