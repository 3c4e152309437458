"""SPIN's selector: the real response (chosen) against each of the model's generations (rejected)."""

from __future__ import annotations

import pytest

from selfimprove.errors import UserError
from selfimprove.records import Rollout, Verdict
from selfimprove.selection.spin import SPIN

ASK = [{"role": "user", "content": "What is 2 + 3?"}]


def rollout(rid: str, problem: str, completion: str, meta: dict, passed: bool = False, **kw) -> Rollout:
    verdict = Verdict(float(passed), passed)
    return Rollout(rid, "solver", problem, ASK, completion, "5", verdict=verdict, meta=meta, **kw)


def test_each_generation_is_paired_with_the_real_response() -> None:
    real = {"full_solution": "2 + 3 = 5.\n#### 5", "solution": "2 + 3 = 5."}
    other = {"full_solution": "4 - 1 = 3.\n#### 3"}
    rollouts = [
        rollout("solver/p0/0", "p0", "It is 6.", real),
        rollout("solver/p0/1", "p0", "2 + 3 = 5. #### 5", real, passed=True),  # correct ones are pairs too
        rollout("solver/p1/0", "p1", "3", other),
    ]
    examples = SPIN().select(rollouts)
    assert [(e.id, e.completion, e.rejected) for e in examples] == [
        ("solver/p0/0", "2 + 3 = 5.\n#### 5", "It is 6."),
        ("solver/p0/1", "2 + 3 = 5.\n#### 5", "2 + 3 = 5. #### 5"),
        ("solver/p1/0", "4 - 1 = 3.\n#### 3", "3"),
    ]
    assert all(e.prompt == ASK and e.role == "solver" for e in examples)
    assert [e.completion for e in SPIN(real="solution").select(rollouts[:1])] == ["2 + 3 = 5."]


def test_pairs_train_on_the_hint_free_prompt() -> None:
    hinted = [{"role": "user", "content": "What is 2 + 3? (Hint: 5)"}]
    r = rollout("solver/p0/0", "p0", "6", {"full_solution": "5"}, train_prompt=ASK)
    r.prompt = hinted
    (example,) = SPIN().select([r])
    assert example.prompt == ASK


def test_a_generation_equal_to_the_real_response_makes_no_pair() -> None:
    real = {"full_solution": "2 + 3 = 5."}
    examples = SPIN().select([rollout("a", "p0", " 2 + 3 = 5.\n", real), rollout("b", "p0", "5", real)])
    assert [e.id for e in examples] == ["b"]


@pytest.mark.parametrize("meta", [{"solution": "5"}, {"full_solution": "  "}, {}])
def test_a_problem_without_a_real_response_names_the_field(meta: dict) -> None:
    with pytest.raises(UserError, match="problem p7 has no real response in field 'full_solution'"):
        SPIN().select([rollout("a", "p7", "6", meta)])


def test_spin_pairs_from_arithmetic_problems() -> None:
    from selfimprove.tasks.arithmetic import Arithmetic

    (problem,) = Arithmetic(size=1).load("train")
    r = rollout("a", problem.id, "no idea", problem.meta)
    (example,) = SPIN().select([r])
    assert example.completion == f"{problem.meta['solution']} The answer is {problem.answer}."
