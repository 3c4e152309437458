"""A contract test for plugin verifiers, to call from the plugin's own tests:

    from selfimprove.testing import check_verifier

    def test_contract():
        check_verifier(MyVerifier, [{"id": "a", "completion": "...", "answer": "...", "expect": True}], {"arg": 1})

It asserts what the loop relies on: recipe validation can bind and type-check the constructor's arguments; one
verdict per rollout, in order, independent of batching; scores are floats in range, or NaN for "no score" (never
passed); ``info`` is JSON (it is written to the run directory); garbage completions and missing answers cost a
verdict, not an exception; and verifying from another thread gives the same verdicts. Records use ``selfimprove
verify``'s format; an optional ``expect`` key (true/false) pins a record's ``passed``.
"""

from __future__ import annotations

import inspect
import json
import math
import threading
from typing import Any

from selfimprove.config.loader import Located
from selfimprove.config.schema import _Builder
from selfimprove.records import Rollout, Verdict
from selfimprove.verifiers.inputs import rollout_from_record

GARBAGE = [
    "",
    " ",
    "\x00\x01\x02 binary \ufffd",
    "{" * 1000 + "}" * 3,
    r"\boxed{" * 50,
    "```python\nwhile True: pass\n",
    "🙂 " * 500,
    "9" * 5000,
    "x " * 50_000,
]


def check_verifier(
    cls: type,
    records: list[dict[str, Any]],
    args: dict[str, Any] | None = None,
    score_range: tuple[float, float] = (0.0, 1.0),
    deterministic: bool = True,
    garbage_fails: bool = True,
) -> list[Verdict]:
    """Assert the verifier contract for ``cls(**args)`` on ``records``; return the verdicts of ``records``.

    ``deterministic=False`` skips the order, batching and thread comparisons (an LLM judge sampling at T > 0);
    ``garbage_fails=False`` lets garbage completions pass (they must still get a verdict).
    """
    args = args or {}
    _check_signature(cls, args)
    verifier = cls(**args)
    expected = {i: r["expect"] for i, r in enumerate(records) if "expect" in r}
    cases = [
        rollout_from_record({k: v for k, v in r.items() if k != "expect"}, f"record {i}", str(i))
        for i, r in enumerate(records)
    ]
    assert cases, "check_verifier needs at least one record"

    verdicts = _verify(verifier, cases, score_range)
    for i, want in expected.items():
        assert verdicts[i].passed is want, f"record {i}: expected passed={want}, got {verdicts[i]}"
    assert verifier.verify([]) == [], "verify([]) must return []"

    if deterministic:
        summary = [(v.passed, _score(v)) for v in verdicts]
        backwards = _verify(verifier, cases[::-1], score_range)[::-1]
        assert [(v.passed, _score(v)) for v in backwards] == summary, "verdicts depend on the order of the batch"
        one_by_one = [_verify(verifier, [c], score_range)[0] for c in cases]
        assert [(v.passed, _score(v)) for v in one_by_one] == summary, "verdicts depend on the batch they are in"
        from_thread: dict[str, Any] = {}

        def work() -> None:
            try:
                from_thread["verdicts"] = _verify(verifier, cases, score_range)
            except BaseException as exc:  # re-raised below, in the test's thread
                from_thread["error"] = exc

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        if "error" in from_thread:
            raise AssertionError(f"verify failed outside the main thread: {from_thread['error']!r}")
        assert [(v.passed, _score(v)) for v in from_thread["verdicts"]] == summary, "verdicts differ in a thread"

    template = cases[0]
    garbage = [
        Rollout(f"g{i}", template.role, template.problem_id, template.prompt, text, template.answer, meta=template.meta)
        for i, text in enumerate(GARBAGE)
    ]
    # The first record without its answer: a verdict (an answer-checking verifier fails it), never an exception.
    no_answer = Rollout("no-answer", "verify", "p", template.prompt, template.completion, None, meta=template.meta)
    for rollout in [*garbage, no_answer]:
        try:
            (v,) = _verify(verifier, [rollout], score_range)
        except AssertionError:
            raise
        except Exception as exc:  # the loop would lose this sample: the contract asks for a failed verdict
            raise AssertionError(f"verify raised on garbage completion {rollout.completion[:40]!r}: {exc!r}") from exc
        assert not (garbage_fails and v.passed and rollout is not no_answer), f"a garbage completion passed: {v}"
    return verdicts


def _check_signature(cls: type, args: dict[str, Any]) -> None:
    params = [p for p in inspect.signature(cls).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for p in params:
        assert p.kind is not p.POSITIONAL_ONLY, f"{cls.__name__}: '{p.name}' must be a keyword argument"
        assert p.annotation is not p.empty, f"{cls.__name__}: '{p.name}' needs a type annotation for recipe checks"
    builder = _Builder(Located({}, {(): "check_verifier"}))
    builder.check_args(cls, args, ("verifier",), cls.__name__)
    assert not builder.problems, "recipe validation rejects the arguments:\n" + "\n".join(builder.problems)


def _score(verdict: Verdict) -> float | None:
    """A verdict's score, comparable: NaN (no score) is None."""
    return None if math.isnan(verdict.score) else verdict.score


def _verify(verifier: Any, rollouts: list[Rollout], score_range: tuple[float, float]) -> list[Verdict]:
    low, high = score_range
    verdicts = verifier.verify(rollouts)
    assert isinstance(verdicts, list), f"verify must return a list, got {type(verdicts).__name__}"
    assert len(verdicts) == len(rollouts), f"{len(rollouts)} rollouts got {len(verdicts)} verdicts"
    for rollout, v in zip(rollouts, verdicts, strict=True):
        where = f"rollout {rollout.id}"
        assert isinstance(v, Verdict), f"{where}: expected a Verdict, got {v!r}"
        assert isinstance(v.passed, bool), f"{where}: passed must be a bool, got {v.passed!r}"
        assert isinstance(v.score, float), f"{where}: score must be a float, got {v.score!r}"
        if math.isnan(v.score):  # "no score" (the check could not be made): never a pass
            assert not v.passed, f"{where}: a verdict without a score (NaN) cannot pass"
        else:
            assert low <= v.score <= high, f"{where}: score {v.score} outside {score_range}"
        assert isinstance(v.info, dict), f"{where}: info must be a dict"
        try:
            json.dumps(v.info)
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"{where}: info is not JSON ({exc}); it is written to the run directory") from None
    return verdicts
