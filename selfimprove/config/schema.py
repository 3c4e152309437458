"""The recipe schema: dataclasses for fixed sections, registry components for the rest.

``load_recipe`` reads, merges includes and overrides, then checks everything
it can without loading a model: unknown keys, types, component names, and each
component's arguments against its constructor. All problems are reported at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import inspect
import string
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from selfimprove import registry
from selfimprove.capabilities import (
    GatheringGenerator,
    LiveGenerator,
    OnlineUpdater,
    buffers_read,
    roles_read,
)
from selfimprove.config.loader import KeyPath, Located, format_path, load_yaml
from selfimprove.config.overrides import apply_overrides
from selfimprove.config.typecheck import describe, matches
from selfimprove.errors import ConfigError, UserError

# Keys of a component node that the loop reads itself, not the component: a task's split and limit, the label a
# verifier's verdicts are kept under, a reward function's weight in its role's sum (and the label of its part).
LOOP_KEYS: dict[str, dict[str, Any]] = {
    "task": {"split": str, "limit": int | None, "prompt_from": str, "label": str},
    "verifier": {"label": str},
    "reward": {"weight": int | float, "label": str},
}


@dataclass
class Component:
    """A registry component named in a recipe: ``{name: numeric, tolerance: 1e-6}``."""

    kind: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    split: str = "train"
    limit: int | None = None
    label: str | None = None
    weight: float = 1.0
    prompt_from: str | None = None  # an eval task: the role whose prompt it is asked with (default: eval.prompt_from)

    @property
    def tag(self) -> str:
        """What this component's results are kept under: its label, else its name."""
        return self.label or self.name

    def build(self, **overrides: Any) -> Any:
        return registry.get(self.kind, self.name)(**{**self.args, **overrides})


@dataclass
class Prompt:
    """Chat prompt: an optional system message, few-shot turns and a user template. ``chat: false`` gives the model
    the plain text instead, without its chat template (a base model prompted as AZR prompts one)."""

    template: str = "{question}"
    system: str | None = None
    few_shot: list[dict[str, Any]] = field(default_factory=list)  # numbers are fine: answer: 72
    train_few_shot: bool = False  # keep the exemplars in the prompt the update trains on (STaR: no)
    chat: bool = True


@dataclass
class Role:
    """One generation pass of a step (an offline iteration is a step whose batch is the whole split). Later roles
    can work on earlier roles' results.

    Its ``source`` says where its problems come from (default: the step's batch of the task; ``{name: task, role:
    rationale, passed: false}`` the problems an earlier role failed, STaR's rationalization) and its ``verifiers``
    judge the rollouts (default: the recipe's verifier). Offline, ``train_prompt_from`` trains on another role's
    prompt (STaR's hint-free one). Online, its reward functions (``rewards``, default: the first verifier's score)
    score every rollout, its advantages are grouped by ``group_by`` and its loss weighted by ``loss_weight``;
    ``train: false`` keeps it out of the update (AZR's learnability samples only score proposals). ``stage: seed``
    runs the role only in the seeding stage, the rounds before the first step that fill the buffers
    (``buffers[].target``, ``loop.seed_steps``), never in a step.
    """

    name: str
    prompt: Prompt = field(default_factory=Prompt)
    train_prompt_from: str | None = None
    n: int = 1
    generation: dict[str, Any] = field(default_factory=dict)
    source: Component | None = field(default=None, metadata={"kind": "source"})
    verifiers: list[Component] | None = field(default=None, metadata={"kind": "verifier"})
    rewards: list[Component] = field(default_factory=list, metadata={"kind": "reward"})
    group_by: list[str] = field(default_factory=lambda: ["role", "problem_id"])
    loss_weight: float = 1.0
    train: bool = True
    stage: Literal["train", "seed"] = "train"


ONLINE_ROLE_KEYS = ("rewards", "group_by", "loss_weight", "train", "stage")
# Keys a recipe of an earlier version may still hold, with what replaced them.
RETIRED_KEYS = {
    (Role, "when"): "replaced by the role's source: when: {role: R, passed: P} is source: {name: task, role: R, "
    "passed: P}",
}


@dataclass
class Adapter:
    type: Literal["lora", "qlora", "full"] = "lora"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"


