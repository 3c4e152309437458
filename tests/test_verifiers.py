"""Verifiers: numeric answers, regex patterns, and containment of a crashing verifier."""

from __future__ import annotations

import math

import pytest

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict
from selfimprove.verifiers import verify_safely
from selfimprove.verifiers.numeric import NumericVerifier, last_number
from selfimprove.verifiers.regex import RegexVerifier


def rollout(completion: str, answer: str | None, i: int = 0) -> Rollout:
    return Rollout(id=f"r{i}", role="solver", problem_id=f"p{i}", prompt=[], completion=completion, answer=answer)


# -- numeric -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, number",
    [
        ("First 3, then 5, so the answer is 12.", 12.0),  # the last number wins
        ("It costs 1,234 dollars", 1234.0),
        ("$1,234.00", 1234.0),
        ("The temperature is -7 degrees", -7.0),
        ("0.25 of it", 0.25),
        ("about .5", 0.5),
        ("5 - 3 = 2", 2.0),
        ("count 1, 2, and 3,", 3.0),
        ("no digits here", None),
        ("", None),
    ],
)
def test_last_number(text, number):
    assert last_number(text) == number


@pytest.mark.parametrize(
    "completion, answer, passed",
    [
        ("3 + 4 = 7. The answer is 7.", "7", True),
        ("I first guessed 7, but it is 8.", "7", False),  # only the final number counts
        ("The total is $1,234.00", "1234", True),
        ("The total is 1234", "1,234", True),
        ("The answer is -12", "-12", True),
        ("The answer is 12", "-12", False),
        ("x = 2.50", "2.5", True),
        ("x = 2.51", "2.5", False),
        ("The answer is 72", "Natalia sold 48/2 = 24 clips in May.\n72", True),  # the reference's last number
    ],
)
def test_numeric_verdicts(completion, answer, passed):
    (verdict,) = NumericVerifier().verify([rollout(completion, answer)])
    assert verdict.passed is passed
    assert verdict.score == (1.0 if passed else 0.0)


def test_numeric_records_what_it_parsed():
    (verdict,) = NumericVerifier().verify([rollout("so 41", "42")])
    assert verdict.info == {"parsed": 41.0, "expected": 42.0}


def test_numeric_no_number_fails_with_info():
    (verdict,) = NumericVerifier().verify([rollout("I do not know.", "42")])
    assert (verdict.passed, verdict.score) == (False, 0.0)
    assert verdict.info == {"parsed": None, "expected": 42.0}


def test_numeric_reference_without_a_number_is_an_error_verdict():
    verdicts = NumericVerifier().verify([rollout("42", "forty-two"), rollout("42", None, 1)])
    assert [v.passed for v in verdicts] == [False, False]
    assert "has no number" in verdicts[0].info["error"] and "has no number" in verdicts[1].info["error"]


def test_numeric_tolerance():
    assert NumericVerifier(tolerance=0.1).verify([rollout("3.05", "3")])[0].passed
    assert not NumericVerifier().verify([rollout("3.05", "3")])[0].passed


@pytest.mark.parametrize(
    "completion, passed, wrong",
    [
        ("72 - 35 = 37. The answer is 37.", True, None),
        ("107 - 48 = 37. The answer is 37.", False, "107 - 48 = 37"),  # the hint copied after a wrong calculation
        ("23+58=81, 81 - 44 = 37. The answer is 37.", True, None),
        ("23+58=81, 81 - 44 = 38. The answer is 37.", False, "81 - 44 = 38"),
        ("6 × 7 = 42, 42 / 6 = 7, 7 x 1 = 7 and 37", True, None),
        ("5 / 0 = 0. The answer is 37.", False, "5 / 0 = 0"),
        ("87 is greater than 41 and 12. The answer is 37.", True, None),  # no calculation: the answer decides
        ("36 + 1 = 37 but the answer is 36.", False, None),  # the final number still decides first
    ],
)
def test_numeric_check_equations(completion: str, passed: bool, wrong: str | None) -> None:
    verdict = NumericVerifier(check_equations=True).check(completion, "37")
    assert verdict.passed is passed and verdict.info.get("wrong_equation") == wrong
    assert NumericVerifier().check(completion, "37").passed is completion.endswith("37.") or "and 37" in completion


