"""The vLLM generator without vLLM (it has not run on a GPU), against a stand-in for the engine: parameter names and
merged LoRA weights for load_weights, buckets, which weights are pushed when, a generate call's prompts, sampling
parameters and outputs, and the importance-sampling correction in the update."""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch

from selfimprove.capabilities import LiveWeights
from selfimprove.config.schema import Adapter
from selfimprove.errors import UserError
from selfimprove.generators import vllm as vllm_generator
from selfimprove.generators.vllm import BASE, Engine, VLLMGenerator, buckets, sampling_settings
from selfimprove.objectives.losses import importance_weights
from selfimprove.records import Example
from selfimprove.training.weights import checkpoint_names


def test_checkpoint_names_are_the_base_models_with_lora_merged(tiny_model: str) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model)
    expected_names = [name for name, _ in plain.named_parameters()]
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), lora)
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    pushed = dict(checkpoint_names(peft))
    assert list(pushed) == expected_names  # what vLLM's load_weights reads, in the model's own order
    adapted = [name for name, _ in checkpoint_names(peft, adapted_only=True)]
    assert adapted and all(name.endswith("_proj.weight") for name in adapted)
    assert "model.embed_tokens.weight" not in adapted and "model.norm.weight" not in adapted
    merged = dict(peft.merge_and_unload().named_parameters())
    assert all(torch.allclose(pushed[k], merged[k], atol=1e-6) for k in pushed)
    assert not torch.allclose(pushed["model.layers.0.self_attn.q_proj.weight"],
                              dict(plain.named_parameters())["model.layers.0.self_attn.q_proj.weight"])  # fmt: skip


def test_buckets_keep_order_and_size() -> None:
    weights = [(f"w{i}", torch.zeros(n)) for i, n in enumerate([10, 10, 30, 5, 5, 100])]  # float32: 4 bytes each
    groups = list(buckets(weights, max_bytes=80))
    assert [[name for name, _ in g] for g in groups] == [["w0", "w1"], ["w2"], ["w3", "w4"], ["w5"]]
    assert [name for g in groups for name, _ in g] == [name for name, _ in weights]


class FakeModel:
    """The engine's model: ``load_weights`` records each bucket's names and returns them (as vLLM's models report
    what they loaded); ``parameters`` are the names it has (by default whatever was ever loaded, so any push is
    whole)."""

    def __init__(self, engine: FakeEngine, parameters: set[str] | None) -> None:
        self.engine, self.parameters = engine, parameters

    def load_weights(self, weights) -> set[str]:
        names = [n for n, _ in weights]
        self.engine.loads.append(names)
        self.engine.calls.append("load")
        return set(names)

    def named_parameters(self):
        known = self.parameters if self.parameters is not None else {n for g in self.engine.loads for n in g}
        return [(name, None) for name in sorted(known)]


class FakeEngine:
    """What the generator touches of vLLM's ``LLM`` to push weights and sleep, recording the calls."""

    def __init__(self, parameters: set[str] | None = None) -> None:
        self.loads: list[list[str]] = []
        self.calls: list[str] = []
        self.model = FakeModel(self, parameters)

    def apply_model(self, function):
        return [function(self.model)]

    def reset_prefix_cache(self) -> None:
        self.calls.append("reset_prefix_cache")

    def sleep(self, level: int) -> None:
        self.calls.append(f"sleep {level}")

    def wake_up(self, tags: list[str]) -> None:
        self.calls.append(f"wake_up {' '.join(tags)}")

    def generate(self, prompts: list[dict], params: list, use_tqdm: bool) -> list:
        """Each prompt's completion: its last three prompt tokens, each sampled with log-prob -(position + 1)."""
        self.calls.append("generate")
        self.prompts, self.params = prompts, params
        results = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"][-3:]
            logprobs = [{token: SimpleNamespace(logprob=-(k + 1.0))} for k, token in enumerate(ids)]
            sample = SimpleNamespace(token_ids=ids, text=f"text of {ids}", logprobs=logprobs)
            results.append(SimpleNamespace(outputs=[sample]))
        return results