@dataclass
class Loop:
    """Offline (``iterations`` over the task's split, each ending in an update) or online (``steps``, each drawing
    ``batch_size`` problems and ending in one update of the live policy)."""

    mode: Literal["offline", "online"] = "offline"
    seed: int = 0
    # offline
    iterations: int = 1
    init: Literal["base", "previous"] = "base"
    replay: int = 0  # also train on the examples selected in the previous N iterations (SPIN: 1)
    # the checkpoint iteration 1 starts from (a PEFT adapter or HF model folder an earlier run wrote, e.g. SPIN's
    # SFT start); with init: previous. None: the base model
    start: str | None = None
    # online
    steps: int = 0
    batch_size: int = 8  # problems drawn from the task per step
    eval_every: int = 0  # evaluate every N steps (0: only at the start and the end)
    save_every: int = 50  # checkpoint every N steps, and at the end
    keep_last: int = 2  # checkpoints kept
    max_failed_rewards: float = 0.5  # a step where a larger share of rollouts has no reward stops the run
    seed_steps: int = 0  # at most this many seeding rounds before step 1 (0: no seeding stage)


OFFLINE_LOOP_KEYS = ("iterations", "init", "replay", "start")
ONLINE_LOOP_KEYS = ("steps", "batch_size", "eval_every", "save_every", "keep_last", "max_failed_rewards", "seed_steps")


@dataclass
class TrainerSettings:
    """How an online run's trainer spreads the model over the processes: ``none`` (DDP, every process holds the
    whole model, its gradients and optimizer state) or ``fsdp`` (each holds a slice of them: PyTorch FSDP2, see
    ``selfimprove.training.sharding`` and docs/scaling.md)."""

    sharding: Literal["none", "fsdp"] = "none"


@dataclass
class BufferSpec:
    """A buffer of problems that lives across the steps of an online run (see ``selfimprove.sources.buffer``):
    ``seed`` problems to start with, then those of ``seed_file`` (JSONL, one problem's meta a line, merged over
    ``seed_meta``), filled at the end of every step by the problems of ``feed`` (a source). With a ``target``, the
    seeding stage (``loop.seed_steps`` rounds at most, roles with ``stage: seed``) adds ``seed_feed``'s problems,
    each once, until the buffer holds ``target``, and keeps the first ``target``."""

    name: str
    feed: Component | None = field(default=None, metadata={"kind": "source"})
    seed: list[dict[str, Any]] = field(default_factory=list)
    max_size: int = 0
    seed_file: str | None = None
    seed_meta: dict[str, Any] = field(default_factory=dict)
    target: int = 0
    seed_feed: Component | None = field(default=None, metadata={"kind": "source"})


@dataclass
class Eval:
    tasks: list[Component] = field(default_factory=list, metadata={"kind": "task", "split": "test"})
    generation: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.0})
    prompt_from: str | None = None
    few_shot: bool = False  # evaluate with the role's exemplars; off: the prompt the updates train on
    verifier: Component | None = field(default=None, metadata={"kind": "verifier"})
    n: int = 1  # n > 1: besides the greedy pass, n samples per problem at `temperature` for pass@k and maj@k
    k: list[int] = field(default_factory=list)  # the k of pass@k / maj@k to report (default: 1 and n)
    temperature: float = 1.0  # the samples' temperature; the other generation settings are shared


@dataclass
class Logging:
    """Optional metric backends, off by default; each needs its package installed."""

    PACKAGES: ClassVar[dict[str, str]] = {"tensorboard": "tensorboard", "wandb": "wandb"}

    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "selfimprove"

    def missing_packages(self) -> dict[str, str]:
        """Backends enabled here whose package is not installed -> what to do about it."""
        return {
            backend: f"needs the package '{package}': pip install {package}"
            for backend, package in self.PACKAGES.items()
            if getattr(self, backend) and importlib.util.find_spec(package) is None
        }


