"""Two online steps of GRPO (with a KL term) and of PPO on fixed examples, full fine-tuning and LoRA, under
``sharding``; then one generation from the gathered weights. Launched by test_sharding.py alone or under torchrun.
Usage: fsdp_worker.py MODEL OUT_DIR SHARDING"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from selfimprove.config.schema import Adapter
from selfimprove.generators import Request
from selfimprove.generators.hf import HFGenerator
from selfimprove.generators.vllm import Engine, VLLMGenerator
from selfimprove.progress import Tracker
from selfimprove.training.trainer import Trainer
from selfimprove.updaters.grpo import GRPO
from selfimprove.updaters.ppo import PPO

sys.path.insert(0, str(Path(__file__).parent))
from pg_worker import examples  # noqa: E402

# a system message longer than MIN_SHARED_PREFIX tokens: the rows of a micro-batch share a prefix, which the
# unsharded actor runs once and the sharded one in every row
SYSTEM = {"role": "system", "content": "Answer with the number only."}


def with_system(step: int) -> list:
    return [replace(e, prompt=[SYSTEM, *e.prompt]) for e in examples(step)]


class PushRecorder:
    """A stand-in for vLLM's ``LLM`` and its model that keeps every weight a push loads."""

    def __init__(self) -> None:
        self.loaded: dict[str, torch.Tensor] = {}

    def apply_model(self, function):
        return [function(self)]

    def load_weights(self, weights) -> set[str]:
        self.loaded |= {name: tensor.detach().clone() for name, tensor in weights}
        return {name for name, _ in weights}

    def named_parameters(self):
        return [(name, None) for name in self.loaded]

    def reset_prefix_cache(self) -> None:
        pass


def main(model: str, out: Path, sharding: str) -> None:
    objectives = {
        "grpo": lambda: GRPO(learning_rate=1e-2, beta=0.1, epochs=2, mini_batch_size=5, max_tokens_per_micro_batch=160),
        "ppo": lambda: PPO(learning_rate=1e-2, critic_learning_rate=1e-2, critic_warmup_steps=1, epochs=2,
                           max_tokens_per_micro_batch=160),
    }  # fmt: skip
    texts = {}
    for adapter in (Adapter(type="full"), Adapter(r=4, alpha=8)):
        for name, objective in objectives.items():
            trainer = Trainer(model, adapter, objective(), seed=3, total_steps=2, sharding=sharding)
            for step in range(2):
                trainer.step(with_system(step), seed=step)
            trainer.save(out / f"{adapter.type}-{name}")
            # the vLLM generator's weight push: every process pushes the whole (gathered) weights to its engine
            generator = VLLMGenerator()
            engine = Engine(PushRecorder(), generator.settings, 4096)
            generator.push(engine, trainer.policy)
            rank = trainer.accelerator.process_index
            torch.save(engine.llm.loaded, out / f"{adapter.type}-{name}" / f"pushed-{rank}.pt")
        # the policy's samples from the gathered weights: each process generates its share of the batches
        requests = [Request(f"r{i}", [{"role": "user", "content": f"{i} + 1 = ?"}]) for i in range(6)]
        generator = HFGenerator(temperature=1.0, max_new_tokens=6, batch_size=2)
        rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
        batches = generator.generate(trainer.policy, requests, seed=1, done=set(), tracker=Tracker(None, None),
                                     shard=(rank, world))  # fmt: skip
        texts |= {f"{adapter.type}/{o.id}": o.text for batch in batches for o in batch}
    (out / f"texts-{trainer.accelerator.process_index}.json").write_text(json.dumps(texts))
    if trainer.accelerator.is_main_process:
        (out / "processes").write_text(str(trainer.accelerator.num_processes))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