def test_weights_are_pushed_only_when_they_change_and_always_after_a_deep_sleep(tiny_model: str) -> None:
    from selfimprove.models import Policy
    from selfimprove.models.live import LoadedPolicy
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    t = Trainer(tiny_model, Adapter(r=4, alpha=8), GRPO(learning_rate=1e-2), seed=0, total_steps=3)
    everything = [name for name, _ in checkpoint_names(t.model)]
    adapted = [name for name, _ in checkpoint_names(t.model, adapted_only=True)]
    generator = VLLMGenerator(sleep_level=2)
    engine = Engine(FakeEngine(), generator.settings, 4096)
    engine.sync.pushed_key(BASE)  # as the engine starts

    def pushed(policy) -> list[list[str]]:
        before = len(engine.llm.loads)
        generator.wake_and_push(engine, policy)
        return engine.llm.loads[before:]

    def flat(loads: list[list[str]]) -> list[str]:
        return [name for group in loads for name in group]

    assert flat(pushed(t.policy)) == everything  # the engine holds the base model: LoRA merged into every layer
    assert pushed(t.policy) == []  # the policy has not moved
    t.step([Example(f"e{i}", [{"role": "user", "content": "q"}], "ab"[i], reward=float(i), group="g")
            for i in range(2)], seed=0)  # fmt: skip
    assert flat(pushed(t.policy)) == adapted  # one update later: only the adapted layers changed
    assert flat(pushed(t.policy.reference())) == everything  # the starting weights (a judge's): the base model's
    assert pushed(LoadedPolicy(Policy(t.base))) == []  # the base model again: already there
    assert flat(pushed(t.policy)) == everything  # back to the policy from the base: every layer
    generator.sleep(engine)
    assert engine.llm.calls[-1] == "sleep 2"
    assert flat(pushed(t.policy)) == everything  # the deepest sleep left the weights undefined: all of them again
    assert engine.llm.calls.count("reset_prefix_cache") == 5  # stale cached keys never serve new weights


class OfferedWeights:
    """Not the trainer: anything that offers ``LiveWeights`` is pushed through ``named_weights`` alone."""

    tokenizer = None

    def __init__(self, base: str, names: list[str], adapted: list[str]) -> None:
        self.base, self.names, self.adapted, self.version, self.adapter_only = base, names, adapted, 0, True
        self.asked: list[bool] = []

    @contextmanager
    def gathered(self):
        yield None

    @contextmanager
    def named_weights(self, adapted_only: bool = False):
        self.asked.append(adapted_only)
        yield ((name, torch.zeros(2)) for name in (self.adapted if adapted_only else self.names))

    def inference_model(self):
        raise AssertionError("a generator reads live weights through named_weights only")

    def reference(self):
        return self


def test_live_weights_are_pushed_through_the_interface_the_trainer_offers() -> None:
    live = OfferedWeights("/base", ["a", "b", "c"], ["b"])
    assert isinstance(live, LiveWeights)
    generator = VLLMGenerator()
    engine = Engine(FakeEngine(), generator.settings, 4096)
    engine.sync.pushed_key(BASE)

    def pushed() -> list[str]:
        before = len(engine.llm.loads)
        generator.push(engine, live)
        return [name for group in engine.llm.loads[before:] for name in group]

    assert pushed() == ["a", "b", "c"]  # from the base model: everything
    assert pushed() == []  # the same version: nothing
    live.version = 1
    assert pushed() == ["b"]  # an adapter's update: only what it changes
    live.adapter_only = False
    live.version = 2
    assert pushed() == ["a", "b", "c"]  # full fine-tuning: everything
    assert live.asked == [False, True, False]


