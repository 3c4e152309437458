"""Capabilities are declared by what a component offers (``selfimprove.capabilities``), not looked up by name: the
built-ins declare what they can do, and a plugin that offers the same is taken at its word by validation."""

from __future__ import annotations

from selfimprove import registry
from selfimprove.api import (
    GatheringGenerator,
    LiveGenerator,
    LiveWeights,
    OnlineUpdater,
    PolicyJudge,
    ReadsBuffers,
    ReadsRoles,
)
from selfimprove.capabilities import buffers_read, roles_read
from selfimprove.config.schema import load_recipe
from selfimprove.verifiers.judge import judge


def test_built_in_components_declare_what_they_can_do() -> None:
    for name in ("hf", "vllm"):
        generator = registry.get("generator", name)
        assert isinstance(generator, LiveGenerator) and isinstance(generator, GatheringGenerator)
    assert not isinstance(registry.get("generator", "openai"), LiveGenerator)  # a remote endpoint: no live weights
    for name in ("grpo", "reinforce_pp", "ppo"):
        assert isinstance(registry.get("updater", name), OnlineUpdater)
    for name in ("sft", "dpo"):
        assert not isinstance(registry.get("updater", name), OnlineUpdater)
    assert isinstance(judge(model="policy"), PolicyJudge)
    assert not isinstance(registry.get("verifier", "numeric")(), PolicyJudge)


def test_sources_and_rewards_name_what_they_read() -> None:
    source = registry.get("source", "role")(role="challenger")
    assert isinstance(source, ReadsRoles) and roles_read(source) == ("challenger",) and buffers_read(source) == ()
    buffer = registry.get("source", "buffer")(buffer="deduction")
    assert isinstance(buffer, ReadsBuffers) and buffers_read(buffer) == ("deduction",) and roles_read(buffer) == ()
    task = registry.get("source", "task")()
    assert roles_read(task) == () and buffers_read(task) == ()
    assert roles_read(registry.get("reward", "children")(role="solver")) == ("solver",)
    assert roles_read(registry.get("reward", "verdict")()) == ()


def test_the_trainers_live_policy_offers_its_weights(tiny_model: str) -> None:
    from selfimprove.config.schema import Adapter
    from selfimprove.training.trainer import Trainer
    from selfimprove.updaters.grpo import GRPO

    trainer = Trainer(tiny_model, Adapter(r=4, alpha=8), GRPO(), seed=0, total_steps=1)
    assert isinstance(trainer.policy, LiveWeights) and trainer.policy.adapter_only
    assert not isinstance(trainer.policy.reference(), LiveWeights)  # the frozen start: loaded as any model
    with trainer.policy.named_weights(adapted_only=True) as weights:
        names = [name for name, _ in weights]
    assert names and all(name.endswith("_proj.weight") and "lora" not in name for name in names)


ONLINE = """
model: {model}
loop: {{mode: online, steps: 1, batch_size: 1}}
task: {{name: arithmetic, split: train}}
generator: {{name: {generator}}}
roles: [{{name: solver, prompt: {{template: "{{question}}"}}}}]
verifier: {{name: numeric}}
updater: {{name: {updater}}}
"""


class SharedWeightsGenerator:
    """A plugin generator that declares it samples from live weights: no base class, no registration of a flag."""

    live = True

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature


class OwnObjective:
    """A plugin updater that offers what the live trainer calls: it trains online."""

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def advantages(self, batch) -> None: ...

    def loss(self, actor, batch, *args, **kwargs): ...


def test_validation_takes_a_plugin_at_what_it_declares(write_recipe, tiny_model: str) -> None:
    import pytest

    from selfimprove.errors import ConfigError

    registry.registries["generator"].register("shared-weights", SharedWeightsGenerator)
    registry.registries["updater"].register("own-objective", OwnObjective)
    recipe = load_recipe(write_recipe(ONLINE.format(model=tiny_model, generator="shared-weights",
                                                    updater="own-objective")))  # fmt: skip
    assert recipe.online
    with pytest.raises(ConfigError) as error:
        load_recipe(write_recipe(ONLINE.format(model=tiny_model, generator="openai", updater="sft")))
    message = str(error.value)
    assert "cannot sample from the live policy" in message and "trains offline" in message
