"""``trainer.sharding: fsdp`` over two CPU processes (torchrun, gloo): the sharded trainer ends with the weights of
one unsharded process (full fine-tuning and LoRA, GRPO with its KL reference, PPO with its value head), generates
the same samples from its gathered weights, a SIGKILLed run resumes exactly, and with another number of processes;
validation refuses what sharding cannot do."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import torchrun
from test_distributed import TINY_GRPO, launch, metrics

from selfimprove.config import load_recipe
from selfimprove.errors import ConfigError
from selfimprove.registry import registries

WORKER = Path(__file__).with_name("fsdp_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def kill(proc: subprocess.Popen) -> int:
    """SIGKILL a command and, when it is torchrun, its workers (each in a session of its own, which a signal to
    torchrun does not reach); how many workers there were."""
    workers = [int(pid) for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    for pid in [*workers, proc.pid]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    return len(workers)


def run(args: list[str]) -> None:
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV) as proc:
        try:
            _, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            kill(proc)
            raise
    assert proc.returncode == 0, stderr[-4000:]


def sharded_state(folder: Path) -> dict:
    """A torch.distributed.checkpoint folder as one dict (``model``: trained parameters, ``optimizers``)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(folder, folder.with_suffix(".pt"))
    return torch.load(folder.with_suffix(".pt"), weights_only=False)


def near(a, b, tol: float = 1e-4) -> bool:
    """Equal, floats within ``tol`` (entropies and losses of weights equal to float rounding: rounding both to some
    decimals would still split a pair that straddles a boundary)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(near(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(near(x, y, tol) for x, y in zip(a, b, strict=True))
    return a == b


def records(run: Path) -> dict[str, list[dict]]:
    """Every record file of a run but the metrics: rollouts (texts, token ids, rewards), evaluations."""
    return {
        str(p.relative_to(run)): [json.loads(line) for line in p.read_text().splitlines()]
        for p in sorted(run.rglob("*.jsonl"))
        if p.name != "metrics.jsonl"
    }


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def policy_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    name = "model.safetensors" if (folder / "model.safetensors").is_file() else "adapter_model.safetensors"
    return load_file(folder / name)


def close(one: dict[str, torch.Tensor], two: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=atol, msg=key)


def test_sharded_trainer_over_two_processes_matches_one_unsharded(tiny_model: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    run([sys.executable, str(WORKER), tiny_model, str(tmp_path / "one"), "none"])
    run([*torchrun(2), str(WORKER), tiny_model, str(tmp_path / "two"), "fsdp"])
    assert (tmp_path / "two" / "processes").read_text() == "2"
    start = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    for name in ("full-grpo", "full-ppo", "lora-grpo", "lora-ppo"):
        one, two = tmp_path / "one" / name, tmp_path / "two" / name
        # the unsharded actor runs the shared system prompt once, the sharded one in every row: on one process the
        # two ways differ by up to 2e-5 after these four AdamW steps at lr 1e-2 (float rounding, amplified by Adam)
        close(policy_weights(one / "policy"), policy_weights(two / "policy"), atol=5e-5)
        assert sorted(p.name for p in (two / "sharded").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
        pushed = [torch.load(two / f"pushed-{rank}.pt") for rank in (0, 1)]  # each process's vLLM engine
        close(pushed[0], pushed[1], atol=0)
        close(torch.load(one / "pushed-0.pt"), pushed[0], atol=5e-5)
        if name.startswith("full"):  # a standard HF folder, which moved away from the start
            trained = AutoModelForCausalLM.from_pretrained(two / "policy").state_dict()
            assert max((trained[k] - start[k]).abs().max() for k in start) > 1e-3
    heads = torch.load(tmp_path / "one" / "full-ppo" / "trainer.pt", weights_only=False)["value_head"]
    sharded = sharded_state(tmp_path / "two" / "full-ppo" / "sharded")["model"]
    assert heads["weight"].abs().max() > 0
    torch.testing.assert_close(heads["weight"], sharded["value_head.weight"], rtol=1e-4, atol=5e-5)
    texts = [json.loads(p.read_text()) for p in sorted((tmp_path / "two").glob("texts-*.json"))]
    one_texts = json.loads((tmp_path / "one" / "texts-0.json").read_text())
    assert len(texts) == 2 and all(texts) and texts[0] | texts[1] == one_texts  # each process sampled its share


@pytest.mark.parametrize("adapter", ["full", "lora"])
def test_online_grpo_sharded_over_two_processes_equals_one(tiny_model: str, tmp_path: Path, adapter: str) -> None:
    overrides = [f"model={tiny_model}", "verifier.name=regex", "verifier.pattern=^[a-zA-Z]", "loop.steps=2",
                 "generator.batch_size=4", f"adapter.type={adapter}"]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    launch(1, TINY_GRPO, one, overrides)
    launch(2, TINY_GRPO, two, [*overrides, "trainer.sharding=fsdp"])
    assert near(records(one), records(two))  # the samples of the gathered weights, the rewards, the evaluations
    assert near(summary(one), summary(two))
    assert [m["requests_per_process"] for m in metrics(two, "step")] == [[8, 8], [8, 8]]
    for m1, m2 in zip(metrics(one, "step"), metrics(two, "step"), strict=True):
        assert abs(m1["loss"] - m2["loss"]) < 1e-5 and abs(m1["kl"] - m2["kl"]) < 1e-5
    final = "checkpoints/step-000002"
    close(policy_weights(one / final / "policy"), policy_weights(two / final / "policy"))
    assert (two / final / "sharded" / ".metadata").is_file()


RESUMABLE = ["verifier.name=regex", "verifier.pattern=^[a-zA-Z]", "generator.batch_size=1", "loop.steps=5",
             "loop.save_every=2", "loop.eval_every=2", "loop.keep_last=5", "adapter.type=full",
             "trainer.sharding=fsdp"]  # fmt: skip


def _cli(processes: int, run: Path, model: str) -> list[str]:
    command = ["-m", "selfimprove", "run", str(TINY_GRPO), "--run-dir", str(run), "--quiet", f"model={model}",
               *RESUMABLE]  # fmt: skip
    return [*torchrun(processes), *command] if processes > 1 else [sys.executable, *command]


def _outcome(run: Path) -> tuple[dict, dict, list, dict]:
    """summary, records, metrics (without timings) and every trained tensor: the final policy, and the sharded
    state's parameters and optimizer moments."""
    files = [p for p in sorted(run.rglob("*.jsonl")) if p.name != "metrics.jsonl"]
    texts = {str(p.relative_to(run)): p.read_text() for p in files}
    work = ("tokens_per_second", "requests_per_process")
    logged = [{k: v for k, v in json.loads(x).items() if "seconds" not in k and k not in work}
              for x in (run / "metrics.jsonl").open()]  # fmt: skip
    final = run / "checkpoints" / "step-000005"
    tensors = {f"policy.{k}": v for k, v in policy_weights(final / "policy").items()}
    state = sharded_state(final / "sharded")
    tensors |= {f"sharded.{k}": v for k, v in state["model"].items()}
    for name, moments in state["optimizers"]["state"].items():
        tensors |= {f"moments.{name}.{k}": v for k, v in moments.items() if torch.is_tensor(v)}
    return json.loads((run / "summary.json").read_text()), texts, logged, tensors