def test_a_generate_call_against_a_stand_in_engine(tiny_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from selfimprove.generators import Request
    from selfimprove.generators.hf import batch_seed
    from selfimprove.models import Policy
    from selfimprove.models.live import LoadedPolicy
    from selfimprove.progress import Tracker
    from selfimprove.prompts import render_chat

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(SamplingParams=lambda **kw: kw))
    generator = VLLMGenerator(temperature=0.7, max_new_tokens=5, sleep_level=2)
    engine = Engine(FakeEngine(), generator.settings, 4096)
    engine.sync.pushed_key(BASE)
    monkeypatch.setitem(vllm_generator._ENGINES, tiny_model, engine)
    policy = LoadedPolicy(Policy(tiny_model))
    requests = [Request(f"r{i}", [{"role": "user", "content": "ab" * (i + 1)}]) for i in range(5)]

    def run(**kw) -> list[list]:
        return list(generator.generate(policy, requests, seed=3, tracker=Tracker(None, None), **kw))

    batches = run(done={"r2"}, shard=(0, 2))  # this process's share: r0, r2, r4; r2 is done
    assert len(batches) == 1 and [o.id for o in batches[0]] == ["r0", "r4"]
    tokenizer = policy.tokenizer
    expected = [tokenizer(render_chat(tokenizer, requests[i].messages), add_special_tokens=False)["input_ids"]
                for i in (0, 4)]  # fmt: skip
    assert [p["prompt_token_ids"] for p in engine.llm.prompts] == expected  # no second BOS from vLLM's encoding
    assert [p["seed"] for p in engine.llm.params] == [batch_seed(3, "r0"), batch_seed(3, "r4")]
    assert all(p["temperature"] == 0.7 and p["max_tokens"] == 5 and p["logprobs"] == 0 for p in engine.llm.params)
    for output, ids in zip(batches[0], expected, strict=True):
        assert output.token_ids == ids[-3:] and output.num_tokens == 3 and output.logprobs == [-1.0, -2.0, -3.0]
    assert engine.llm.calls == ["generate", "sleep 2"]  # the base weights were there: nothing pushed
    loads = ["load"] * len(list(buckets(checkpoint_names(policy.inference_model()), generator.bucket_mb * 2**20)))
    assert run(done={"r0", "r2", "r4"}, shard=(0, 2)) == [[]]  # nothing left here: one empty batch, as every process
    # it still woke and pushed (under sharding the push all-gathers: every process takes part), then slept again
    assert engine.llm.calls[2:] == ["wake_up weights", *loads, "wake_up kv_cache", "reset_prefix_cache", "sleep 2"]
    del engine.llm.calls[2:]
    run(done=set(), shard=(1, 2))
    # after the deep sleep: the weights wake, are pushed (all of them), and only then the KV cache wakes
    assert engine.llm.calls[2:] == ["wake_up weights", *loads, "wake_up kv_cache", "reset_prefix_cache", "generate",
                                    "sleep 2"]  # fmt: skip


def test_sampling_settings() -> None:
    assert sampling_settings(0.0, 0.9, 40, 64, [], 7) == {
        "temperature": 0.0, "top_p": 1.0, "top_k": -1, "max_tokens": 64, "stop": None, "seed": 7, "logprobs": 0,
    }  # fmt: skip
    sampled = sampling_settings(0.7, 0.95, 0, 32, ["###"], 3)
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"], sampled["stop"]) == (0.7, 0.95, -1, ["###"])
    assert sampling_settings(1.0, 1.0, 40, 8, [], 1)["top_k"] == 40


def test_importance_weights_are_the_truncated_ratio() -> None:
    train = torch.tensor([math.log(0.5), math.log(0.9), math.log(0.9)])
    sampler = torch.tensor([math.log(0.5), math.log(0.3), math.log(0.1)])
    assert torch.allclose(importance_weights(train, sampler), torch.tensor([1.0, 3.0, 3.0]))
    assert torch.allclose(importance_weights(sampler, train), torch.tensor([1.0, 1 / 3, 1 / 9]))


