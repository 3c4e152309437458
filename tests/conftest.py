"""Shared fixtures: a tiny chat model built in the test (no hub), and recipe helpers."""

from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from selfimprove.registry import registries

ROOT = Path(__file__).resolve().parent.parent
SPECIALS = ["<pad>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(path: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A character-level tokenizer with a ChatML template and a randomly initialised tiny Llama."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chars = sorted(set(string.printable))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<|im_end|>", bos_token="<|im_start|>", unk_token="?"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=vocab["<pad>"], eos_token_id=vocab["<|im_end|>"], bos_token_id=vocab["<|im_start|>"],
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def torchrun(processes: int) -> list[str]:
    """The command prefix that starts ``processes`` CPU processes in one process group (gloo). ``accelerate launch
    --cpu`` starts only one process whatever ``--num_processes`` says; torchrun starts them all."""
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), "--master-port",
            str(port)]  # fmt: skip


@pytest.fixture(autouse=True)
def registrations() -> Iterator[None]:
    """Components a test registers in code are forgotten after it: no test sees another's. A module whose tests
    share components registers them in an autouse fixture that asks for this one."""
    with ExitStack() as stack:
        for registry in registries.values():
            stack.enter_context(registry.scope())
        yield


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture
def write_recipe(tmp_path: Path):
    """Write a YAML recipe into the test's temp folder and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


TINY_RECIPE = """
model: {model}
adapter: {{type: lora, r: 4, alpha: 8, target_modules: all-linear}}
task: {{name: arithmetic, split: train, limit: {limit}, size: 200}}
roles:
  - name: rationale
    prompt: {{template: "{{question}}"}}
  - name: rationalization
    source: {{name: task, role: rationale, passed: false}}
    prompt: {{template: "{{question}} (Hint: {{answer}})"}}
    train_prompt_from: rationale
generator: {{name: hf, temperature: 1.0, max_new_tokens: 8, batch_size: 4}}
verifier: {{name: numeric}}
selector: {{name: correct, max_per_prompt: 1}}
updater: {{name: sft, learning_rate: 1.0e-3, max_steps: 4, batch_size: 2, save_steps: 1}}
eval:
  tasks: [{{name: arithmetic, split: test, limit: 6, size: 200}}]
loop: {{iterations: {iterations}, init: base, seed: 0}}
"""
