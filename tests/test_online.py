"""Online runs on a tiny model: roles that feed roles, cross-role rewards, buffers, kill and resume, validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from selfimprove.config import load_recipe
from selfimprove.errors import ConfigError, UserError
from selfimprove.loop.online import OnlineRunner
from selfimprove.loop.runner import run_recipe
from selfimprove.records import Problem, Rollout, Verdict
from selfimprove.registry import registries


class LetterFirst:
    """A parser for the tiny random model's text: a completion that starts with a letter is a question."""

    def parse(self, rollout: Rollout) -> Problem | str:
        text = rollout.completion.strip()
        return Problem("", text) if text[:1].isalpha() else "does not start with a letter"


class Length:
    """Scores by length, so the tiny model's rewards vary."""

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [Verdict(len(r.completion) % 4 / 3, len(r.completion) % 4 == 3) for r in rollouts]


registries["parser"].register("letter-first", LetterFirst)
registries["verifier"].register("length4", Length)

TWO_ROLES = """
model: {model}
adapter: {{type: lora, r: 4, alpha: 8, target_modules: all-linear}}
roles:
  - name: asker
    n: 4
    source: {{name: fixed, fields: {{topic: sums}}}}
    prompt: {{template: "Ask a question about {{topic}}."}}
    verifiers: []
    rewards:   # harder questions are better: minus the answerer's mean score on it (1: an unreadable question)
      - {{name: children, role: answerer, weight: -1.0, missing: 1.0}}
    group_by: [role]
    loss_weight: 0.5
  - name: answerer
    n: 2
    source: {{name: role, role: asker, parser: letter-first}}
    prompt: {{template: "{{question}}"}}
    verifiers: [{{name: length4}}]
generator: {{name: hf, temperature: 1.0, max_new_tokens: 10, batch_size: 8}}
updater: {{name: grpo, learning_rate: 1.0e-2, scale_rewards: false, role_loss: per_role}}
loop: {{mode: online, steps: 3, save_every: 2, seed: 0}}
"""


