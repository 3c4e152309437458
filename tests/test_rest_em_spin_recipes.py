"""The tiny ReST-EM and SPIN recipes run one iteration of the loop; SPIN's replay of the previous pairs."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

from selfimprove.config import load_recipe
from selfimprove.loop.runner import Runner
from selfimprove.records import Example, Rollout, Verdict
from selfimprove.registry import registries
from selfimprove.updaters import UpdateContext

ROOT = Path(__file__).resolve().parent.parent


class EvenSamples:
    """The tiny random model never solves arithmetic: pass the even-numbered samples of every problem (3 of 6)."""

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [Verdict(1.0, True) if int(r.id.rsplit("/", 1)[1]) % 2 == 0 else Verdict(0.0, False) for r in rollouts]


class Recording:
    """An updater that keeps the base weights and records what it was given."""

    seen: list[list[Example]] = []
    contexts: list[UpdateContext] = []

    def __init__(self, **_: object):
        pass

    def update(self, ctx: UpdateContext) -> dict[str, float]:
        Recording.seen.append(ctx.examples)
        Recording.contexts.append(ctx)
        shutil.copytree(ctx.base, ctx.output_dir)
        return {"loss": 0.0}


@pytest.fixture(autouse=True)
def components(registrations) -> None:
    registries["verifier"].register("even-samples", EvenSamples)
    registries["updater"].register("recording", Recording)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def changed_lora_weights(checkpoint: Path) -> bool:
    from safetensors.torch import load_file

    weights = load_file(checkpoint / "adapter_model.safetensors")
    return any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k)  # LoRA starts from B = 0


def run_one_iteration(recipe: Path, tmp_path: Path, overrides: list[str]) -> tuple[dict, dict, Path]:
    run = tmp_path / "run"
    summary = Runner(load_recipe(recipe, overrides), run, show_progress=False).execute()
    assert [i["iteration"] for i in summary["iterations"]] == [0, 1]
    assert json.loads((run / "summary.json").read_text()) == summary
    update = json.loads((run / "iter-001" / "update.json").read_text())
    assert update["steps"] == 2 and all(math.isfinite(v) for v in update.values() if isinstance(v, float))
    assert changed_lora_weights(run / "iter-001" / "checkpoint")
    return summary, update, run


def test_tiny_rest_em_keeps_at_most_the_cap_per_problem(tiny_model: str, tmp_path: Path) -> None:
    recipe = ROOT / "recipes" / "tiny" / "rest_em.yaml"
    _, _, run = run_one_iteration(recipe, tmp_path, [f"model={tiny_model}", "verifier.name=even-samples"])
    rollouts = jsonl(run / "iter-001" / "verified-solver.jsonl")
    assert Counter(r["problem_id"] for r in rollouts) == {f"train-{i}": 6 for i in range(4)}
    selected = jsonl(run / "iter-001" / "selected.jsonl")
    assert Counter(e["id"].split("/")[1] for e in selected) == {f"train-{i}": 2 for i in range(4)}  # 3 pass, cap 2
    assert all(e["id"].endswith(("/0", "/2")) for e in selected)
    assert all(len(e["prompt"]) == 3 for e in selected)  # ReST-EM trains on the few-shot prompt + question


def test_tiny_spin_pairs_the_real_solution_with_the_models_answer(tiny_model: str, tmp_path: Path) -> None:
    _, update, run = run_one_iteration(ROOT / "recipes" / "tiny" / "spin.yaml", tmp_path, [f"model={tiny_model}"])
    rollouts = {r["id"]: r for r in jsonl(run / "iter-001" / "verified-solver.jsonl")}
    selected = jsonl(run / "iter-001" / "selected.jsonl")
    assert update["examples"] == len(selected) == 4
    for e in selected:
        rollout = rollouts[e["id"]]
        assert e["rejected"] == rollout["completion"]
        assert e["completion"] == rollout["meta"]["full_solution"] and "The answer is" in e["completion"]
    assert not (run / "iter-001" / "checkpoint" / "ref").exists()  # the opponent is not saved with the policy


def test_replay_adds_the_previous_iterations_pairs(tiny_model: str, tmp_path: Path) -> None:
    Recording.seen = []
    overrides = [f"model={tiny_model}", "updater.name=recording", "loop.iterations=3"]
    Runner(load_recipe(ROOT / "recipes" / "tiny" / "spin.yaml", overrides), tmp_path / "run", False).execute()
    ids = [sorted(e.id for e in examples) for examples in Recording.seen]
    own = [f"solver/train-{i}/0" for i in range(4)]
    assert ids[0] == own
    assert ids[1] == sorted(own + [f"iter-001/{i}" for i in own])
    assert ids[2] == sorted(own + [f"iter-002/{i}" for i in own])  # replay: 1 reaches back one iteration only
    assert Recording.seen[1][4:][0].rejected is not None  # the replayed pairs keep their rejected side


@pytest.mark.parametrize("name", ["rest_em_gsm8k", "spin_gsm8k"])
def test_gpu_recipes_follow_the_papers(name: str) -> None:
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    if name == "rest_em_gsm8k":  # N samples at T=0.7, top-k 40; <= 10 correct per problem; SFT of the base
        assert (recipe.roles[0].n, recipe.generator.args["temperature"], recipe.generator.args["top_k"]) == (
            32,
            0.7,
            40,
        )
        assert (recipe.selector.name, recipe.selector.args["max_per_prompt"]) == ("correct", 10)
        assert (recipe.updater.name, recipe.loop.init, recipe.loop.iterations) == ("sft", "base", 3)
    else:  # one answer per prompt; DPO-form loss against the previous iterate, started from it; replay 1
        assert (recipe.roles[0].n, recipe.selector.name, recipe.updater.name) == (1, "spin", "dpo")
        assert recipe.updater.args["reference"] == "previous" and recipe.updater.args["beta"] == 0.1
        assert (recipe.loop.init, recipe.loop.replay, recipe.loop.iterations) == ("previous", 1, 4)


def test_spin_and_its_control_start_from_one_sft_checkpoint_of_the_same_data() -> None:
    ablations = ROOT / "recipes" / "ablations"
    start = load_recipe(ablations / "spin_sft_start.yaml")
    spin, control = load_recipe(ablations / "spin_arithmetic.yaml"), load_recipe(ablations / "spin_sft_control.yaml")
    # the start: one SFT epoch on the worked solutions; its checkpoint is what both load
    assert (start.updater.name, start.loop.iterations, start.selector.name) == ("sft", 1, "real")
    assert spin.loop.start == control.loop.start == "runs/spin_sft_start/iter-001/checkpoint"
    for recipe in (spin, control):  # the same data, prompt, model and adapter as the start
        assert (recipe.task.args, recipe.roles[0].prompt, recipe.model, recipe.adapter) == (
            start.task.args,
            start.roles[0].prompt,
            start.model,
            start.adapter,
        )
        assert recipe.selector.args["real"] == start.selector.args["real"] == "full_solution"
        assert recipe.loop.init == "previous" and recipe.eval == start.eval
    assert (spin.updater.name, control.updater.name) == ("dpo", "sft")


def test_loop_start_is_the_first_iterations_model_and_opponent(tiny_model: str, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)  # a start adapter far from the base: B = 0 would be the base model itself
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))  # fmt: skip
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=1.0)
    model.save_pretrained(tmp_path / "sft")
    Recording.contexts = []
    overrides = [f"model={tiny_model}", "updater.name=recording"]
    recipe = ROOT / "recipes" / "tiny" / "spin.yaml"
    Runner(load_recipe(recipe, [*overrides, f"loop.start={tmp_path / 'sft'}"]), tmp_path / "from-sft", False).execute()
    Runner(load_recipe(recipe, overrides), tmp_path / "from-base", False).execute()
    from_sft, from_base = Recording.contexts
    # iteration 1 trains from the start and plays against it (SPIN's opponent is the SFT model); from the base: none
    assert from_sft.init == from_sft.previous == str((tmp_path / "sft").resolve())
    assert from_base.init is None and from_base.previous is None
    # the start generated iteration 1's answers and was evaluated at iteration 0
    for name in ("iter-001/rollouts-solver.jsonl", "iter-000/eval/arithmetic.rollouts.jsonl"):
        sft, base = (jsonl(tmp_path / run / name) for run in ("from-sft", "from-base"))
        assert [r["completion"] for r in sft] != [r["completion"] for r in base], name


def test_loop_start_must_exist_and_needs_init_previous(tiny_model: str, tmp_path: Path) -> None:
    from selfimprove.errors import UserError

    recipe = ROOT / "recipes" / "tiny" / "spin.yaml"
    with pytest.raises(UserError, match="loop.start"):
        load_recipe(recipe, [f"model={tiny_model}", "loop.init=base", f"loop.start={tmp_path}"])
    with pytest.raises(UserError, match="loop.start: no checkpoint folder"):
        missing = load_recipe(recipe, [f"model={tiny_model}", f"loop.start={tmp_path / 'none'}"])
        Runner(missing, tmp_path / "run").execute()
