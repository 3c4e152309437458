"""The math verifier (math-verify in timed worker processes), the exact verifier, and the answer helpers."""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

from selfimprove.errors import UserError
from selfimprove.records import Rollout
from selfimprove.verifiers.exact import ExactVerifier
from selfimprove.verifiers.extract import extract_final_number, final_answer, last_boxed, last_code_block
from selfimprove.verifiers.math import MathVerifier
from selfimprove.verifiers.pool import TimedPool

HANG = r"\boxed{9^{9^{9^{9}}}}"  # sympy tries to evaluate it: minutes of work without a time limit


def rollout(completion: str, answer: str | None, i: int = 0) -> Rollout:
    return Rollout(id=f"r{i}", role="solver", problem_id=f"p{i}", prompt=[], completion=completion, answer=answer)


@pytest.fixture(scope="module")
def math_verifier() -> MathVerifier:
    return MathVerifier(timeout=2.0, workers=2)


# -- math --------------------------------------------------------------------------------------------------

CASES = [
    ("72", "72", True),
    ("$72", "72", True),
    ("72.0", "72", True),
    (r"\boxed{72}", "72", True),
    ("The answer is 72.", "72", True),
    (r"So the total is $\boxed{72}$ dollars.", "72", True),
    ("It costs 1,234 dollars.", "1234", True),
    ("1234", "1,234", True),
    (r"\frac{1}{2}", "0.5", True),
    ("1/2", r"\frac{1}{2}", True),
    ("The answer is 50%.", "50", True),
    (r"\boxed{72 \text{ apples}}", "72", True),
    (r"\boxed{70+2}", "72", True),
    ("The answer is 73.", "72", False),
    ("72 + 1 = 73", "72", False),  # the last value counts, not any value
    (r"\boxed{72} \boxed{73}", "72", False),  # hedging between answers is not an answer
    ("72, 73", "72", False),
    ("720", "72", False),
    ("no idea", "72", False),
    ("", "72", False),
]


def test_surface_forms(math_verifier):
    verdicts = math_verifier.verify([rollout(c, a, i) for i, (c, a, _) in enumerate(CASES)])
    assert [v.passed for v in verdicts] == [p for _, _, p in CASES]
    assert [v.score for v in verdicts] == [1.0 if p else 0.0 for _, _, p in CASES]


def test_info_says_what_was_compared(math_verifier):
    (verdict,) = math_verifier.verify([rollout(r"so \boxed{\frac{3}{4}}", "0.75")])
    assert verdict.passed
    assert verdict.info == {"parsed": r"\frac{3}{4}", "expected": "0.75", "method": "math-verify"}


def test_numeric_fallback_when_math_verify_cannot_read(math_verifier):
    (verdict,) = math_verifier.verify([rollout(r"It costs \$1,234", "1234")])
    assert verdict.passed and verdict.info["method"] == "numeric" and verdict.info["parsed"] == 1234.0
    (strict,) = MathVerifier(fallback=False, workers=2, timeout=2.0).verify([rollout(r"It costs \$1,234", "1234")])
    assert not strict.passed and strict.info["error"] == "could not parse the completion"


def test_missing_reference(math_verifier):
    (verdict,) = math_verifier.verify([rollout("72", None)])
    assert not verdict.passed and verdict.info["error"] == "no reference answer"
    assert math.isnan(verdict.score)  # nothing to judge against: no score, rather than a wrong answer


def test_timeout_costs_only_its_sample(math_verifier):
    start = time.perf_counter()
    verdicts = math_verifier.verify([rollout("72", "72", 0), rollout(HANG, "72", 1), rollout("5", "5", 2)])
    elapsed = time.perf_counter() - start
    assert [v.passed for v in verdicts] == [True, False, True]
    assert verdicts[1].info == {"error": "timeout"}
    assert elapsed < 2.0 + 3.0  # its limit, plus replacing the worker, on a loaded machine
    assert math_verifier.verify([rollout("8", "8")])[0].passed  # the pool still works afterwards


