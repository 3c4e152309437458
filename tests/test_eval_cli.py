"""`selfimprove eval` on a tiny model: the JSON's shape, pass@k recomputed from its per-problem counts, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfimprove.cli import cli
from selfimprove.errors import UserError
from selfimprove.eval.metrics import pass_at_k
from selfimprove.eval.standalone import policy_from
from selfimprove.records import Rollout, Verdict
from selfimprove.registry import registries


class StartsWithLetter:
    """The tiny random model's completions pass when they start with a letter: some samples pass, some fail."""

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        return [Verdict(1.0, True, {"parsed": r.completion[:1]}) if r.completion[:1].isalpha()
                else Verdict(0.0, False, {"parsed": r.completion[:1] or None}) for r in rollouts]  # fmt: skip


@pytest.fixture(autouse=True)
def components(registrations) -> None:
    registries["verifier"].register("starts-with-letter", StartsWithLetter)


def _eval(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["eval", "--quiet", *args], standalone_mode=False, catch_exceptions=True)
    if isinstance(result.exception, UserError):
        return 2, str(result.exception)
    assert result.exception is None, result.exception
    return result.exit_code, result.output


def test_json_holds_counts_completions_and_pass_at_k(tiny_model: str, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    code, text = _eval(
        "--model", tiny_model, "--task", "arithmetic", "--limit", "5", "--n", "4", "--k", "1,2,4",
        "--max-new-tokens", "4", "--verifier", "starts-with-letter", "--json", str(out),
    )  # fmt: skip
    assert code == 0 and f"Wrote {out}" in text and "pass@4" in text
    result = json.loads(out.read_text())["tasks"]["arithmetic"]
    problems = result["problems"]
    assert len(problems) == 5 and all(p["n"] == 4 and len(p["samples"]) == 4 for p in problems)
    assert all(p["c"] == sum(s["passed"] for s in p["samples"]) for p in problems)
    assert 0 < sum(p["c"] for p in problems) < 20  # the test can tell pass@1 from pass@4
    for k in (1, 2, 4):
        assert result[f"pass@{k}"] == pytest.approx(sum(pass_at_k(4, p["c"], k) for p in problems) / 5)
    assert result["accuracy"] == sum(p["greedy_correct"] for p in problems) / 5
    assert {"maj@2", "maj@4", "mean_response_tokens", "entropy"} <= set(result)
    assert all(p["greedy"]["completion"] is not None and p["id"].startswith("test-") for p in problems)


def test_bad_options_are_user_errors(tiny_model: str) -> None:
    assert _eval("--model", tiny_model, "--task", "arithmetic", "--n", "4", "--k", "1,8") == (
        2, "--k: every k must be at most --n (4), got 1,8",
    )  # fmt: skip
    assert _eval("--model", tiny_model, "--task", "jsonl")[1].startswith("--task jsonl needs its file: --data FILE")
    misspelled = _eval("--model", tiny_model, "--task", "arithmetic sise=3")
    assert misspelled[0] == 2 and "has no argument 'sise'. Did you mean 'size'?" in misspelled[1]
    assert _eval("--model", tiny_model, "--task", "gsm8k", "--data", "x.jsonl")[1].startswith("--data is the file")
    assert "expected comma-separated integers" in _eval("--model", tiny_model, "--task", "gsm8k", "--k", "a")[1]


def test_a_run_directory_names_the_policy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "iter-001").mkdir(parents=True)
    (run / "iter-002").mkdir()
    (run / "manifest.json").write_text(json.dumps({"recipe": {"model": "/models/base", "loop": {"init": "base"}}}))
    (run / "iter-001" / "update.json").write_text('{"checkpoint": true}')
    (run / "iter-002" / "update.json").write_text('{"checkpoint": false}')  # selected nothing: the base model
    assert policy_from(None, None, str(run), 1).checkpoint == str(run / "iter-001" / "checkpoint")
    assert policy_from(None, None, str(run), None).checkpoint is None
    assert policy_from(None, None, str(run), 0).base == "/models/base"
    with pytest.raises(UserError, match="finished updates for iterations"):
        policy_from(None, None, str(run), 3)


def test_jsonl_task_with_named_fields(tiny_model: str, tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text('{"prompt": "1 + 1?", "target": "2"}\n{"prompt": "2 + 2?", "target": "4"}\n')
    out = tmp_path / "eval.json"
    code, _ = _eval(
        "--model", tiny_model, "--task", "jsonl", "--data", str(data), "--question-field", "prompt",
        "--answer-field", "target", "--max-new-tokens", "3", "--json", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    problems = result["tasks"]["jsonl"]["problems"]
    assert code == 0 and [(p["id"], p["answer"], p["n"]) for p in problems] == [("qa-1", "2", 0), ("qa-2", "4", 0)]
    assert result["n"] == 1 and "pass@1" not in result["tasks"]["jsonl"]  # greedy only without --n


class Countdown:
    """A plugin task with arguments: reach ``target`` from ``numbers`` numbers (a stand-in for a third-party task)."""

    verifier = {"name": "countdown-check", "strict": True}  # its own verifier, with arguments
    prompt = {"system": "Use each number once.", "template": "Numbers: {numbers}. Reach {answer}."}

    def __init__(self, size: int = 10, numbers: int = 4):
        self.size, self.numbers = size, numbers

    def load(self, split: str):
        from selfimprove.records import Problem

        return [Problem(f"{split}-{i}", "", str(10 + i), {"numbers": list(range(1, self.numbers + 1))})
                for i in range(self.size)]  # fmt: skip


class CountdownCheck:
    """Records what it was asked, so the test sees the task's prompt and its arguments reach it."""

    seen: list[tuple[bool, str, str]] = []

    def __init__(self, strict: bool = False):
        self.strict = strict

    def verify(self, rollouts: list[Rollout]) -> list[Verdict]:
        CountdownCheck.seen += [(self.strict, r.prompt[0]["content"], r.prompt[-1]["content"]) for r in rollouts]
        return [Verdict(0.0, False) for _ in rollouts]


def test_a_plugin_task_with_arguments_evaluates_like_a_built_in(tiny_model: str, tmp_path: Path) -> None:
    registries["task"].register("countdown", Countdown)
    registries["verifier"].register("countdown-check", CountdownCheck)
    CountdownCheck.seen = []
    out = tmp_path / "out.json"
    code, _ = _eval("--model", tiny_model, "--task", "countdown size=3 numbers=2", "--max-new-tokens", "2",
                    "--json", str(out))  # fmt: skip
    assert code == 0
    problems = json.loads(out.read_text())["tasks"]["countdown"]["problems"]
    assert [p["id"] for p in problems] == ["test-0", "test-1", "test-2"]  # size=3 reached the task
    # scored by the verifier the task declares, with its arguments, on the prompt the task declares
    assert CountdownCheck.seen[0] == (True, "Use each number once.", "Numbers: [1, 2]. Reach 10.")
    # the same arguments from a YAML file, and a label to evaluate the task twice
    task_file = tmp_path / "countdown.yaml"
    task_file.write_text("name: countdown\nsize: 2\nnumbers: 3\nlabel: countdown-3\n")
    code, _ = _eval("--model", tiny_model, "--task", str(task_file), "--task", "countdown size=1",
                    "--max-new-tokens", "2", "--json", str(out))  # fmt: skip
    tasks = json.loads(out.read_text())["tasks"]
    assert code == 0 and len(tasks["countdown-3"]["problems"]) == 2 and len(tasks["countdown"]["problems"]) == 1
