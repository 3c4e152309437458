"""A QLoRA SFT update and a QLoRA GRPO update on a 0.5B-shaped model (Qwen2.5-0.5B's shapes, random weights).

NOT YET RUN ON A GPU (see docs/gpu.md). Needs CUDA and bitsandbytes for ``--adapter qlora`` (the default);
``--adapter lora`` runs the same updates anywhere, to check the script. The model is built from its config (no
download): 24 layers, hidden 896, vocabulary 151,936, with the embedded SmolLM2 tokenizer (its ids fall inside
the vocabulary).

Each runs twice on 16 examples (4 prompts x 4 completions of about 200 tokens), the second time measured: SFT as
an offline update (its own timer, model loading included, divided by its optimizer steps), GRPO as two steps of
the online trainer (the second step's time over its optimizer steps); and peak GPU memory
(torch.cuda.max_memory_allocated) of the measured run.

Run:  .venv/bin/python benchmarks/qlora_step.py [--adapter qlora|lora] [--layers 24]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

SENTENCES = [
    "First we add the two amounts together.",
    "Then we subtract what was given away.",
    "Each box holds the same number of items, so we multiply.",
    "Half of that is left after the second day.",
    "We check the result by adding the parts back up.",
]


def build_model(path: Path, layers: int = 24) -> str:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from selfimprove.models.embedded import resolve

    config = Qwen2Config(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=layers, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(path)
    AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct")).save_pretrained(path)
    return str(path)


def examples() -> list:
    from selfimprove.records import Example

    rng = random.Random(0)
    out = []
    for i in range(4):
        for k in range(4):
            text = " ".join(rng.choice(SENTENCES) for _ in range(20)) + f" The answer is {rng.randint(1, 99)}."
            prompt = [{"role": "user", "content": f"Problem {i}: how many items are left at the end?"}]
            out.append(Example(f"{i}/{k}", prompt, text, reward=float(k % 2), group=str(i)))
    return out


def measure_sft(model: str, adapter: str, work: Path) -> None:
    import torch

    from selfimprove.config.schema import Adapter
    from selfimprove.updaters import UpdateContext
    from selfimprove.updaters.sft import SFT

    for attempt in range(2):  # the first run warms up kernels and the allocator
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        out = work / f"sft-{attempt}"
        ctx = UpdateContext(model, Adapter(adapter, r=16, alpha=32), None, examples(), out, out / "work", 0, 1,
                            show_progress=False)  # fmt: skip
        metrics = SFT(learning_rate=1e-4, max_steps=4, batch_size=4).update(ctx)
    report("sft", metrics["seconds"] / metrics["steps"], metrics["steps"], metrics["loss"])


def measure_grpo(model: str, adapter: str) -> None:
    import time

    import torch

    from selfimprove.config.schema import Adapter
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    trainer = Trainer(model, Adapter(adapter, r=16, alpha=32), GRPO(learning_rate=1e-5, mini_batch_size=4), seed=0,
                      total_steps=2)  # fmt: skip
    trainer.step(examples(), seed=0)  # warms up kernels and the allocator
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    metrics = trainer.step(examples(), seed=1)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    report("grpo", (time.perf_counter() - start) / metrics["optimizer_steps"], metrics["optimizer_steps"],
           metrics["loss"])  # fmt: skip


def report(name: str, seconds_per_step: float, steps: int, loss: float) -> None:
    import torch

    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    print(f"{name:5} {seconds_per_step:8.3f} s/step  {peak:6.2f} GiB peak  ({steps} steps, loss {loss:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", choices=["qlora", "lora"], default="qlora")
    parser.add_argument("--layers", type=int, default=24, help="fewer layers for a quick check of the script")
    args = parser.parse_args()
    from selfimprove.errors import UserError
    from selfimprove.models.loading import check_adapter_supported
    from selfimprove.quiet import quiet_libraries

    quiet_libraries()
    from selfimprove.config.schema import Adapter

    try:
        check_adapter_supported(Adapter(args.adapter))
    except UserError as exc:
        raise SystemExit(f"{exc} (try --adapter lora)") from None
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "model", args.layers)
        print(f"0.5B-shaped model ({args.layers} layers), {args.adapter}, 16 examples of ~200 completion tokens")
        measure_sft(model, args.adapter, Path(tmp))
        measure_grpo(model, args.adapter)


if __name__ == "__main__":
    main()
