"""Evaluation generation throughput: selfimprove's HF generator (entropy logging on) against a bare transformers
``generate`` loop, on the same model, prompts, batches and settings, in one process.

    python benchmarks/eval_throughput.py [--model smollm2-135m-instruct] [--prompts 64] [--batch-size 16]
                                         [--max-new-tokens 64] [--temperature 0] [--repeats 3] [--no-share-prefix]

Both sides get the same batches (the generator's length-sorted ones: the comparison measures the generator's
overhead, not its batching) and are timed alternately, ``repeats`` times each after one warm-up. Tokens are the
generated tokens up to and including EOS. Prints tokens/s of each, then ``ratio=`` (generator / bare) last.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--share-prefix", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    import torch

    from selfimprove.config.schema import Prompt
    from selfimprove.generators import Request
    from selfimprove.generators.hf import HFGenerator
    from selfimprove.models import Policy
    from selfimprove.models.embedded import resolve
    from selfimprove.progress import Tracker
    from selfimprove.prompts import render, render_chat
    from selfimprove.quiet import quiet_libraries
    from selfimprove.tasks.arithmetic import Arithmetic

    quiet_libraries()
    policy = Policy(resolve(args.model))
    prompt = Prompt(system='Solve the problem. Write the calculation, then "The answer is N."')
    problems = Arithmetic().load("test")[: args.prompts]
    requests = [Request(p.id, render(prompt, p)) for p in problems]
    generator = HFGenerator(
        args.temperature, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, share_prefix=args.share_prefix
    )
    model, tokenizer = generator._load(policy)
    encoded = tokenizer([render_chat(tokenizer, r.messages) for r in requests], add_special_tokens=False)["input_ids"]
    batches = generator.batches([len(e) for e in encoded])
    sampling = {"do_sample": True, "temperature": args.temperature} if args.temperature > 0 else {"do_sample": False}

    def ours() -> int:
        tracker = Tracker(None, None)
        return sum(o.num_tokens for b in generator.generate(policy, requests, seed=0, done=set(), tracker=tracker)
                   for o in b)  # fmt: skip

    def bare() -> int:
        tokens = 0
        for batch in batches:
            inputs = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            torch.manual_seed(0)
            with torch.inference_mode():
                out = model.generate(**inputs.to(model.device), max_new_tokens=args.max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id, **sampling)  # fmt: skip
            for row in out[:, inputs["input_ids"].shape[1] :].tolist():
                tokens += row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
        return tokens

    ours(), bare()  # warm-up
    totals = {"selfimprove": [0, 0.0], "bare": [0, 0.0]}
    for _ in range(args.repeats):
        for name, fn in (("selfimprove", ours), ("bare", bare)):
            start = time.perf_counter()
            totals[name][0] += fn()
            totals[name][1] += time.perf_counter() - start
    rate = {name: tokens / seconds for name, (tokens, seconds) in totals.items()}
    print(f"model={args.model} prompts={len(requests)} batch_size={args.batch_size} "
          f"max_new_tokens={args.max_new_tokens} temperature={args.temperature} repeats={args.repeats} "
          f"share_prefix={args.share_prefix}")  # fmt: skip
    for name, (tokens, seconds) in totals.items():
        print(f"{name}: {tokens} tokens in {seconds:.1f} s = {rate[name]:.1f} tokens/s")
    print(f"ratio={rate['selfimprove'] / rate['bare']:.3f}")


if __name__ == "__main__":
    main()