def test_works_from_a_non_main_thread(math_verifier):
    """math-verify's own timeout (signal.alarm) raises outside the main thread; ours must not."""
    results = {}

    def work() -> None:
        try:
            results["verdicts"] = math_verifier.verify([rollout(r"\boxed{72}", "72"), rollout(HANG, "72", 1)])
        except BaseException as exc:  # reported below; a bare thread would swallow it
            results["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert "error" not in results, results.get("error")
    assert [v.passed for v in results["verdicts"]] == [True, False]
    assert results["verdicts"][1].info["error"] == "timeout"


def test_pool_replaces_a_dead_worker():
    pool = TimedPool(workers=1, memory_mb=512)
    try:
        died, alive = pool.map(os._exit, [(3,)], timeout=5), pool.map(abs, [(-2,)], timeout=5)
        assert died[0].error is not None and died[0].error.startswith("worker died")
        assert alive[0].value == 2
    finally:
        pool.close()


@pytest.mark.parametrize("args", [{"timeout": 0}, {"workers": 0}, {"memory_mb": 10}])
def test_math_bad_arguments(args):
    with pytest.raises(UserError, match="math:"):
        MathVerifier(**args)


# -- exact -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, completion, answer, passed",
    [
        ({}, "  Paris \n", "Paris", True),
        ({}, "paris", "Paris", False),
        ({"ignore_case": True}, "PARIS", "paris", True),
        ({}, "New   York", "New York", True),
        ({"collapse_whitespace": False}, "New   York", "New York", False),
        ({"extract": r"answer is (.+?)\.?$"}, "I think...\nThe answer is Paris.", "Paris", True),
        ({"extract": r"answer is (.+?)\.?$"}, "The answer is Rome.\nThe answer is Paris.", "Paris", True),  # last
        ({"extract": r"answer is (.+?)\.?$"}, "Paris", "Paris", False),  # no stated answer
        ({"strip_chars": ".!"}, "Paris!", "Paris", True),
    ],
)
def test_exact(args, completion, answer, passed):
    (verdict,) = ExactVerifier(**args).verify([rollout(completion, answer)])
    assert verdict.passed is passed and verdict.score == float(passed)


def test_exact_bad_pattern():
    with pytest.raises(UserError, match="exact: bad extract pattern"):
        ExactVerifier(extract="(")


# -- helpers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, answer",
    [
        (r"so \boxed{\frac{1}{2}} then", r"\frac{1}{2}"),
        (r"\boxed{1} and finally \boxed{{2}+3}", "{2}+3"),
        ("The answer is 72.", "72"),
        ("Work...\n#### 1,234\n", "1,234"),
        ("Answer: Paris", "Paris"),
        ("just 5", None),
    ],
)
def test_final_answer(text, answer):
    assert final_answer(text) == answer


def test_extract_final_number_and_boxed():
    assert extract_final_number("3 then 4. The answer is 12 apples.\nCheck: 6 + 6") == 12.0
    assert extract_final_number("no statement, last is 9") == 9.0
    assert last_boxed(r"\boxed{unclosed") is None


def test_last_code_block():
    text = "```python\nx = 1\n```\ntext\n```\ny = 2\n```\n```text\nout\n```"
    assert last_code_block(text) == "x = 1\n"  # a block tagged so wins over a later untagged one
    assert last_code_block(text, language="rust") == "y = 2\n"
    assert last_code_block(text, language=None) == "out\n"
    assert last_code_block("```text\nout\n```", language="python") == "out\n"
    assert last_code_block("no code") is None


# -- GSM8K reference answers (a sample of benchmarks/math_verifier.py) --------------------------------------


def test_gsm8k_reference_answers_sample(math_verifier, monkeypatch):
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = Path(os.environ.get("SELFIMPROVE_DATA_DIR") or root.parent / "shared" / "data")
    if not (data / "gsm8k" / "test.jsonl").is_file():
        pytest.skip(f"no GSM8K test split under {data}")
    monkeypatch.setenv("SELFIMPROVE_DATA_DIR", str(data))
    spec = importlib.util.spec_from_file_location("math_bench", root / "benchmarks" / "math_verifier.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from selfimprove.tasks.gsm8k import GSM8K

    answers = [p.answer for p in GSM8K().load("test")][::26]  # 51 answers, 5 of them with thousands
    cases = bench.cases(answers)
    assert sum(1 for _, expected in cases if expected) >= 5 * len(answers)
    verdicts = math_verifier.verify([r for r, _ in cases])
    wrong = [(r.completion, r.answer) for (r, expected), v in zip(cases, verdicts, strict=True) if v.passed != expected]
    assert wrong == []