@dataclass
class Recipe:
    model: str
    updater: Component = field(metadata={"kind": "updater"})
    task: Component | None = field(default=None, metadata={"kind": "task"})
    verifier: Component | None = field(default=None, metadata={"kind": "verifier"})
    selector: Component | None = field(default=None, metadata={"kind": "selector"})
    generator: Component = field(default_factory=lambda: Component("generator", "hf"), metadata={"kind": "generator"})
    roles: list[Role] = field(default_factory=lambda: [Role(name="solver")])
    adapter: Adapter = field(default_factory=Adapter)
    eval: Eval = field(default_factory=Eval)
    loop: Loop = field(default_factory=Loop)
    logging: Logging = field(default_factory=Logging)
    buffers: list[BufferSpec] = field(default_factory=list)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    name: str = ""
    description: str = ""
    source: str = field(default="", metadata={"internal": True})
    resolved: dict[str, Any] = field(default_factory=dict, metadata={"internal": True})

    def role(self, name: str) -> Role:
        return next(r for r in self.roles if r.name == name)

    @property
    def online(self) -> bool:
        return self.loop.mode == "online"

    def verifiers_of(self, role: Role) -> list[Component]:
        """A role's verifiers: its own, else the recipe's one (online roles may have none)."""
        if role.verifiers is not None:
            return role.verifiers
        return [self.verifier] if self.verifier else []


