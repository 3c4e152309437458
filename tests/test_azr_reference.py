"""AZR as its reference code checks it (``paper`` branch), on hand-computed values: the format rule matched from the
start (text after ``</answer>`` allowed) in linear time, answers read after the last ``<answer>``, validity apart
from format, the banned modules, nested ``def``s under the one-def rule, literal-argument inputs, the solver batch
topped up from the buffer (``max_new``), the buffer's unique adds, and the seeding stage (targets, rounds, records,
the resume that replays them)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from test_azr import TINY, ScriptedAZR

from selfimprove.config import load_recipe
from selfimprove.errors import UserError
from selfimprove.loop.runner import run_recipe
from selfimprove.parsers.azr import answer, fences, parse_proposal, parse_solution, well_formed
from selfimprove.records import Problem, Rollout
from selfimprove.registry import registries
from selfimprove.rewards import StepRollouts
from selfimprove.rewards.azr import AZRProposer
from selfimprove.sources import Buffer, StepContext
from selfimprove.sources.buffer import BufferSource
from selfimprove.verifiers.azr import AZRProposal, AZRSolution, arguments_error, one_function

IO = "```python\n{}\n```\n```input\n{}\n```"


def test_the_format_rule_matches_from_the_start_and_allows_text_after_the_answer() -> None:
    assert well_formed("<think>a</think> <answer>x</answer>")
    assert well_formed("<think>a</think>\n<answer>x</answer> and then more words")  # re.match, not fullmatch
    assert well_formed("  reasoning</think><answer>x</answer>")  # the prompt opened <think>
    assert not well_formed("<think>a</think> <answer>x")  # never closed
    assert not well_formed("<think>a</think> so <answer>x</answer>")  # only whitespace between the two
    assert not well_formed("<answer>x</answer><think>a</think>")
    assert not well_formed("<think></think>")
    # the first </think><answer> is the one that must be followed by </answer>: a later one cannot do better
    assert well_formed("<think>a</think><answer>x</think><answer>y</answer>")


@pytest.mark.parametrize(
    "text",
    [
        " " * 40_000 + "<think>a</think><answer>x",  # 40,000 leading spaces and a tail
        "<think>" + "</think> <answer>" * 20_000,  # many candidates, none closed
        "<think>" + "</think>" + " " * 40_000 + "x",
    ],
)
def test_the_format_rule_and_the_readers_are_linear(text: str) -> None:
    start = time.perf_counter()
    well_formed(text), answer(text), fences(text), parse_solution(text, "abduction")
    parse_proposal(text, "deduction"), parse_proposal("```x\n" * 20_000, "induction")
    assert time.perf_counter() - start < 1.0


def test_the_answer_is_read_after_the_last_answer_tag() -> None:
    assert answer("<answer>a</answer> <answer> b </answer> tail") == "b"
    assert answer("<think>t</think><answer>unclosed") == "unclosed"
    assert answer("no tags at all") is None
    # solver answers: the last block of the asked kind, else the whole answer (the reference's fallback)
    assert parse_solution("<answer>```output\n1\n```\n```output\n2\n```</answer>", "deduction") == "2"
    assert parse_solution("<answer> 'Hello' </answer>", "abduction") == "'Hello'"
    code = "def f(a):\n    return a"
    assert parse_solution(f"<answer>```\n{code}\n```</answer>", "induction") == code
    assert parse_solution("```output\n1\n```", "deduction") is None


def test_open_block_reads_an_answer_block_the_text_ends_inside() -> None:
    """Not the reference's rule (its pattern needs the closing fence): azr_cpu.yaml's learnability samples."""
    cut = " f(3, 7) = 3 + 7 = 10. </think> <answer>\n```output\n10"
    assert parse_solution(cut, "deduction") == "```output\n10"  # the reference: no block, the whole answer text
    assert parse_solution(cut, "deduction", open_block=True) == "10"
    closed = "<answer>```output\n1\n```\n```output\n2\n```</answer>"
    assert parse_solution(closed, "deduction", open_block=True) == "2"  # closed blocks: nothing changes
    assert parse_solution("<answer> 'Hello' </answer>", "abduction", open_block=True) == "'Hello'"
    assert parse_solution("<answer>```input\n1, 2\n```\n```input\n3, 4", "abduction", open_block=True) == "3, 4"
    assert parse_solution("<answer>```python\ndef f(a):\n    return a", "induction", open_block=True) == (
        "def f(a):\n    return a"
    )
    verdicts = AZRSolution(require_format=False, open_block=True).verify(
        [Rollout("r", "learn", "p", [], cut, meta={"task_type": "deduction", "output": "10"})]
    )
    assert verdicts[0].passed and not verdicts[0].info["format"]


def test_a_proposal_is_the_first_block_and_the_first_input() -> None:
    text = IO.format("def f(a):\n    return a", "1") + "\n```input\n2\n```"
    assert parse_proposal(text, "deduction") == {"program": "def f(a):\n    return a", "input": "1"}
    assert "python block first" in parse_proposal("```input\n1\n```\n" + IO.format("def f(a): return a", "1"),
                                                  "deduction")  # fmt: skip
    induction = "".join(f"```input\n{i}\n```\n" for i in range(12)) + "```message\nm\n```"
    assert parse_proposal(induction, "induction", inputs=10) == {"inputs": [str(i) for i in range(2, 12)],
                                                                 "message": "m"}  # the last 10  # fmt: skip
    assert "10 input blocks" in parse_proposal("```input\n1\n```\n```message\nm\n```", "induction")


def test_one_function_counts_nested_defs_and_renames_the_first_to_f() -> None:
    nested = "def f(a):\n    def g(b):\n        return b\n    return g(a)"
    assert one_function(nested, single_def=True) is None
    assert one_function(nested, single_def=False) == nested
    assert one_function("def add(a, b):\n    return a + b", True) == "def f(a, b):\n    return a + b"
    assert one_function("x = 1", True) is None


def test_inputs_are_literal_argument_lists() -> None:
    assert arguments_error("1, [2, 3], k='x'") is None
    assert arguments_error("'Hello world'") is None
    assert arguments_error("0) if 0 else (7") is not None  # the injection: not a call's arguments
    assert arguments_error("len('ab')") is not None
    assert arguments_error("*[1, 2]") is not None


def proposal(rid: str, completion: str) -> Rollout:
    return Rollout(rid, "propose_deduction", rid, [], completion, meta={"task_type": "deduction"})


def test_validity_apart_from_format_banned_modules_and_the_one_def_rule() -> None:
    framed = "<think>t</think><answer>{}</answer>"
    cases = {
        "ok_then_text": framed.format(IO.format("def f(a):\n    return a * 3", "4")) + " and some words after",
        "no_frame": "I think <answer>" + IO.format("def add(a):\n    return a + 1", "4"),  # valid, broken frame
        "hashlib": framed.format(IO.format("import hashlib\ndef f(a):\n    return hashlib.md5(a).hexdigest()", "b''")),
        "calendar": framed.format(IO.format("import calendar\ndef f(a):\n    return calendar.isleap(a)", "2000")),
        "nested": framed.format(IO.format("def f(a):\n    def g(b):\n        return b\n    return g(a)", "1")),
        "injection": framed.format(IO.format("def f(a):\n    return a", "0) if 0 else (7")),
        "no_answer": IO.format("def f(a):\n    return a", "1"),
    }
    verdicts = dict(zip(cases, AZRProposal("deduction", workers=2).verify(
        [proposal(k, v) for k, v in cases.items()]), strict=True))  # fmt: skip
    assert verdicts["ok_then_text"].passed and verdicts["ok_then_text"].info["format"]
    assert verdicts["ok_then_text"].info["output"] == "12"
    assert verdicts["no_frame"].passed and not verdicts["no_frame"].info["format"]
    assert verdicts["no_frame"].info["program"] == "def f(a):\n    return a + 1"  # renamed from add
    assert verdicts["no_frame"].info["output"] == "5"
    assert "banned import 'hashlib'" in verdicts["hashlib"].info["error"]
    assert "banned import 'calendar'" in verdicts["calendar"].info["error"]
    assert "exactly one function" in verdicts["nested"].info["error"]
    assert "not an argument list" in verdicts["injection"].info["error"]
    assert not verdicts["no_answer"].passed and verdicts["no_answer"].info["error"] == "no <answer>"
    # seeding reads the whole completion: no <answer> needed
    (seeded,) = AZRProposal("deduction", from_answer=False).verify([proposal("s", cases["no_answer"])])
    assert seeded.passed and seeded.info["output"] == "1"
    # the proposer's composite: valid in the frame -0.5 (no learnability samples: s unknown), valid without it -1
    rollouts = [proposal(k, cases[k]) for k in ("ok_then_text", "no_frame", "hashlib")]
    for r, k in zip(rollouts, ("ok_then_text", "no_frame", "hashlib"), strict=True):
        r.verdict = verdicts[k]
    assert AZRProposer(learn="learn_deduction")(rollouts, StepRollouts({"learn_deduction": []})) == [-0.5, -1.0, -1.0]


def test_the_solver_needs_the_frame_and_the_learnability_samples_do_not() -> None:
    meta = {"task_type": "abduction", "program": "def f(a):\n    return a * 2", "output": "8"}
    texts = ["<think>t</think><answer>```input\n4\n```</answer>", "<answer>```input\n4\n```", "<answer>0) if 0 else (4"]
    rollouts = [Rollout(f"r{i}", "solve", "p", [], t, meta=meta) for i, t in enumerate(texts)]
    framed, unframed, injected = AZRSolution(workers=2).verify(rollouts)
    assert framed.passed and not unframed.passed and unframed.info["status"] == "format"
    assert [v.passed for v in AZRSolution(require_format=False).verify(rollouts)] == [True, True, False]
    assert "not an argument list" in AZRSolution(require_format=False).verify([rollouts[2]])[0].info["error"]
    assert not injected.passed


def problems(step: int, n: int) -> list[Problem]:
    return [Problem(f"p{step}-{i}", "", None, {"task_type": "deduction", "program": f"{step}/{i}"}) for i in range(n)]


def test_the_solver_batch_is_the_recent_tasks_topped_up_from_the_buffer() -> None:
    buffer = Buffer("deduction", problems(0, 3))
    buffer.add(problems(4, 2), step=4)
    buffer.add(problems(5, 1), step=5)
    ctx = StepContext(6, random.Random(0), buffers={"deduction": buffer})
    # at step 6 with a window of 1 step, only step 5's task is recent: it comes first, then 2 of the other 5
    batch = BufferSource("deduction", count=3, order="recent").problems(ctx)
    assert batch[0].id == "s5/p5-0" and len({p.id for p in batch}) == 3
    assert all(p.meta["buffer_step"] in (0, 4) for p in batch[1:])
    # a window of 2 steps: steps 4 and 5 are recent, and 2 of those 3 fill a batch of 2
    batch = BufferSource("deduction", count=2, order="recent", window=2).problems(ctx)
    assert {p.meta["buffer_step"] for p in batch} <= {4, 5}
    # more asked than the buffer holds: all of it, once
    assert len(BufferSource("deduction", count=10, order="recent").problems(ctx)) == 6


def test_the_buffer_adds_each_task_once_when_asked_and_truncates_to_the_oldest() -> None:
    buffer = Buffer("b", problems(0, 2))
    again = [Problem("other-id", "", None, {**problems(0, 1)[0].meta, "parent_id": "x"}), *problems(1, 1)]
    assert buffer.add(again, step=0, origin="seed-1", unique=True) == 1  # the first repeats p0-0 but for provenance
    assert [p.id for p in buffer.problems] == ["s0/p0-0", "s0/p0-1", "seed-1/p1-0"]
    assert buffer.add(again, step=1) == 2  # a step's feed adds what it is given
    buffer.truncate(2)
    assert [p.id for p in buffer.problems] == ["s0/p0-0", "s0/p0-1"]


class CountingAZR(ScriptedAZR):
    requests: list[str] = []

    def generate(self, policy, requests, *, seed, done, tracker, shard=(0, 1)):
        CountingAZR.requests += [r.id for r in requests]
        yield from super().generate(policy, requests, seed=seed, done=done, tracker=tracker, shard=shard)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_seeding_stage_fills_the_buffers_to_their_targets_and_resumes_from_its_records(
    tiny_model: str, tmp_path: Path
) -> None:
    registries["generator"].register("azr-count", CountingAZR)
    overrides = [f"model={tiny_model}", "generator.name=azr-count", "loop.steps=1"]
    run = tmp_path / "run"
    CountingAZR.requests = []
    run_recipe(load_recipe(TINY, overrides), run, show_progress=False)
    # round 1: 3 deduction proposals of 2 programs (requests 0 and 1 agree): 1 -> 3; induction 1 -> 3 (full);
    # round 2: deduction 3 -> 5, then truncated to the target 4; no induction proposals; no round 3
    first, second = read(run / "seed-000001" / "rollouts.jsonl"), read(run / "seed-000002" / "rollouts.jsonl")
    assert sorted({r["role"] for r in first}) == ["seed_abduction", "seed_deduction", "seed_induction"]
    assert len(first) == 3 + 3 + 2 and sorted({r["role"] for r in second}) == ["seed_abduction", "seed_deduction"]
    assert not (run / "seed-000003").exists()
    metrics = read(run / "metrics.jsonl")
    seeding = [m for m in metrics if m["stage"] == "seed"]
    assert [(m["buffer/deduction"], m["buffer/induction"]) for m in seeding] == [(3, 3), (5, 3)]
    assert seeding[0]["seed_deduction/passed"] == 1.0
    (step,) = [m for m in metrics if m["stage"] == "step"]
    assert (step["buffer/deduction"], step["buffer/abduction"], step["buffer/induction"]) == (4 + 1, 4 + 1, 2 + 1)
    state = json.loads((run / "checkpoints" / "step-000001" / "state.json").read_text())
    assert state["buffers"]["deduction"][1]["id"] == "seed-1/seed_deduction/propose-0/0"
    assert {p["meta"]["buffer_step"] for p in state["buffers"]["deduction"][:4]} == {0}
    # killed after seeding, before its first checkpoint: the rerun replays the rounds without generating them
    resumed = tmp_path / "resumed"
    run_recipe(load_recipe(TINY, [*overrides, "loop.steps=0"]), resumed, show_progress=False)
    CountingAZR.requests = []
    run_recipe(load_recipe(TINY, overrides), resumed, show_progress=False)
    assert not any(rid.startswith("seed_") for rid in CountingAZR.requests)
    assert json.loads((resumed / "checkpoints" / "step-000001" / "state.json").read_text()) == state


def test_a_seed_file_fills_a_buffer(tiny_model: str, tmp_path: Path) -> None:
    file = tmp_path / "seeds.jsonl"
    rows = [{"program": f"def f(a):\n    return a + {i}", "input": "1", "output": str(1 + i)} for i in range(5)]
    file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    registries["generator"].register("azr-count", CountingAZR)
    overrides = [f"model={tiny_model}", "generator.name=azr-count", "loop.steps=1", f"buffers.0.seed_file={file}",
                 "buffers.0.seed_meta={task_type: deduction}"]  # fmt: skip
    run = tmp_path / "run"
    CountingAZR.requests = []
    run_recipe(load_recipe(TINY, overrides), run, show_progress=False)
    state = json.loads((run / "checkpoints" / "step-000001" / "state.json").read_text())
    deduction = state["buffers"]["deduction"]
    # the identity seed and 5 from the file: over the target 4, so no seeding round for it; the first 4 kept
    assert [p["meta"]["program"] for p in deduction[1:4]] == [r["program"] for r in rows[:3]]
    assert deduction[1]["meta"]["task_type"] == "deduction"
    assert not any(rid.startswith("seed_deduction/") for rid in CountingAZR.requests)
    file.write_text("[1]\n")
    with pytest.raises(UserError, match="seeds.jsonl:1: expected a JSON object"):
        run_recipe(load_recipe(TINY, overrides), tmp_path / "bad", show_progress=False)