def test_two_roles_one_feeding_the_other_with_a_cross_role_reward(write_recipe, tiny_model: str, tmp_path: Path):
    recipe = load_recipe(write_recipe(TWO_ROLES.format(model=tiny_model)))
    run = tmp_path / "run"
    summary = run_recipe(recipe, run, show_progress=False)
    assert [s["step"] for s in summary["steps"]] == [0, 3]

    rejected = kept = 0
    for step in (1, 2, 3):
        records = [Rollout.from_json(json.loads(x)) for x in (run / f"step-{step:06d}" / "rollouts.jsonl").open()]
        askers = [r for r in records if r.role == "asker"]
        answers = [r for r in records if r.role == "answerer"]
        assert len(askers) == 4
        for asker in askers:
            children = [a for a in answers if a.meta["parent_id"] == asker.id]
            if asker.rejected:  # an unparseable question is recorded and costs only itself
                assert asker.rejected == "does not start with a letter" and not children
                assert asker.reward == -1.0 and asker.reward_parts == {"children": 1.0}
                rejected += 1
            else:
                assert len(children) == 2 and all(a.problem_id == asker.id for a in children)
                expected = -sum(a.verdict.score for a in children) / 2
                assert asker.reward == pytest.approx(expected) and asker.reward_parts == {"children": -asker.reward}
                kept += 1
        assert all(a.reward == a.verdict.score for a in answers)
    assert rejected and kept, "the tiny model should give both parseable and unparseable questions"
    steps = [json.loads(x) for x in (run / "metrics.jsonl").open()]
    steps = [s for s in steps if s["stage"] == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    for s in steps:
        for role in ("asker", "answerer"):
            assert isinstance(s[f"{role}/reward"], float) and s[f"{role}/no_reward"] == 0.0
        assert s["examples"] == s["asker/rollouts"] + s["answerer/rollouts"]  # one update over both roles
    assert any(s["asker/rejected"] > 0 for s in steps if "asker/rejected" in s)


def test_per_role_groups_and_loss_weights_reach_the_update(write_recipe, tiny_model: str, tmp_path: Path):
    recipe = load_recipe(write_recipe(TWO_ROLES.format(model=tiny_model)), ["loop.steps=1"])
    runner = OnlineRunner(recipe, tmp_path / "run", show_progress=False)
    seen = []
    from selfimprove.training import trainer as trainer_module

    original = trainer_module.Trainer.step

    def spy(self, examples, seed):
        seen.extend(examples)
        return original(self, examples, seed)

    trainer_module.Trainer.step = spy
    try:
        runner.execute()
    finally:
        trainer_module.Trainer.step = original
    askers = [e for e in seen if e.role == "asker"]
    answers = [e for e in seen if e.role == "answerer"]
    assert {e.group for e in askers} == {"asker"} and all(e.weight == 0.5 for e in askers)
    assert {e.group for e in answers} == {f"answerer/{e.id.split('/', 1)[1].rsplit('/', 1)[0]}" for e in answers}
    assert all(e.weight == 1.0 and e.completion_ids for e in answers)


BUFFERED = """
model: {model}
adapter: {{type: lora, r: 4, alpha: 8, target_modules: all-linear}}
buffers:
  - name: questions
    seed: [{{question: "Seed question?"}}]
    feed: {{name: role, role: asker, parser: letter-first}}
roles:
  - name: asker
    n: 2
    source: {{name: fixed}}
    prompt: {{template: "Ask."}}
    verifiers: [{{name: length4}}]
  - name: answerer
    source: {{name: buffer, buffer: questions, count: 3, order: newest}}
    prompt: {{template: "{{question}}"}}
    verifiers: [{{name: length4}}]
generator: {{name: hf, temperature: 1.0, max_new_tokens: 6, batch_size: 8}}
updater: {{name: grpo, learning_rate: 1.0e-2}}
loop: {{mode: online, steps: 4, save_every: 2, keep_last: 5, seed: 0}}
"""


def test_a_buffer_lives_across_steps_and_is_saved_with_each_checkpoint(write_recipe, tiny_model, tmp_path):
    recipe = load_recipe(write_recipe(BUFFERED.format(model=tiny_model)))
    run = tmp_path / "run"
    run_recipe(recipe, run, show_progress=False)
    saved = {}
    for step in (2, 4):
        state = json.loads((run / "checkpoints" / f"step-{step:06d}" / "state.json").read_text())
        saved[step] = state["buffers"]["questions"]
    assert saved[2][0]["question"] == "Seed question?" and saved[2][0]["meta"]["buffer_step"] == 0
    assert len(saved[4]) > len(saved[2]) >= 1  # fed by the asker's parseable questions, step after step
    assert all(p["id"].startswith(f"s{p['meta']['buffer_step']}/") for p in saved[4])
    # the answerer of step 3 answered the newest questions of the buffer as it stood after step 2
    answered = [json.loads(x) for x in (run / "step-000003" / "rollouts.jsonl").open()]
    answered = [r["problem_id"] for r in answered if r["role"] == "answerer"]
    assert answered == [p["id"] for p in saved[2][-3:][::-1]]


# -- kill and resume ------------------------------------------------------------------------------------------------

RESUMABLE = [
    "verifier.name=regex", "verifier.pattern=^[a-zA-Z]", "generator.batch_size=1", "loop.steps=5",
    "loop.save_every=2", "loop.eval_every=2", "loop.keep_last=5",
]  # fmt: skip
TINY_GRPO = Path(__file__).resolve().parent.parent / "recipes" / "tiny" / "grpo.yaml"


def _cli(run: Path, model: str) -> list[str]:
    return [sys.executable, "-m", "selfimprove", "run", str(TINY_GRPO), "--run-dir", str(run), "--quiet",
            f"model={model}", *RESUMABLE]  # fmt: skip


def _outcome(run: Path) -> tuple[dict, dict, list, dict]:
    from safetensors.torch import load_file

    state = torch.load(run / "checkpoints" / "step-000005" / "trainer.pt", weights_only=False)
    files = [p for p in sorted(run.rglob("*.jsonl")) if p.name != "metrics.jsonl"]
    records = {str(p.relative_to(run)): p.read_text() for p in files}
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").open()]
    work = ("tokens_per_second", "requests_per_process")  # a replayed step's generation was read back, not redone
    metrics = [{k: v for k, v in m.items() if "seconds" not in k and k not in work} for m in metrics]
    weights = load_file(run / "checkpoints" / "step-000005" / "policy" / "adapter_model.safetensors")
    if state["value_head"] is not None:  # PPO's critic, and every optimizer's moments
        weights |= {f"value_head.{k}": v for k, v in state["value_head"].items()}
    for i, optimizer in enumerate(state["optimizers"]):
        for number, moments in optimizer["state"].items():
            weights |= {f"optimizer{i}.{number}.{k}": v for k, v in moments.items() if torch.is_tensor(v)}
    return json.loads((run / "summary.json").read_text()), records, metrics, weights


def _same(a: Path, b: Path) -> None:
    summary_a, records_a, metrics_a, weights_a = _outcome(a)
    summary_b, records_b, metrics_b, weights_b = _outcome(b)
    assert summary_a == summary_b
    assert records_a == records_b
    order = [[(m["stage"], m["step"]) for m in ms] for ms in (metrics_a, metrics_b)]
    assert order[0] == order[1]  # each step and evaluation logged once
    assert metrics_a == metrics_b  # with the same values
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert not list(b.rglob("*.partial")) and not list(b.rglob("*.tmp"))


def test_sigkill_during_a_step_then_resume(tiny_model: str, tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(_cli(reference, tiny_model), check=True, capture_output=True)
    partial = killed / "step-000004" / "rollouts-solver.jsonl.partial"
    proc = subprocess.Popen(_cli(killed, tiny_model), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.read_text().count("\n") >= 2):
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "step-000004" / "rollouts.jsonl").exists(), "killed after the step's generation"
    assert (killed / "checkpoints" / "step-000002").is_dir() and (killed / "step-000003" / "rollouts.jsonl").is_file()
    subprocess.run(_cli(killed, tiny_model), check=True, capture_output=True)
    _same(reference, killed)


TINY_RLSP = TINY_GRPO.with_name("rlsp.yaml")


@pytest.mark.parametrize(
    ("recipe_file", "overrides"),
    [(TINY_GRPO, RESUMABLE), (TINY_RLSP, [o for o in RESUMABLE if not o.startswith("verifier")])],
    ids=["grpo", "rlsp-ppo"],
)
def test_killed_during_a_checkpoint_write_then_resume(
    tiny_model: str, tmp_path: Path, monkeypatch, recipe_file: Path, overrides: list[str]
) -> None:
    """A checkpoint written halfway is ignored (and removed): the run resumes from the one before, and ends with the
    same weights, optimizer moments and (PPO) value head."""
    from selfimprove.loop import checkpoints

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    recipe = load_recipe(recipe_file, [f"model={tiny_model}", *overrides])
    run_recipe(recipe, reference, show_progress=False)
    commit = checkpoints.commit

    def dies_at_step_4(tmp: Path, state: dict, keep_last: int) -> Path:
        if state["step"] == 4:
            (tmp / "state.json").write_text("{")  # the process dies while writing its last file
            raise KeyboardInterrupt
        return commit(tmp, state, keep_last)

    monkeypatch.setattr(checkpoints, "commit", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, killed, show_progress=False)
    assert (killed / "checkpoints" / "step-000004.tmp").is_dir()
    monkeypatch.setattr(checkpoints, "commit", commit)
    assert checkpoints.latest(killed).name == "step-000002"
    run_recipe(recipe, killed, show_progress=False)
    _same(reference, killed)


# -- validation -----------------------------------------------------------------------------------------------------

ONLINE = """
model: m
task: {name: arithmetic}
verifier: {name: numeric}
updater: {name: grpo}
loop: {mode: online, steps: 2}
"""


def _problems(write_recipe, text: str, overrides: list[str] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_recipe(write_recipe(text), list(overrides))
    return info.value.problems


def test_validate_rejects_what_an_online_run_cannot_do(write_recipe) -> None:
    assert load_recipe(write_recipe(ONLINE)).online
    offline_grpo = _problems(write_recipe, ONLINE.replace("loop: {mode: online, steps: 2}", "selector: correct"))
    assert any("recipe.yaml:5: updater.name: updater grpo trains online" in p and "loop.mode: online" in p
               for p in offline_grpo)  # fmt: skip
    found = _problems(write_recipe, ONLINE, ["loop.iterations=3", "selector=correct", "loop.save_every=0"])
    assert any("loop.iterations: applies to offline runs" in p for p in found)
    assert any("selector: online runs train on every rewarded rollout" in p for p in found)
    assert any("loop.save_every: must be at least 1" in p for p in found)
    sft_online = _problems(write_recipe, ONLINE.replace("{name: grpo}", "{name: sft}"))
    assert any("updater sft trains offline" in p for p in sft_online)


def test_validate_rejects_sampling_at_another_temperature_than_the_update_scores(write_recipe) -> None:
    assert load_recipe(write_recipe(ONLINE), ["generator.temperature=0.7", "updater.temperature=0.7"])
    found = _problems(write_recipe, ONLINE, ["generator.temperature=0.7"])  # the updater's default: 1.0
    assert any("generator: role 'solver' samples at temperature 0.7 but updater.temperature is 1.0" in p
               for p in found)  # fmt: skip
    per_role = (
        ONLINE + "roles:\n  - name: a\n    generation: {temperature: 0.5}\n  - name: b\n    train: false\n"
        "    generation: {temperature: 0.5}\n    source: {name: role, role: a}\n"
    )
    found = _problems(write_recipe, per_role)
    assert any("roles.0.generation.temperature: role 'a' samples at temperature 0.5" in p for p in found)
    assert not any("role 'b'" in p for p in found)  # not trained: its log-probs are never scored
    vllm_qlora = _problems(write_recipe, ONLINE, ["generator.name=vllm", "adapter.type=qlora"])
    assert any("adapter.type: generator vllm cannot take QLoRA's 4-bit weights" in p for p in vllm_qlora)


def test_validate_rejects_a_role_fed_by_a_later_role_or_a_missing_buffer(write_recipe) -> None:
    text = (
        ONLINE
        + """
roles:
  - name: first
    source: {name: role, role: second}
  - name: second
  - name: third
    source: {name: buffer, buffer: nowhere}
    rewards: [{name: children, role: ghost}]
"""
    )
    found = _problems(write_recipe, text)
    assert any("roles.0.source: reads role 'second', which is not an earlier role (earlier: none)" in p for p in found)
    assert any("roles.2.source: reads buffer 'nowhere', which is not declared" in p for p in found)
    assert any("roles.2.rewards.0: reads role 'ghost'" in p for p in found)


def test_validate_names_a_bad_parser_inside_a_source(write_recipe) -> None:
    text = ONLINE + "roles:\n  - name: a\n  - name: b\n    source: {name: role, role: a, parser: betwen}\n"
    found = _problems(write_recipe, text)
    assert any("roles.1.source" in p and "Unknown parser 'betwen'. Did you mean: between?" in p for p in found)


def test_a_step_with_too_many_failed_rewards_stops_the_run(write_recipe, tiny_model: str, tmp_path: Path) -> None:
    class Crashes:
        def verify(self, rollouts):
            raise RuntimeError("the judge is down")

    registries["verifier"].register("crashes", Crashes)
    text = TWO_ROLES.format(model=tiny_model).replace("[{name: length4}]", "[{name: crashes}]")
    recipe = load_recipe(write_recipe(text), ["loop.max_failed_rewards=0.1"])
    with pytest.raises(UserError, match=r"step 1: .* rollouts have no reward .*verifier crashed: RuntimeError: the"):
        run_recipe(recipe, tmp_path / "run", show_progress=False)


def test_group_keys_from_role_problem_and_meta() -> None:
    rollout = Rollout("r", "propose", "p1", [], "c", meta={"task_type": "deduction"})
    assert rollout.group_key(["role", "problem_id"]) == "propose/p1"
    assert rollout.group_key(["meta.task_type", "role"]) == "deduction/propose"  # AZR's task-relative baselines
    with pytest.raises(UserError, match="group_by 'meta.missing': rollout r has no such field"):
        rollout.group_key(["meta.missing"])