def test_numeric_check_equations_is_linear_on_hostile_text() -> None:
    import time

    def seconds(n: int) -> float:
        text = "12345 - " * n + "= 1 x"
        start = time.perf_counter()
        NumericVerifier(check_equations=True).check(text, "1")
        return time.perf_counter() - start

    small, large = seconds(20_000), seconds(160_000)
    assert large < 8 * small * 4  # 8x the text: about 8x the time (4x slack for a noisy machine), not 64x


def test_numeric_keeps_order():
    rollouts = [rollout(c, a, i) for i, (c, a) in enumerate([("1", "1"), ("2", "3"), ("4", "4")])]
    assert [v.passed for v in NumericVerifier().verify(rollouts)] == [True, False, True]


# -- regex -------------------------------------------------------------------------------------------------


def test_regex_answer_placeholder_is_escaped():
    verifier = RegexVerifier(r"answer is \(?{answer}\)?\.?$")
    ok, wrong, dotted = verifier.verify(
        [
            rollout("so the answer is (a+b).", "a+b"),
            rollout("so the answer is aab.", "a+b"),
            rollout("answer is 3.5", "3.5"),
        ]
    )
    assert ok.passed and ok.info == {"match": "answer is (a+b)."}
    assert not wrong.passed and wrong.info == {"match": None}  # '+' is literal, not a quantifier
    assert dotted.passed
    assert not verifier.verify([rollout("answer is 3x5", "3.5")])[0].passed  # '.' is literal too


def test_regex_plain_pattern_and_case():
    assert not RegexVerifier("yes").verify([rollout("YES", None)])[0].passed
    assert RegexVerifier("yes", ignore_case=True).verify([rollout("YES", None)])[0].passed


def test_regex_bad_pattern_is_a_user_error():
    with pytest.raises(UserError, match="regex: bad pattern"):
        RegexVerifier("([a-z]")


# -- verify_safely -----------------------------------------------------------------------------------------


class CrashesOnBoom:
    """Judges a batch; raises when any completion says 'boom'."""

    def __init__(self):
        self.calls = 0

    def verify(self, rollouts):
        self.calls += 1
        if any("boom" in r.completion for r in rollouts):
            raise ValueError("cannot parse boom")
        return [Verdict(1.0, True, {"ok": r.id}) for r in rollouts]


def test_verify_safely_contains_a_crash_to_its_sample():
    rollouts = [rollout("fine", "1", 0), rollout("boom", "1", 1), rollout("also fine", "1", 2)]
    verifier = CrashesOnBoom()
    verdicts = verify_safely(verifier, rollouts)
    assert [v.passed for v in verdicts] == [True, False, True]
    assert [v.info.get("ok") for v in verdicts] == ["r0", None, "r2"]  # the others keep their own verdicts
    assert math.isnan(verdicts[1].score)  # not a score: a reward reads it as "no reward", never as 0
    assert verdicts[1].info["error"] == "verifier crashed: ValueError: cannot parse boom"
    assert verifier.calls == 4  # one batch, then one call per sample


def test_verify_safely_uses_one_batch_call_when_nothing_fails():
    verifier = CrashesOnBoom()
    verdicts = verify_safely(verifier, [rollout("a", "1", 0), rollout("b", "1", 1)])
    assert [v.passed for v in verdicts] == [True, True] and verifier.calls == 1


def test_verify_safely_retries_when_the_batch_has_the_wrong_length():
    class DropsLast:
        def verify(self, rollouts):
            verdicts = [Verdict(1.0, True) for _ in rollouts]
            return verdicts[:-1] if len(rollouts) > 1 else verdicts

    assert [v.passed for v in verify_safely(DropsLast(), [rollout("a", "1", i) for i in range(3)])] == [True] * 3


def test_verify_safely_when_a_single_call_returns_nothing():
    class ReturnsNothing:
        def verify(self, rollouts):
            return []

    (verdict,) = verify_safely(ReturnsNothing(), [rollout("a", "1")])
    assert not verdict.passed and verdict.info["error"].startswith("verifier crashed: IndexError")