def test_the_update_weighs_tokens_another_engine_sampled(tiny_model: str) -> None:
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    def trainer_and_examples() -> tuple[Trainer, list[Example]]:
        t = Trainer(tiny_model, Adapter(r=4, alpha=8), GRPO(learning_rate=1e-2), seed=0, total_steps=2)
        examples = [Example(f"e{i}", [{"role": "user", "content": "q"}], "", reward=float(i), group="g",
                            completion_ids=[10 + i, 11, 12]) for i in range(2)]  # fmt: skip
        return t, examples

    t, examples = trainer_and_examples()
    assert t.score(examples).old_logps is None  # one on-policy step the trainer itself sampled: no scoring pass
    own = t.step(examples, seed=0)["grad_norm"]

    t, examples = trainer_and_examples()
    scored = t._score(t.accelerator.unwrap_model(t.actor), *_ids(t, examples))[0]
    for e, logps in zip(examples, scored, strict=True):
        e.sampler_logps = [lp - math.log(2) for lp in logps.tolist()]  # the sampler gave each token half the chance
    batch = t.score(examples)
    assert batch.old_logps is not None and torch.allclose(batch.is_weights, torch.full_like(batch.is_weights, 2.0))
    assert t.step(examples, seed=0)["grad_norm"] == pytest.approx(2 * own, rel=1e-4)  # every token weighs double


def test_importance_weights_line_up_with_each_completions_tokens(tiny_model: str) -> None:
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    t = Trainer(tiny_model, Adapter(r=4, alpha=8), GRPO(), seed=0, total_steps=1)
    examples = [Example(f"e{i}", [{"role": "user", "content": "q" * (i + 1)}], "", reward=float(i), group="g",
                        completion_ids=list(range(10, 10 + n))) for i, n in enumerate([4, 2, 3])]  # fmt: skip
    scored = t._score(t.accelerator.unwrap_model(t.actor), *_ids(t, examples))[0]
    shifts = [[0.0, 0.5, 2.0, float("nan")], [-1.0, 0.25], [0.1]]  # the last is shorter than its completion
    for e, logps, shift in zip(examples, scored, shifts, strict=True):
        e.sampler_logps = [lp - d for lp, d in zip(logps.tolist(), shift, strict=False)]
    batch = t.score(examples)
    expected = torch.tensor([
        [1.0, math.exp(0.5), 3.0, 1.0],  # capped at 3; a NaN from the sampler weighs 1
        [math.exp(-1.0), math.exp(0.25), 0.0, 0.0],  # padding
        [math.exp(0.1), 1.0, 1.0, 0.0],  # tokens without the sampler's log-prob weigh 1
    ])  # fmt: skip
    assert torch.allclose(batch.is_weights, expected, atol=1e-5)


def _ids(t, examples):
    from selfimprove.tokens import encode

    pairs = [encode(t.tokenizer, e.prompt, e.completion, e.completion_ids) for e in examples]
    return [p for p, _ in pairs], [c for _, c in pairs], t.tokenizer.pad_token_id


def test_the_generator_says_what_it_needs() -> None:
    with pytest.raises(UserError, match="gpu_memory_utilization"):
        VLLMGenerator(gpu_memory_utilization=0)
    with pytest.raises(UserError, match="sleep_level"):
        VLLMGenerator(sleep_level=3)
    assert "not yet run on a GPU" in VLLMGenerator.__doc__
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="needs vLLM"):
            VLLMGenerator().engine("/some/model")


def test_the_generators_of_a_run_share_one_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = Engine(FakeEngine(), VLLMGenerator().settings, 4096)
    monkeypatch.setitem(vllm_generator._ENGINES, "/base", shared)
    assert VLLMGenerator(temperature=0.0, max_new_tokens=9).engine("/base") is shared  # sampling settings differ
    with pytest.raises(UserError, match="share one engine"):
        VLLMGenerator(gpu_memory_utilization=0.5).engine("/base")