def test_sigkill_then_resume_with_the_same_and_another_number_of_processes(tiny_model: str, tmp_path: Path) -> None:
    reference, killed, fewer = tmp_path / "reference", tmp_path / "killed", tmp_path / "fewer"
    run(_cli(2, reference, tiny_model))
    partial = killed / "step-000004" / "rollouts-solver.jsonl.partial"
    proc = subprocess.Popen(_cli(2, killed, tiny_model), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 300
    try:
        while not (partial.exists() and partial.read_text().count("\n") >= 2):
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        workers = kill(proc)
    assert workers == 2
    assert not (killed / "step-000004" / "rollouts.jsonl").exists(), "killed after the step's generation"
    assert (killed / "checkpoints" / "step-000002" / "sharded").is_dir()
    shutil.copytree(killed, fewer)

    run(_cli(2, killed, tiny_model))  # the same two processes: exactly the uninterrupted run
    summary_a, records_a, metrics_a, tensors_a = _outcome(reference)
    summary_b, records_b, metrics_b, tensors_b = _outcome(killed)
    assert summary_a == summary_b and records_a == records_b and metrics_a == metrics_b
    assert tensors_a.keys() == tensors_b.keys() and any(k.startswith("moments.") for k in tensors_a)
    assert all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)
    assert not list(killed.rglob("*.partial")) and not list(killed.rglob("*.tmp"))

    run(_cli(1, fewer, tiny_model))  # one process from the two's sharded checkpoint: the same run, to float error
    assert near(summary(fewer), summary_a)
    assert near(records(fewer), records(reference))  # texts, token ids, rewards; floats (entropies) to 1e-4
    close(tensors_a, _outcome(fewer)[3])


ONLINE = """
model: m
adapter: {type: full}
task: {name: arithmetic}
verifier: {name: numeric}
updater: {name: grpo}
trainer: {sharding: fsdp}
loop: {mode: online, steps: 2}
"""


def _problems(write_recipe, text: str, overrides: list[str] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_recipe(write_recipe(text), list(overrides))
    return info.value.problems


class LiveOnly:
    """A generator that samples from the live policy but not from gathered weights (no ``gathers``)."""

    live = True

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def generate(self, policy, requests, *, seed, done, tracker):
        yield []


@pytest.fixture(autouse=True)
def components(registrations) -> None:
    registries["generator"].register("live-only", LiveOnly)


def test_validate_refuses_what_sharding_cannot_do(write_recipe) -> None:
    assert load_recipe(write_recipe(ONLINE)).trainer.sharding == "fsdp"
    assert load_recipe(write_recipe(ONLINE), ["adapter.type=lora", "generator.name=vllm"])
    offline = ONLINE.replace("updater: {name: grpo}", "updater: {name: sft}\nselector: {name: correct}")
    found = _problems(write_recipe, offline.replace("loop: {mode: online, steps: 2}", "loop: {iterations: 1}"))
    assert any("recipe.yaml:8: trainer.sharding: shards the online trainer" in p and "accelerate" in p for p in found)
    found = _problems(write_recipe, ONLINE.replace("{type: full}", "{type: qlora}"))
    assert any("recipe.yaml:3: adapter.type: QLoRA's 4-bit weights cannot be sharded" in p for p in found)
    judge = ONLINE.replace("verifier: {name: numeric}", "verifier: {name: judge, model: reference}")
    found = _problems(write_recipe, judge)
    assert any("recipe.yaml:5: verifier.model: a judge on the run's own weights (reference)" in p for p in found)
    found = _problems(write_recipe, ONLINE, ["generator.name=live-only"])
    assert any("generator.name: generator live-only cannot generate from sharded weights" in p for p in found)
    found = _problems(write_recipe, ONLINE, ["trainer.sharding=zero3"])
    assert any("trainer.sharding" in p and "zero3" in p for p in found)