class _Builder:
    def __init__(self, located: Located):
        self.located = located
        self.problems: list[str] = []

    def problem(self, path: KeyPath, message: str) -> None:
        self.problems.append(f"{self.located.at(path)}: {format_path(path)}: {message}")

    def dataclass(self, cls: type, data: Any, path: KeyPath) -> Any:
        if not isinstance(data, dict):
            self.problem(path, f"expected a mapping, got {data!r}")
            return None
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if (cls, key) in RETIRED_KEYS:
                self.problem((*path, key), RETIRED_KEYS[cls, key])
                continue
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                self.problem((*path, key), f"unknown key.{hint} Allowed: {', '.join(fields)}")
                continue
            kwargs[key] = self.value(fields[key], hints[key], value, (*path, key))
        for name, f in fields.items():
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.problem(path, f"missing required key '{name}'")
        if any(v is _BAD for v in kwargs.values()) or len(self.problems):
            return {k: v for k, v in kwargs.items() if v is not _BAD}  # keep checking; result unused
        return cls(**kwargs)

    def value(self, f: dataclasses.Field, tp: Any, value: Any, path: KeyPath) -> Any:
        kind = f.metadata.get("kind")
        if kind and isinstance(value, dict) and "name" not in value and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
            if isinstance(default, Component):  # generator: {temperature: 0.7} keeps the default generator
                value = {"name": default.name, **value}
        if kind:
            if value is None and matches(None, tp):
                return None
            is_list = any(typing.get_origin(a) is list for a in (tp, *typing.get_args(tp)))
            if is_list:
                if not isinstance(value, list):
                    self.problem(path, f"expected a list of {kind}s, got {value!r}")
                    return _BAD
                return [self.component(kind, v, (*path, i), f.metadata.get("split")) for i, v in enumerate(value)]
            return self.component(kind, value, path, f.metadata.get("split"))
        is_union = typing.get_origin(tp) in (typing.Union, types.UnionType)
        inner = [a for a in typing.get_args(tp) if a is not type(None)] if is_union else [tp]
        target = typing.get_args(inner[0])[0] if typing.get_origin(inner[0]) is list else inner[0]
        if dataclasses.is_dataclass(target):
            if value is None and matches(None, tp):
                return None
            if typing.get_origin(inner[0]) is list:
                if not isinstance(value, list):
                    self.problem(path, f"expected a list, got {value!r}")
                    return _BAD
                return [self.dataclass(target, v, (*path, i)) for i, v in enumerate(value)]
            return self.dataclass(target, value, path)
        if not matches(value, tp):
            self.problem(path, f"expected {describe(tp)}, got {value!r}")
            return _BAD
        return value

    def component(self, kind: str, node: Any, path: KeyPath, default_split: str | None) -> Any:
        if isinstance(node, str):
            node = {"name": node}
        if not isinstance(node, dict) or not isinstance(node.get("name"), str):
            self.problem(path, f"a {kind} needs a 'name', e.g. {{name: ...}}; got {node!r}")
            return _BAD
        args = dict(node)
        name = args.pop("name")
        spec = Component(kind, name, split=default_split or "train")
        for key, tp in LOOP_KEYS.get(kind, {}).items():
            if key in args:
                value = args.pop(key)
                if not matches(value, tp):
                    self.problem((*path, key), f"expected {describe(tp)}, got {value!r}")
                else:
                    setattr(spec, key, value)
        spec.args = args
        reg = registry.registries[kind]
        if name not in reg.entries():
            self.problem((*path, "name"), reg.unknown_message(name))
            return _BAD
        try:
            factory = reg.get(name)
        except UserError as exc:
            self.problem((*path, "name"), str(exc))
            return _BAD
        if self.check_args(factory, args, path, f"{kind} '{name}'"):
            try:
                factory(**args)  # constructors are cheap by contract: they check, never load models
            except UserError as exc:
                self.problem(path, str(exc))
        return spec

    def check_args(self, factory: Any, args: dict[str, Any], path: KeyPath, what: str) -> bool:
        sig = inspect.signature(factory)
        try:
            hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
        except Exception:
            hints = {}
        params = {n: p for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        ok = True
        for key, value in args.items():
            if key not in params:
                if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
                    continue
                close = difflib.get_close_matches(key, list(params), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                self.problem((*path, key), f"{what} has no argument '{key}'.{hint} Accepts: {', '.join(params)}")
                ok = False
            elif key in hints and not matches(value, hints[key]):
                self.problem((*path, key), f"{what}: expected {describe(hints[key])}, got {value!r}")
                ok = False
        for name, p in params.items():
            if p.default is p.empty and name not in args:
                self.problem(path, f"{what} needs argument '{name}'")
                ok = False
        return ok


_BAD = object()


def _template_fields(template: str) -> list[str]:
    """The names a template looks up (``{meta.x}`` -> ``meta``); ValueError when it is malformed."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    names = [f.split(".")[0].split("[")[0] for f in fields]
    if any(not n or n.isdigit() for n in names):
        raise ValueError("fields must be named, like {question}")
    return names


def _check_roles(recipe: Recipe, b: _Builder) -> None:
    if not recipe.roles:
        b.problem(("roles",), "needs at least one role")
    seen: list[str] = []
    for i, role in enumerate(recipe.roles):
        path: KeyPath = ("roles", i)
        if role.name in seen:
            b.problem((*path, "name"), f"duplicate role name '{role.name}'")
        if role.n < 1:
            b.problem((*path, "n"), f"must be at least 1, got {role.n}")
        same_stage = [r.name for r in recipe.roles[:i] if r.stage == role.stage]  # the roles a step (a round) ran
        buffers = [buf.name for buf in recipe.buffers]
        _check_source(role.source or Component("source", "task"), (*path, "source"), same_stage, buffers, b)
        try:  # the system message is used verbatim; only the template is formatted
            fields = _template_fields(role.prompt.template)
        except ValueError as exc:
            b.problem((*path, "prompt", "template"), f"bad template {role.prompt.template!r}: {exc}")
            fields = []
        for j, shot in enumerate(role.prompt.few_shot):
            missing = [k for k in dict.fromkeys([*fields, "completion"]) if k not in shot]
            if missing:
                b.problem((*path, "prompt", "few_shot", j), f"few-shot example lacks {', '.join(missing)}")
        seen.append(role.name)
        b.check_args(
            registry.get("generator", recipe.generator.name), role.generation, (*path, "generation"), "generation"
        )
    names = [r.name for r in recipe.roles]
    for i, role in enumerate(recipe.roles):
        if role.train_prompt_from and role.train_prompt_from not in names:
            b.problem(("roles", i, "train_prompt_from"), f"no role '{role.train_prompt_from}' (roles: {names})")
    if recipe.eval.prompt_from and recipe.eval.prompt_from not in names:
        b.problem(("eval", "prompt_from"), f"no role '{recipe.eval.prompt_from}' (roles: {names})")
    for i, task in enumerate(recipe.eval.tasks):
        if task.prompt_from and task.prompt_from not in names:
            b.problem(("eval", "tasks", i, "prompt_from"), f"no role '{task.prompt_from}' (roles: {names})")
    b.check_args(
        registry.get("generator", recipe.generator.name), recipe.eval.generation, ("eval", "generation"), "generation"
    )
    _check_eval_sampling(recipe.eval, b)
    eval_names = [t.tag for t in recipe.eval.tasks]
    for i, name in enumerate(eval_names):
        if name in eval_names[:i]:  # results and files are keyed by task name (or label)
            b.problem(("eval", "tasks", i), f"task '{name}' is listed twice; give one a label (label: ...)")
    if recipe.loop.iterations < 0:
        b.problem(("loop", "iterations"), f"must be 0 or more, got {recipe.loop.iterations}")
    if recipe.loop.replay < 0:
        b.problem(("loop", "replay"), f"must be 0 or more, got {recipe.loop.replay}")
    if recipe.loop.start is not None and recipe.loop.init != "previous":
        b.problem(("loop", "start"), "a start checkpoint needs loop.init: previous (init: base trains from the base)")


def _check_mode(recipe: Recipe, b: _Builder) -> None:
    """What an offline or an online run needs, and the rules between components, before any model loads."""
    raw_loop = b.located.data.get("loop") or {}
    updater = registry.get("updater", recipe.updater.name)
    online_updater = isinstance(updater, OnlineUpdater)
    if not recipe.online:
        if online_updater:
            b.problem(("updater", "name"), f"updater {recipe.updater.name} trains online, one step at a time on the "
                      "live policy: set loop.mode: online (with loop.steps)")  # fmt: skip
        for key in ONLINE_LOOP_KEYS:
            if isinstance(raw_loop, dict) and key in raw_loop:
                b.problem(("loop", key), "applies to online runs (loop.mode: online)")
        for i, role in enumerate(b.located.data.get("roles") or []):
            for key in ONLINE_ROLE_KEYS:
                if isinstance(role, dict) and key in role:
                    b.problem(("roles", i, key), "applies to online runs (loop.mode: online)")
        for key in ("task", "verifier", "selector"):
            if getattr(recipe, key) is None:
                b.problem((), f"an offline run needs '{key}'")
        if recipe.buffers:
            b.problem(("buffers",), "buffers live across the steps of an online run (loop.mode: online)")
        return
    if not online_updater:
        b.problem(("updater", "name"), f"updater {recipe.updater.name} trains offline, on a whole iteration's "
                  "examples: online runs take grpo, reinforce_pp or ppo")  # fmt: skip
    for key in OFFLINE_LOOP_KEYS:
        if isinstance(raw_loop, dict) and key in raw_loop:
            b.problem(("loop", key), "applies to offline runs; an online run keeps one live policy for loop.steps")
    if recipe.selector is not None:
        b.problem(("selector",), "online runs train on every rewarded rollout of a step; remove the selector")
    generator = registry.get("generator", recipe.generator.name)
    if not isinstance(generator, LiveGenerator):
        b.problem(("generator", "name"), f"generator {recipe.generator.name} cannot sample from the live policy")
    minimums = {"steps": 0, "batch_size": 1, "eval_every": 0, "save_every": 1, "keep_last": 1, "seed_steps": 0}
    for key, minimum in minimums.items():
        if getattr(recipe.loop, key) < minimum:
            b.problem(("loop", key), f"must be at least {minimum}, got {getattr(recipe.loop, key)}")
    if not 0 <= recipe.loop.max_failed_rewards <= 1:
        b.problem(("loop", "max_failed_rewards"), f"is a share between 0 and 1, got {recipe.loop.max_failed_rewards}")
    buffers = [buf.name for buf in recipe.buffers]
    for i, buf in enumerate(recipe.buffers):
        if buf.name in buffers[:i]:
            b.problem(("buffers", i, "name"), f"duplicate buffer name '{buf.name}'")
        if buf.feed is not None:
            _check_source(buf.feed, ("buffers", i, "feed"), [r.name for r in recipe.roles], buffers, b)
        if buf.seed_feed is not None:
            seeding = [r.name for r in recipe.roles if r.stage == "seed"]
            _check_source(buf.seed_feed, ("buffers", i, "seed_feed"), seeding, buffers, b)
        if buf.target < 0:
            b.problem(("buffers", i, "target"), f"must be 0 or more, got {buf.target}")
    uses_task = False
    for i, role in enumerate(recipe.roles):
        path: KeyPath = ("roles", i)
        if role.train_prompt_from:
            b.problem((*path, "train_prompt_from"), "applies to offline runs: online, the update scores the prompt "
                      "each rollout was sampled from")  # fmt: skip
        uses_task |= (role.source or Component("source", "task")).name == "task"
        verifiers = recipe.verifiers_of(role)
        tags = [v.tag for v in verifiers]
        for j, tag in enumerate(tags):
            if tag in tags[:j]:
                b.problem((*path, "verifiers", j), f"two verifiers under '{tag}': give one a label (label: ...)")
        if not role.rewards and not verifiers and role.train:
            b.problem(path, f"role '{role.name}' has no verifier and no rewards: nothing to train it on")
        names = [r.name for r in recipe.roles]
        for j, reward in enumerate(role.rewards):
            for other in roles_read(_built(reward)):
                if other not in names:
                    b.problem((*path, "rewards", j), f"reads role '{other}', which this recipe does not have")
        for j, key in enumerate(role.group_by):
            if key not in ("role", "problem_id") and not (key.startswith("meta.") and len(key) > 5):
                b.problem((*path, "group_by", j), f"'{key}' must be role, problem_id or meta.<key>")
    if recipe.eval.tasks and recipe.eval.verifier is None and recipe.verifier is None:
        b.problem(("eval",), "evaluation needs a verifier: set eval.verifier (or the recipe's verifier)")
    if uses_task and recipe.task is None:
        b.problem((), "a role draws from the task (source: task, the default): the recipe needs 'task'")
    _check_sampling(recipe, generator, updater, b)


def _default(component: Any, name: str) -> Any:
    parameter = inspect.signature(component).parameters.get(name)
    return None if parameter is None else parameter.default


def _check_sampling(recipe: Recipe, generator: Any, updater: Any, b: _Builder) -> None:
    """The update's log-probs are those of the distribution a trained role sampled from: the same temperature."""
    trained_at = recipe.updater.args.get("temperature", _default(updater, "temperature"))
    sampled_at = recipe.generator.args.get("temperature", _default(generator, "temperature"))
    for i, role in enumerate(recipe.roles):
        temperature = role.generation.get("temperature", sampled_at)
        trained = role.train and role.stage == "train"
        if trained and isinstance(temperature, (int, float)) and temperature > 0 and temperature != trained_at:
            where = ("roles", i, "generation", "temperature") if "temperature" in role.generation else ("generator",)
            b.problem(where, f"role '{role.name}' samples at temperature {temperature} but updater.temperature is "
                      f"{trained_at}: set them equal (the update scores the distribution sampled)")  # fmt: skip
    if recipe.generator.name == "vllm" and recipe.adapter.type == "qlora":
        b.problem(("adapter", "type"), "generator vllm cannot take QLoRA's 4-bit weights: use lora or full")


def _built(spec: Component) -> Any:
    """The component, built (constructors are cheap by contract); None when it cannot be (already reported)."""
    try:
        return spec.build()
    except UserError:
        return None


def _check_vllm_engines(recipe: Recipe, b: _Builder) -> None:
    """vLLM keeps one sleep-mode memory pool per process: a judge served by vllm on a model other than the run's
    base starts a second engine, which cannot coexist with sleep mode on either."""
    run_sleeps = recipe.generator.name == "vllm" and bool(recipe.generator.args.get("sleep_level", 0))
    judges: list[tuple[KeyPath, Component]] = [
        (("verifier",), recipe.verifier),
        (("eval", "verifier"), recipe.eval.verifier),
    ]
    for i, role in enumerate(recipe.roles):
        judges += [(("roles", i, "verifiers", j), v) for j, v in enumerate(role.verifiers or [])]
    for path, spec in judges:
        if spec is None or spec.name != "judge" or spec.args.get("generator") != "vllm":
            continue
        if spec.args.get("model") in ("policy", "reference", recipe.model):
            continue  # the run's own engine serves it
        sleeps = bool((spec.args.get("generation") or {}).get("sleep_level", 0))
        if run_sleeps or sleeps:
            b.problem((*path, "model"), f"a vllm judge on another model ({spec.args.get('model')}) needs a second "
                      "engine, and vLLM allows one sleep-mode engine per process: set sleep_level 0, or judge with "
                      "model: reference or generator: hf")  # fmt: skip


def _check_sharding(recipe: Recipe, b: _Builder) -> None:
    """``trainer.sharding: fsdp`` needs the online trainer, weights FSDP can slice, a generator that takes gathered
    weights, and no judge generating from the live or starting weights (its calls differ between processes)."""
    if recipe.trainer.sharding == "none":
        return
    where = ("trainer", "sharding")
    if not recipe.online:
        b.problem(where, "shards the online trainer (loop.mode: online); offline updaters (sft, dpo) shard through "
                  "an accelerate config: accelerate launch --config_file fsdp.yaml ...")  # fmt: skip
        return
    if recipe.adapter.type == "qlora":
        b.problem(("adapter", "type"), "QLoRA's 4-bit weights cannot be sharded by FSDP: use lora or full with "
                  "trainer.sharding: fsdp")  # fmt: skip
    generator = registry.get("generator", recipe.generator.name)
    if not isinstance(generator, GatheringGenerator):
        b.problem(("generator", "name"), f"generator {recipe.generator.name} cannot generate from sharded weights "
                  "(trainer.sharding: fsdp): use hf or vllm")  # fmt: skip
    judges = [(("verifier",), recipe.verifier), (("eval", "verifier"), recipe.eval.verifier)]
    for i, role in enumerate(recipe.roles):
        judges += [(("roles", i, "verifiers", j), v) for j, v in enumerate(role.verifiers or [])]
    for path, spec in judges:
        if spec is not None and spec.name == "judge" and spec.args.get("model") in ("policy", "reference"):
            b.problem((*path, "model"), f"a judge on the run's own weights ({spec.args['model']}) is not supported "
                      "under trainer.sharding: fsdp: judge with another model")  # fmt: skip


def _check_source(spec: Component, path: KeyPath, earlier: list[str], buffers: list[str], b: _Builder) -> None:
    source = _built(spec)
    if source is None:
        return
    for role in roles_read(source):
        if role not in earlier:
            named = ", ".join(earlier) or "none"
            b.problem(path, f"reads role '{role}', which is not an earlier role (earlier: {named})")
    for buffer in buffers_read(source):
        if buffer not in buffers:
            b.problem(path, f"reads buffer '{buffer}', which is not declared (buffers: {', '.join(buffers) or 'none'})")


def _check_eval_sampling(spec: Eval, b: _Builder) -> None:
    if spec.n < 1:
        b.problem(("eval", "n"), f"must be at least 1, got {spec.n}")
    bad = [k for k in spec.k if not 1 <= k <= spec.n]
    if bad:
        b.problem(("eval", "k"), f"every k must be between 1 and eval.n ({spec.n}), got {bad}")
    if spec.n > 1 and spec.temperature <= 0:
        b.problem(("eval", "temperature"), f"the n={spec.n} samples need a temperature > 0, got {spec.temperature}")


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read and check a recipe. Raises ConfigError listing every problem found."""
    located = load_yaml(Path(path))
    b = _Builder(located)
    try:
        apply_overrides(located, list(overrides))
    except ConfigError as exc:  # keep checking the rest, to report every problem at once
        b.problems.extend(exc.problems)
    recipe = b.dataclass(Recipe, located.data, ())
    if not isinstance(recipe, Recipe):
        raise ConfigError(b.problems or ["recipe could not be read"])
    _check_roles(recipe, b)
    _check_mode(recipe, b)
    _check_vllm_engines(recipe, b)
    _check_sharding(recipe, b)
    for backend, message in recipe.logging.missing_packages().items():
        b.problem(("logging", backend), message)
    if b.problems:
        raise ConfigError(b.problems)
    recipe.source = str(Path(path).resolve())
    recipe.resolved = located.data
    return recipe


def nested_component(kind: str, node: Any, owner: str) -> Component:
    """A component named inside another component's arguments (a source's parser), checked as a recipe's are."""
    b = _Builder(Located({kind: node}, {(): owner}))
    spec = b.component(kind, node, (kind,), None)
    if b.problems:
        raise UserError("; ".join(b.problems))
    return spec


def load_component(kind: str, name: str, args: list[str]) -> Component:
    """A component named on the command line with ``KEY=VALUE`` arguments, checked exactly as a recipe's is."""
    located = Located({kind: {"name": name}}, {(): "command line"})
    problems = [f"command line: arguments must look like KEY=VALUE, got '{a}'" for a in args if "=" not in a]
    if not problems:
        try:
            apply_overrides(located, [f"{kind}.{a}" for a in args])
        except ConfigError as exc:
            problems = exc.problems
    if not problems:
        b = _Builder(located)
        spec = b.component(kind, located.data[kind], (kind,), None)
        problems = b.problems
    if problems:
        raise UserError(f"{kind} '{name}':\n" + "\n".join(f"  - {p}" for p in problems))
    return spec
