"""Absolute Zero: learnability, the composite rewards, induction's shown/hidden split, per-(type, role) whitening on
hand-computed batches, strict parsing, the executor-backed checks, the code_reasoning task, and the tiny recipe run
end to end by a scripted generator (with resume restoring the buffers exactly)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from selfimprove.config import load_recipe
from selfimprove.generators import Output
from selfimprove.loop.runner import run_recipe
from selfimprove.objectives.advantages import group_ids, reinforce_pp_advantages, terminal_rewards
from selfimprove.parsers.azr import AZRTask, parse_proposal, parse_solution
from selfimprove.records import Rollout, Verdict
from selfimprove.registry import registries
from selfimprove.rewards import StepRollouts
from selfimprove.rewards.azr import AZRLearnable, AZRProposer, AZRSolver
from selfimprove.verifiers.azr import AZRProposal, AZRSolution

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny" / "azr.yaml"


def proposal(i: int, valid: bool = True) -> Rollout:
    return Rollout(f"propose/p{i}", "propose_deduction", f"p{i}", [], "c", meta={"task_type": "deduction"},
                   verdict=Verdict(float(valid), valid, {"format": True}))  # fmt: skip


def learn(parent: Rollout, passed: list[bool]) -> list[Rollout]:
    return [Rollout(f"learn/{parent.id}/{k}", "learn_deduction", parent.id, [], "c",
                    meta={"parent_id": parent.id}, verdict=Verdict(float(p), p, {"format": True}))
            for k, p in enumerate(passed)]  # fmt: skip


def test_learnability_and_the_proposer_composite_on_hand_computed_solve_rates() -> None:
    proposals = [proposal(i) for i in range(4)] + [proposal(4, valid=False)]
    samples = (learn(proposals[0], [True] * 2 + [False] * 6) + learn(proposals[1], [True] * 8)
               + learn(proposals[2], [False] * 8) + learn(proposals[3], [True] * 6 + [False] * 2))  # fmt: skip
    step = StepRollouts({"propose_deduction": proposals, "learn_deduction": samples})
    rewards = AZRProposer(learn="learn_deduction")(proposals, step)
    # s = 2/8: learnability 0.75; s = 1 and s = 0: learnability 0, well formed: -0.5; s = 6/8: 0.25; invalid: -1
    assert rewards == [0.75, -0.5, -0.5, 0.25, -1.0]
    learnable = AZRLearnable(learn="learn_deduction")(proposals, step)
    assert learnable[:4] == [1.0, 0.0, 0.0, 1.0] and not isinstance(learnable[4], float)


def test_the_solver_composite() -> None:
    rollouts = [
        Rollout("a", "solve_deduction", "p", [], "", verdict=Verdict(1.0, True, {"format": True})),
        Rollout("b", "solve_deduction", "p", [], "", verdict=Verdict(0.0, False, {"format": True})),
        Rollout("c", "solve_deduction", "p", [], "", verdict=Verdict(0.0, False, {"format": False})),
    ]
    assert AZRSolver()(rollouts, StepRollouts({})) == [1.0, -0.5, -1.0]


def test_task_relative_whitening_uses_one_baseline_per_task_type_and_role() -> None:
    rewards = torch.tensor([1.0, -0.5, 0.75, -1.0, 1.0, 1.0])
    groups = ["deduction/propose", "deduction/propose", "deduction/solve", "deduction/solve", "abduction/solve",
              "abduction/solve"]  # fmt: skip
    mask = torch.ones(6, 1)  # one-token completions: the return is the reward
    advantages = reinforce_pp_advantages(terminal_rewards(rewards, mask), mask, group_ids(groups))[:, 0]
    for members in ([0, 1], [2, 3]):  # two members each: whitened to +1 and -1 (unbiased std)
        r = rewards[members]
        expected = (r - r.mean()) / r.std()
        assert torch.allclose(advantages[members], expected, atol=1e-3)
    assert torch.allclose(advantages[[4, 5]], torch.zeros(2))  # a group whose rewards agree teaches nothing


def test_parsing_of_proposals_and_solutions() -> None:
    good = "```python\ndef f(a):\n    return a + 1\n```\n```input\n3\n```"
    assert parse_proposal(good, "deduction") == {"program": "def f(a):\n    return a + 1", "input": "3"}
    assert "an input block" in parse_proposal("```python\ndef f(a): return a\n```", "deduction")
    assert parse_proposal("```input\n1\n```\n" * 3 + "```message\nhi\n```", "induction", inputs=3) == {
        "inputs": ["1", "1", "1"], "message": "hi"}  # fmt: skip
    assert parse_solution("<think>x</think><answer>```output\n[1, 2]\n```</answer>", "deduction") == "[1, 2]"
    assert parse_solution("<think>x</think><answer>[1, 2]</answer>", "deduction") == "[1, 2]"  # no block: the text
    assert parse_solution("<think>x</think><answer>```output\n1\n```</answer> and more", "deduction") == "1"
    assert parse_solution("<think>x</think> ```output\n1\n```", "deduction") is None  # no <answer>


def test_induction_splits_pairs_into_shown_and_hidden() -> None:
    pairs = [[str(i), str(2 * i)] for i in range(10)]
    rollout = Rollout("p", "propose_induction", "p", [], "c", verdict=Verdict(1.0, True, {
        "format": True, "program": "def f(a):\n    return 2 * a", "pairs": pairs, "message": "doubles"}))  # fmt: skip
    problem = AZRTask("induction", shown=5).parse(rollout)
    assert problem.meta["hidden"] == pairs[5:]
    assert (
        problem.meta["shown"].count("```input") == 5 and "```input\n4\n```\n```output\n8\n```" in problem.meta["shown"]
    )
    assert "```input\n5\n```" not in problem.meta["shown"] and problem.meta["message"] == "doubles"
    assert "leave none hidden" in AZRTask("induction", shown=10).parse(rollout)


def answer(block: str, body: str) -> str:
    return f"<think>working</think><answer>```{block}\n{body}\n```</answer>"


def test_proposals_are_validated_and_solutions_checked_through_the_executor() -> None:
    io = "<think>t</think><answer>```python\n{}\n```\n```input\n{}\n```</answer>"
    proposals = [
        Rollout("ok", "p", "p", [], io.format("def f(a):\n    return a * 3", "4")),
        Rollout("random", "p", "p", [], io.format("import random\ndef f(a):\n    return random.random()", "1")),
        Rollout("two_defs", "p", "p", [], io.format("def g(a):\n    return a\ndef f(a):\n    return g(a)", "1")),
        Rollout("raises", "p", "p", [], io.format("def f(a):\n    return 1 / 0", "1")),
        Rollout("malformed", "p", "p", [], "def f(a): return a"),
    ]
    ok, rnd, two, raises, malformed = AZRProposal("deduction", workers=2).verify(proposals)
    assert ok.passed and ok.info["output"] == "12" and ok.info["input"] == "4" and ok.info["complexity"] > 0
    assert not rnd.passed and rnd.info["format"] and "banned import 'random'" in rnd.info["error"]
    assert not two.passed and "exactly one function" in two.info["error"]
    assert not raises.passed and raises.info["format"] and "ZeroDivisionError" in raises.info["error"]
    assert not malformed.passed and not malformed.info["format"]

    deduction = {"task_type": "deduction", "program": "def f(a):\n    return a * 3", "input": "4", "output": "12"}
    abduction = {**deduction, "task_type": "abduction"}
    induction = {
        "task_type": "induction",
        "program": "def f(a):\n    return a * 3",
        "hidden": [["1", "3"], ["5", "15"]],
    }
    cases = [
        (deduction, answer("output", "12"), True), (deduction, answer("output", "13"), False),
        (abduction, answer("input", "4"), True), (abduction, answer("input", "5"), False),
        (induction, answer("python", "def f(x):\n    return x + x + x"), True),  # any program that fits counts
        (induction, answer("python", "def f(x):\n    return 3 if x == 1 else 0"), False),
        (deduction, "12", False),
    ]  # fmt: skip
    rollouts = [Rollout(str(i), "s", "p", [], text, meta=meta) for i, (meta, text, _) in enumerate(cases)]
    verdicts = AZRSolution(workers=2).verify(rollouts)
    assert [v.passed for v in verdicts] == [expected for _, _, expected in cases]
    assert verdicts[-1].info["format"] is False and verdicts[1].info["format"] is True


def test_code_reasoning_task_from_a_file_and_seeded(tmp_path: Path) -> None:
    from selfimprove.errors import UserError
    from selfimprove.tasks.code_reasoning import CodeReasoning

    seeded = CodeReasoning(mode="output", size=12).load("test")
    assert len(seeded) == 12 and seeded[0].meta["task_type"] == "deduction" and seeded[0].answer
    checks = [Rollout(p.id, "s", p.id, [], answer("output", p.meta["output"]), meta=p.meta) for p in seeded]
    assert all(v.passed for v in AZRSolution(workers=2).verify(checks))  # the seeded outputs are the programs'
    file = tmp_path / "cr.jsonl"
    file.write_text(json.dumps({"program": "def f(s):\n    return s[::-1]", "input": "'ab'", "output": "'ba'"}) + "\n")
    (problem,) = CodeReasoning(mode="input", path=str(file)).load("test")
    assert problem.meta["task_type"] == "abduction" and problem.answer is None
    file.write_text("{not json\n")
    with pytest.raises(UserError, match="cr.jsonl:1: not valid JSON"):
        CodeReasoning(path=str(file)).load("test")


class ScriptedAZR:
    """Writes well-formed AZR outputs for the tiny recipe's tagged prompts: proposals that vary with the request,
    and solver answers that are right for some samples and wrong for others, so solve rates fall between 0 and 1."""

    live = True

    def __init__(self, **kwargs):
        self.settings = kwargs

    def generate(self, policy, requests, *, seed, done, tracker, shard=(0, 1)):
        outputs = []
        for number, r in enumerate(requests):
            if number % shard[1] != shard[0]:
                continue
            text = r.messages[-1]["content"]
            k = int(re.search(r"/(\d+)$", r.id).group(1)) if re.search(r"/(\d+)$", r.id) else 0
            index = re.search(r"/propose-(\d+)/", r.id)
            outputs.append(Output(r.id, self.complete(text, k, seed, int(index.group(1)) if index else 0), 4))
        yield outputs

    @staticmethod
    def complete(prompt: str, k: int, seed: int, index: int = 0) -> str:
        step = seed % 5 + 2
        if prompt.startswith("[seed deduction]") or prompt.startswith("[seed abduction]"):
            # no <answer> frame (seeding reads the whole completion); requests 0 and 1 write the same program
            body = f"```python\ndef g(a):\n    return a - {seed % 10_000 * 10 + index // 2}\n```\n```input\n5\n```"
            return f"Here is one.\n{body}\nDone."
        if prompt.startswith("[seed induction]"):
            return "".join(f"```input\n{i + index}\n```\n" for i in range(4)) + "```message\nsubtracts\n```"
        if prompt.startswith("[propose deduction]") or prompt.startswith("[propose abduction]"):
            body = f"```python\ndef f(a):\n    return a * {step}\n```\n```input\n{step + 1}\n```"
            return f"<think>a new one</think><answer>{body}</answer>"
        if prompt.startswith("[propose induction]"):
            inputs = "".join(f"```input\n{i + step}\n```\n" for i in range(4))
            return f"<think>inputs</think><answer>{inputs}```message\nlook at it\n```</answer>"
        program = re.search(r"```python\n(.*?)\n```", prompt, re.DOTALL)
        if prompt.startswith("[solve deduction]"):
            namespace: dict = {}
            exec(program.group(1), namespace)  # the scripted proposer's own programs
            value = namespace["f"](eval(re.search(r"```input\n(.*?)\n```", prompt, re.DOTALL).group(1)))
            return answer("output", repr(value if k % 2 == 0 else "wrong"))
        factor = re.search(r"return a \* (\d+)", program.group(1)) if program else None
        if prompt.startswith("[solve abduction]"):
            output = re.search(r"```output\n(.*?)\n```", prompt, re.DOTALL).group(1)
            right = repr(int(output) // int(factor.group(1))) if factor else output
            return answer("input", right if k % 2 == 0 else "-1")
        pair = re.search(r"```input\n(-?\d+)\n```\n```output\n(-?\d+)\n```", prompt)
        times = int(pair.group(2)) // int(pair.group(1)) if pair and int(pair.group(1)) else 1
        return answer("python", f"def f(a):\n    return a * {times}" if k % 2 == 0 else "def f(a):\n    return None")


def test_tiny_azr_runs_every_task_type_and_resumes_its_buffers_exactly(tiny_model: str, tmp_path: Path) -> None:
    registries["generator"].register("azr-script", ScriptedAZR)
    overrides = [f"model={tiny_model}", "generator.name=azr-script"]
    recipe = load_recipe(TINY, overrides)
    run = tmp_path / "run"
    summary = run_recipe(recipe, run, show_progress=False)
    assert set(summary["steps"][-1]["eval"]) == {"cruxeval_o", "cruxeval_i"}
    steps = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m["stage"] == "step"]
    for s in steps:
        for task in ("deduction", "abduction", "induction"):
            assert s[f"propose_{task}/passed"] == 1.0  # every scripted proposal is valid
            assert f"solve_{task}/passed" in s and s[f"learn_{task}/rollouts"] == 4
        assert s["propose_deduction/reward:learnable"] == 1.0  # half the samples right: learnability 0.5
    # seeded to the targets (4, 4, 2), then one per step
    assert steps[-1]["buffer/deduction"] == 4 + 3 and steps[-1]["buffer/induction"] == 2 + 3
    records = [json.loads(x) for x in (run / "step-000002" / "rollouts.jsonl").read_text().splitlines()]
    proposer = next(r for r in records if r["role"] == "propose_deduction")
    assert proposer["reward"] == pytest.approx(0.5)  # 1 - s with s = 2 / 4
    learners = [r for r in records if r["role"] == "learn_deduction"]
    assert len(learners) == 4 and all(r["meta"]["parent_id"] == proposer["id"] for r in learners)
    # the buffers of a checkpoint are restored exactly: a run killed after step 2 ends where this one did
    state = json.loads((run / "checkpoints" / "step-000002" / "state.json").read_text())
    resumed = tmp_path / "resumed"
    run_recipe(load_recipe(TINY, [*overrides, "loop.steps=2"]), resumed, show_progress=False)
    assert json.loads((resumed / "checkpoints" / "step-000002" / "state.json").read_text()) == state
    run_recipe(recipe, resumed, show_progress=False)  # extends the finished run by one step, from its checkpoint
    final = json.loads((run / "checkpoints" / "step-000003" / "state.json").read_text())
    assert json.loads((resumed / "checkpoints" / "step-000003" / "state.json").read_text()) == final