def test_a_push_that_leaves_a_parameter_unloaded_fails_loudly(tiny_model: str) -> None:
    from selfimprove.models import Policy
    from selfimprove.models.live import LoadedPolicy

    policy = LoadedPolicy(Policy(tiny_model))
    everything = {name for name, _ in checkpoint_names(policy.inference_model())}
    generator = VLLMGenerator()
    whole = Engine(FakeEngine(parameters=everything), generator.settings, 4096)
    generator.push(whole, policy)
    assert whole.sync.pushed == BASE
    short = Engine(FakeEngine(parameters=everything | {"model.extra.weight"}), generator.settings, 4096)
    with pytest.raises(RuntimeError, match="1 of the engine's parameters unloaded"):
        generator.push(short, policy)
    assert short.sync.pushed is None  # not recorded as held


def test_every_process_makes_its_engine_even_with_an_empty_share(tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine start-up is collective under external_launcher: a process that returned before it would hang the rest."""
    from selfimprove.generators import Request
    from selfimprove.models import Policy
    from selfimprove.models.live import LoadedPolicy
    from selfimprove.progress import Tracker

    made: list[str] = []
    engine = Engine(FakeEngine(), VLLMGenerator().settings, 4096)
    monkeypatch.setattr(VLLMGenerator, "engine", lambda self, base: made.append(base) or engine)
    requests = [Request("r0", [{"role": "user", "content": "ab"}])]
    batches = list(VLLMGenerator().generate(LoadedPolicy(Policy(tiny_model)), requests, seed=0, done=set(),
                                            tracker=Tracker(None, None), shard=(1, 2)))  # fmt: skip
    assert batches == [[]] and made == [tiny_model]


def test_engine_start_up_leaves_the_trainers_generators_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    import numpy as np

    def reseeding_llm(**kw):  # what vLLM's start-up does: set_random_seed
        random.seed(0), np.random.seed(0), torch.manual_seed(0)
        return FakeEngine()

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=reseeding_llm, __version__="0.11.0"))
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    engine = VLLMGenerator(max_new_tokens=64).engine("/a-base-model")
    monkeypatch.delitem(vllm_generator._ENGINES, "/a-base-model")
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert engine.max_model_len == 2048 + 64  # prompt plus new tokens, not the model's whole context


def test_old_vllm_and_prompts_past_the_engines_length_are_refused(tiny_model, monkeypatch) -> None:
    from selfimprove.generators import Request
    from selfimprove.models import Policy
    from selfimprove.models.live import LoadedPolicy
    from selfimprove.progress import Tracker

    with pytest.raises(UserError, match="0.10.2"):
        vllm_generator.check_version("0.10.1")
    vllm_generator.check_version("0.10.2")
    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(SamplingParams=lambda **kw: kw))
    generator = VLLMGenerator(max_new_tokens=8)
    monkeypatch.setitem(vllm_generator._ENGINES, tiny_model, Engine(FakeEngine(), generator.settings, 10))
    requests = [Request("r0", [{"role": "user", "content": "a rather long question " * 4}])]
    with pytest.raises(UserError, match="max_prompt_tokens"):
        list(generator.generate(LoadedPolicy(Policy(tiny_model)), requests, seed=0, done=set(),
                                tracker=Tracker(None, None)))  # fmt: skip


def test_validate_refuses_a_second_engine_beside_sleep_mode() -> None:
    from pathlib import Path

    from selfimprove.config import load_recipe
    from selfimprove.errors import ConfigError

    recipe = Path(__file__).parent.parent / "recipes" / "tiny" / "lsp.yaml"
    engine = "generator={name: vllm, temperature: 1.0, max_new_tokens: 8, sleep_level: %d}"
    vllm = [engine % 1, "roles.1.verifiers.1.generator=vllm"]
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe, [*vllm, "roles.1.verifiers.1.model=/another/model"])
    assert any("roles.1.verifiers.1.model" in p and "one sleep-mode engine" in p for p in info.value.problems)
    load_recipe(recipe, vllm)  # the judge on the reference weights: the run's own engine serves it
    load_recipe(
        recipe, [engine % 0, "roles.1.verifiers.1.generator=vllm", "roles.1.verifiers.1.model=/another/model"]
    )  # no sleep: two engines can share the device
