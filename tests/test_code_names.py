"""What the tests take from the program, the trusted prompt helpers, and the harnesses' inlined source."""

from __future__ import annotations

import pytest

from selfimprove.sandbox import inline
from selfimprove.verifiers.code_names import free_names, program_names, prompt_helpers


def test_free_names_are_loaded_and_bound_nowhere():
    tests = """
import math
from os import path as p
def check(candidate, *rest, key=None, **kw):
    for i, x in enumerate(CASES):
        assert candidate(x) == [y for y in expected(i)]
    try:
        helper()
    except ValueError as err:
        print(err, math.pi, p, rest, kw, key)
    match shape():
        case {"a": a, **others}:
            pass
        case [first, *tail]:
            pass
    total = (n := 3) + n
check(solve)
"""
    assert free_names(tests) == {"CASES", "expected", "helper", "print", "enumerate", "ValueError", "shape", "solve"}
    assert program_names(tests) == ["CASES", "expected", "helper", "shape", "solve"]


def test_builtins_always_stay_the_tests_own_and_the_entry_point_is_added():
    tests = "assert abs(f(2) - 4) < 1e-6 and len(g()) == 2 and isinstance(h(), int) and sorted(k()) == [1]"
    assert program_names(tests) == ["f", "g", "h", "k"]
    assert program_names("def check(c):\n    c(1)\ncheck(fn)", entry="solve") == ["fn", "solve"]
    assert program_names("def check(c):\n    assert c(1)\n", entry="max") == ["max"]  # an entry point may shadow


def test_names_bound_by_the_prelude_are_not_taken_from_the_program():
    prelude = "import math\ndef poly(xs, x):\n    return sum(c * math.pow(x, i) for i, c in enumerate(xs))\n"
    tests = "def check(candidate):\n    assert abs(poly([1, 2], candidate([1, 2]))) < 1e-4\n"
    assert program_names(tests, prelude, "find_zero") == ["find_zero"]


def test_prompt_helpers_drop_only_the_entry_point():
    prompt = (
        "import math\n\n\ndef poly(xs: list, x: float):\n    return 1\n\n\n"
        '@some.decorator\ndef find_zero(xs: list):\n    """ doc\n    """\n'
    )
    assert prompt_helpers(prompt, "find_zero") == "import math\n\n\ndef poly(xs: list, x: float):\n    return 1\n\n\n"
    assert prompt_helpers("def f():\n    pass\n", "g") == "def f():\n    pass\n"
    with pytest.raises(SyntaxError):
        prompt_helpers("def f(:\n", "f")


def test_harness_sources_are_self_contained():
    for module in ("code_driver", "code_program", "executor_harness"):
        text = inline.source(f"selfimprove.verifiers.{module}")
        assert "from selfimprove" not in text and "import selfimprove" not in text
        assert "def encode(" in text and "def describe(" in text
        compile(text, module, "exec")
    assert "class Channel" in inline.source("selfimprove.verifiers.code_driver")


def test_harnesses_use_the_sandboxs_descriptors():
    from selfimprove.sandbox import run
    from selfimprove.verifiers import code_driver, code_program, executor_harness

    assert code_driver.REPORT_FD == executor_harness.REPORT_FD == run.REPORT_FD
    assert code_driver.PEER_IN_FD == code_program.PEER_IN_FD == run.PEER_IN_FD
    assert code_driver.PEER_OUT_FD == code_program.PEER_OUT_FD == run.PEER_OUT_FD
