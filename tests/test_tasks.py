"""Task sources: seeded arithmetic, JSONL files, GSM8K."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from selfimprove.errors import UserError
from selfimprove.tasks.arithmetic import Arithmetic
from selfimprove.tasks.gsm8k import GSM8K
from selfimprove.tasks.jsonl import JsonlTask, parse_answer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# -- arithmetic --------------------------------------------------------------------------------------------


def expected_answer(question: str, kind: str) -> int:
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    if kind == "add":
        a, b = numbers
        return a + b
    if kind == "sub":
        a, b = numbers
        return a - b
    assert kind == "max" and len(numbers) == 3
    return max(numbers)


def test_arithmetic_is_deterministic_under_a_seed():
    first = Arithmetic(size=200, seed=3).load("train")
    again = Arithmetic(size=200, seed=3).load("train")
    other = Arithmetic(size=200, seed=4).load("train")
    assert first == again
    assert [p.question for p in first] != [p.question for p in other]


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_arithmetic_train_and_test_never_overlap(seed):
    task = Arithmetic(size=300, seed=seed, low=10, high=40)  # a narrow range makes collisions likely
    train = {p.question for p in task.load("train")}
    test = {p.question for p in task.load("test")}
    assert len(train) == 300 and len(test) == 60
    assert not train & test
    # a different seed draws a different test set, which still misses this seed's train set
    other_test = {p.question for p in Arithmetic(size=300, seed=seed + 1000, low=10, high=40).load("test")}
    assert not train & other_test


def test_arithmetic_answers_are_correct():
    problems = Arithmetic(size=300, seed=5).load("train") + Arithmetic(size=300, seed=5).load("test")
    for p in problems:
        assert p.answer == str(expected_answer(p.question, p.meta["kind"])), p
    assert all(int(p.answer) >= 0 for p in problems if p.meta["kind"] == "sub")


def test_arithmetic_worked_solutions():
    for p in Arithmetic(size=60, seed=5).load("train"):
        solution = p.meta["solution"]
        assert p.meta["full_solution"] == f"{solution} The answer is {p.answer}."
        if p.meta["kind"] == "max":
            top, others = solution.removesuffix(".").split(" is greater than ")
            assert top == p.answer and sorted(others.split(" and ") + [top]) == sorted(re.findall(r"\d+", p.question))
        else:
            a, op, b, _, result = solution.removesuffix(".").split()
            assert result == p.answer == str(int(a) + int(b) if op == "+" else int(a) - int(b))


def test_arithmetic_counts_ids_and_balanced_kinds():
    task = Arithmetic(size=90, test_fraction=0.3)
    train, test = task.load("train"), task.load("test")
    assert len(train) == 90 and len(test) == 27
    assert Counter(p.meta["kind"] for p in train) == {"add": 30, "sub": 30, "max": 30}
    assert [p.id for p in train] == [f"train-{i}" for i in range(90)]
    assert len({p.id for p in test}) == len(test)
    only = Arithmetic(size=20, kinds=["max"]).load("train")
    assert {p.meta["kind"] for p in only} == {"max"}
    for p in only:
        assert len(set(re.findall(r"\d+", p.question))) == 3  # largest of three distinct numbers


def test_arithmetic_respects_the_number_range():
    for p in Arithmetic(size=50, low=20, high=30).load("train"):
        assert all(20 <= int(n) <= 30 for n in re.findall(r"\d+", p.question))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kinds": ["mul"]}, "unknown kinds ['mul']"),
        ({"kinds": []}, "kinds is empty"),
        ({"test_fraction": 0.0}, "test_fraction must be between 0 and 1"),
        ({"test_fraction": 1.0}, "test_fraction must be between 0 and 1"),
        ({"low": 50, "high": 40}, "need 0 <= low and high >= low + 2"),
        ({"low": 10, "high": 11}, "need 0 <= low and high >= low + 2"),
        ({"low": -5}, "need 0 <= low"),
        ({"size": 0}, "size must be at least 1"),
    ],
)
def test_arithmetic_bad_arguments(kwargs, message):
    with pytest.raises(UserError, match=re.escape(message)):
        Arithmetic(**kwargs)


def test_arithmetic_bad_split_and_exhausted_range():
    with pytest.raises(UserError, match="splits 'train' and 'test'"):
        Arithmetic().load("validation")
    with pytest.raises(UserError, match="could only draw"):
        Arithmetic(size=200, low=0, high=3).load("train")  # too few distinct questions exist


# -- jsonl -------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_split_paths_and_gsm8k_answers(tmp_path):
    write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"question": "Q1", "answer": "She has 1,000 + 234 = 1,234 apples.\n#### 1,234", "source": "x"},
            {"question": "Q2", "answer": 7},
        ],
    )
    write_jsonl(tmp_path / "test.jsonl", [{"question": "T1", "answer": "#### -3"}])
    task = JsonlTask(str(tmp_path / "{split}.jsonl"))
    first, second = task.load("train")
    assert (first.question, first.answer) == ("Q1", "1234")
    assert first.meta == {
        "source": "x",
        "solution": "She has 1,000 + 234 = 1,234 apples.",
        "full_solution": "She has 1,000 + 234 = 1,234 apples.\n#### 1,234",
    }
    assert (second.answer, second.meta) == ("7", {})  # answers without #### are used as they are
    assert first.id == "train-1" and second.id == "train-2"
    (only,) = task.load("test")
    assert (only.question, only.answer) == ("T1", "-3")
    with pytest.raises(UserError, match="data file not found for split 'validation'"):
        task.load("validation")


def test_jsonl_custom_fields_blank_lines_and_braces_in_path(tmp_path):
    folder = tmp_path / "data{v1}"
    folder.mkdir()
    path = write_jsonl(folder / "train.jsonl", [{"q": "A?", "a": "1", "uid": 17}, "", {"q": "B?", "a": "2", "uid": 18}])
    task = JsonlTask(str(folder / "{split}.jsonl"), question_field="q", answer_field="a", id_field="uid")
    problems = task.load("train")
    assert [(p.id, p.question, p.answer) for p in problems] == [("17", "A?", "1"), ("18", "B?", "2")]
    assert problems[0].meta == {"uid": 17}
    no_answers = JsonlTask(str(path), question_field="q", answer_field=None).load("anything")
    assert [p.answer for p in no_answers] == [None, None]


def test_jsonl_parse_answer():
    assert parse_answer("step one\nstep two\n#### 1,234,567 ") == ("1234567", "step one\nstep two")
    assert parse_answer("  42  ") == ("42", None)
    assert parse_answer(3.5) == ("3.5", None)


def test_jsonl_missing_file_at_construction(tmp_path):
    with pytest.raises(UserError, match=re.escape(f"data file not found: {tmp_path / 'nope.jsonl'}")):
        JsonlTask(str(tmp_path / "nope.jsonl"))
    with pytest.raises(UserError, match="data file not found"):
        JsonlTask(str(tmp_path / "nodir" / "{split}.jsonl"))


def test_jsonl_missing_field_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "1"}, {"question": "b", "solution": "2"}])
    with pytest.raises(UserError) as info:
        JsonlTask(str(path)).load("train")
    assert str(info.value) == f"{path}:2: no field 'answer' (fields: question, solution)"


def test_jsonl_broken_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "1"}, "", '{"question": "c", "answer":'])
    with pytest.raises(UserError, match=re.escape(f"{path}:3: not valid JSON")):
        JsonlTask(str(path)).load("train")


def test_jsonl_non_object_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [[1, 2]])
    with pytest.raises(UserError, match=re.escape(f"{path}:1: expected a JSON object, got list")):
        JsonlTask(str(path)).load("train")


# -- gsm8k -------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k" / "test.jsonl").is_file(), reason="no local GSM8K copy")
def test_gsm8k_local_copy(monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_DATA_DIR", str(SHARED_DATA))
    problems = GSM8K().load("test")
    assert len(problems) == 1319
    assert [p.id for p in problems[:2]] == ["gsm8k-test-0", "gsm8k-test-1"]
    for p in problems:
        assert re.fullmatch(r"-?\d+(\.\d+)?", p.answer), p.answer
        assert p.question and p.meta["solution"]
        assert p.meta["full_solution"].startswith(p.meta["solution"])
        assert p.meta["full_solution"].replace(",", "").endswith(f"#### {p.answer}")
    assert problems[0].answer == "18"  # Janet's ducks
    # an explicit data_dir works too, and points at the folder itself
    assert len(GSM8K(data_dir=str(SHARED_DATA / "gsm8k")).load("test")) == 1319


def test_gsm8k_bad_data_dir(tmp_path):
    with pytest.raises(UserError, match="gsm8k data_dir not found"):
        GSM8K(data_dir=str(tmp_path / "missing"))


def test_gsm8k_without_local_copy_or_network_is_a_user_error(tmp_path):
    # In a subprocess: `datasets` reads the offline switches when it is first imported.
    (tmp_path / "empty").mkdir()
    env = {
        **os.environ,
        "SELFIMPROVE_DATA_DIR": str(tmp_path / "empty"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),  # no cached hub copy either
    }
    code = (
        "from selfimprove.errors import UserError\n"
        "from selfimprove.tasks.gsm8k import GSM8K\n"
        "try:\n    GSM8K().load('test')\nexcept UserError as exc:\n    print('USERERROR', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("USERERROR GSM8K: no local copy"), result.stdout + result.stderr
    assert str(tmp_path / "empty" / "gsm8k" / "test.jsonl") in result.stdout
