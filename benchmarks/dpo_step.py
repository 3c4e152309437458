"""One DPO training step of the `dpo` updater (TRL's DPOTrainer) against a bare PyTorch DPO step, on CPU.

Both steps run on the same trainer's model (default: the embedded SmolLM2-135M-Instruct with a LoRA adapter
initialised from an adapter, SPIN's case: the opponent is a frozen copy of it), on the same batch of pairs: the
policy's and the reference's summed completion log-probs, the sigmoid loss, backward. The bare step computes the
full logits and a log-softmax; TRL's runs its chunked LM head, which also computes per-token entropy and the
logged metrics. The question it answers: does going through DPOTrainer cost much per step?

Run:  .venv/bin/python benchmarks/dpo_step.py [--model PATH] [--pairs 4] [--steps 3]
Last line:  time_ratio=<trl/bare>
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from selfimprove.config.schema import Adapter  # noqa: E402
from selfimprove.models.embedded import resolve  # noqa: E402
from selfimprove.quiet import quiet_libraries  # noqa: E402
from selfimprove.records import Example  # noqa: E402
from selfimprove.updaters import UpdateContext  # noqa: E402
from selfimprove.updaters.dpo import DPO  # noqa: E402

WORDS = "the baker makes trays of rolls and sells them so we subtract to find how many are left over".split()


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def pairs(count: int) -> list[Example]:
    rng = random.Random(0)
    return [
        Example(f"e{i}", [{"role": "user", "content": text(rng, 30)}], text(rng, 60), rejected=text(rng, 70))
        for i in range(count)
    ]


def bare_logps(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    logps = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (logps * batch["completion_mask"][:, 1:]).sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    quiet_libraries()
    base = resolve(args.model)
    adapter = Adapter(type="lora", r=16, alpha=32)
    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "start"
        setup = dict(base=base, adapter=adapter, seed=0, iteration=1, show_progress=False)
        one_step = DPO(learning_rate=1e-4, batch_size=args.pairs, max_steps=1)
        one_step.update(UpdateContext(**setup, init=None, examples=pairs(args.pairs), output_dir=start,
                                      work_dir=Path(tmp) / "w0"))  # fmt: skip
        ctx = UpdateContext(**setup, init=str(start), previous=str(start), examples=pairs(args.pairs),
                            output_dir=Path(tmp) / "out", work_dir=Path(tmp) / "w1")  # fmt: skip
        trainer, plan, _ = DPO(batch_size=args.pairs).trainer(ctx)
        model = trainer.model
        model.train()
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(args.pairs)])
        print(f"plan={plan.how} batch={tuple(batch['input_ids'].shape)}")

        def trl_step() -> float:
            loss = trainer.compute_loss(model, batch)
            loss.backward()
            return loss.item()

        def bare_step() -> float:
            logps = bare_logps(model, batch)
            with torch.no_grad():
                model.set_adapter("ref")
                ref = bare_logps(model, batch)
                model.set_adapter("default")
            (chosen, rejected), (ref_chosen, ref_rejected) = logps.chunk(2), ref.chunk(2)
            loss = -F.logsigmoid(0.1 * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()
            loss.backward()
            return loss.item()

        seconds = {}
        for name, step in [("trl", trl_step), ("bare", bare_step)] * 2:  # interleaved, twice: load drifts
            step()  # warm-up
            model.zero_grad()
            t = time.perf_counter()
            for _ in range(args.steps):
                step()
                model.zero_grad()
            seconds.setdefault(name, []).append((time.perf_counter() - t) / args.steps)
        for name, values in seconds.items():
            print(f"{name}: {min(values):.2f} s/step (runs: {', '.join(f'{v:.2f}' for v in values)})")
        print(f"time_ratio={min(seconds['trl']) / min(seconds['bare']):.2f}")


if __name__ == "__main__":
    main()
