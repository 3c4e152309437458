"""The plugin kit: selfimprove.api, the check_verifier contract (on built-ins, and failing on broken verifiers)."""

from __future__ import annotations

import pytest

import selfimprove.api as api
from selfimprove.records import Verdict
from selfimprove.testing import check_verifier
from selfimprove.verifiers.exact import ExactVerifier
from selfimprove.verifiers.math import MathVerifier
from selfimprove.verifiers.numeric import NumericVerifier
from selfimprove.verifiers.regex import RegexVerifier

MATH_RECORDS = [
    {"id": "a", "completion": r"so \boxed{72}", "answer": "72", "expect": True},
    {"id": "b", "completion": "The answer is 71.", "answer": "72", "expect": False},
    {"id": "c", "completion": "It is 1,234 in all.", "answer": "1234", "expect": True},
]


def test_api_exports():
    assert set(api.__all__) >= {"Verifier", "Verdict", "Rollout", "Problem", "UserError", "last_code_block"}
    assert api.extract_final_number("The answer is 12 apples.") == 12.0
    for name in api.__all__:
        assert getattr(api, name) is not None


@pytest.mark.parametrize(
    "cls, args, records",
    [
        (NumericVerifier, {}, MATH_RECORDS),
        (MathVerifier, {"timeout": 5.0, "workers": 2}, MATH_RECORDS),
        (ExactVerifier, {"ignore_case": True}, [{"completion": "Paris", "answer": "paris", "expect": True}]),
        (
            RegexVerifier,
            {"pattern": "answer is {answer}"},
            [{"completion": "answer is 7", "answer": "7", "expect": True}],
        ),
    ],
)
def test_builtins_meet_the_contract(cls, args, records):
    verdicts = check_verifier(cls, records, args)
    assert len(verdicts) == len(records)


class Good:
    """Passes when the completion says 'yes'."""

    def __init__(self, word: str = "yes"):
        self.word = word

    def verify(self, rollouts):
        return [Verdict(float(self.word in r.completion.split()), self.word in r.completion.split()) for r in rollouts]


class IntScores(Good):
    def verify(self, rollouts):
        return [Verdict(int(v.passed), v.passed) for v in super().verify(rollouts)]


class CrashesOnEmpty(Good):
    def verify(self, rollouts):
        if any(not r.completion for r in rollouts):
            raise ValueError("empty completion")
        return super().verify(rollouts)


class DropsOne(Good):
    def verify(self, rollouts):
        return super().verify(rollouts)[1:]


class SetInfo(Good):
    def verify(self, rollouts):
        return [Verdict(v.score, v.passed, {"seen": {1, 2}}) for v in super().verify(rollouts)]


class Lenient(Good):
    def verify(self, rollouts):
        return [Verdict(1.0, True) for _ in rollouts]


class BatchDependent(Good):
    def verify(self, rollouts):
        return [Verdict(float(len(rollouts) == 1), len(rollouts) == 1) for _ in rollouts]


class Untyped(Good):
    def __init__(self, word="yes"):
        super().__init__(word)


class ThreadShy(Good):
    def verify(self, rollouts):
        import signal

        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # like math-verify's timeout: main thread only
        return super().verify(rollouts)


RECORDS = [{"completion": "yes sir", "expect": True}, {"completion": "no", "expect": False}]


def test_a_good_verifier_passes():
    assert [v.passed for v in check_verifier(Good, RECORDS)] == [True, False]


@pytest.mark.parametrize(
    "cls, args, message",
    [
        (IntScores, {}, "score must be a float"),
        (CrashesOnEmpty, {}, "verify raised on garbage completion ''"),
        (DropsOne, {}, "2 rollouts got 1 verdicts"),
        (SetInfo, {}, "info is not JSON"),
        (Lenient, {}, "expected passed=False"),
        (BatchDependent, {}, "expected passed=True"),
        (Untyped, {}, "'word' needs a type annotation"),
        (Good, {"wrd": "x"}, "has no argument 'wrd'"),
        (Good, {"word": 3}, "expected a string, got 3"),
        (ThreadShy, {}, "outside the main thread"),
    ],
)
def test_broken_verifiers_fail_the_contract(cls, args, message):
    with pytest.raises(AssertionError, match=message):
        check_verifier(cls, RECORDS, args)


def test_batch_dependence_is_caught_without_expectations():
    with pytest.raises(AssertionError, match="depend on the batch"):
        check_verifier(BatchDependent, [{"completion": "a"}, {"completion": "b"}])


def test_lenient_on_garbage_is_caught():
    class PassesEmpty(Good):
        def verify(self, rollouts):
            return [Verdict(float(not r.completion.strip()), not r.completion.strip()) for r in rollouts]

    with pytest.raises(AssertionError, match="a garbage completion passed"):
        check_verifier(PassesEmpty, [{"completion": "text", "expect": False}])
    check_verifier(PassesEmpty, [{"completion": "text", "expect": False}], garbage_fails=False)
