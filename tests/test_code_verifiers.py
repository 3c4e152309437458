"""The code verifier (unit tests) and the executor (AZR), in the default isolation mode of this machine."""

from __future__ import annotations

import warnings

import pytest

from selfimprove.errors import UserError
from selfimprove.records import Rollout
from selfimprove.registry import registries
from selfimprove.verifiers.code import CodeVerifier, extract_code
from selfimprove.verifiers.executor import ExecutorVerifier, same_output, validity_errors

ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the limits-only warning, where bubblewrap is missing
        yield


def rollout(completion: str, i: int = 0, answer: str | None = None, **meta) -> Rollout:
    return Rollout(f"r{i}", "solver", f"p{i}", [], completion, answer=answer, meta=meta)


# -- code ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("def f(): pass", "def f(): pass"),
        ("Sure:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```python\nfirst\n```\ntext\n```python\nsecond\n```", "second\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```\nbare\n```", "bare\n"),
        ("```python\ntagged\n```\n```\nbare\n```", "tagged\n"),  # a tagged block wins over a later bare one
    ],
)
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


CODE_CASES = [
    ("def add(a, b):\n    return a + b", ADD_TESTS, "passed"),
    ("```python\ndef add(a, b):\n    return a - b\n```", ADD_TESTS, "failed"),
    ("def add(a, b):\n    return a / 0", ADD_TESTS, "failed"),  # an exception inside the tests
    ("def add(a, b) return a", ADD_TESTS, "syntax"),
    ("def add(a, b):\n    return a + b", "assert add(2, 3) ==", "syntax"),
    ("import time\ntime.sleep(30)", ADD_TESTS, "timeout"),
    ("x = bytearray(4 * 1024 ** 3)", ADD_TESTS, "memory"),
    ("raise ValueError('at import')", ADD_TESTS, "error"),
    ("def add(a, b):\n    return 0\nimport os\nos._exit(0)", ADD_TESTS, "error"),
    ("def add(a, b):\n    return a + b\nif __name__ == '__main__':\n    input()", ADD_TESTS, "passed"),
]


def test_code_statuses():
    verifier = CodeVerifier(timeout=1.5, workers=2)
    verdicts = verifier.verify([rollout(code, i, tests=tests) for i, (code, tests, _) in enumerate(CODE_CASES)])
    assert [v.info["status"] for v in verdicts] == [status for _, _, status in CODE_CASES]
    assert [v.passed for v in verdicts] == [status == "passed" for _, _, status in CODE_CASES]
    assert [v.score for v in verdicts] == [float(status == "passed") for _, _, status in CODE_CASES]
    assert "AssertionError" in verdicts[1].info["error"] and "(tests.py, line 1)" in verdicts[1].info["error"]
    assert "ZeroDivisionError" in verdicts[2].info["error"]
    assert verdicts[3].info["error"].startswith("program: SyntaxError")
    assert verdicts[4].info["error"].startswith("tests: SyntaxError")
    assert "ValueError: at import" in verdicts[7].info["error"]
    assert "exited with code 0 before the tests finished" in verdicts[8].info["error"]


def test_code_captures_output_capped():
    code = "print('hello')\nimport sys\nprint('x' * 5000, file=sys.stderr)\ndef add(a, b):\n    return a + b"
    verdict = CodeVerifier(max_output=100).verify([rollout(code, tests=ADD_TESTS)])[0]
    assert verdict.passed and verdict.info["stdout"] == "hello\n" and verdict.info["stderr"] == "x" * 99 + "\n"


def test_code_tests_as_a_list_and_missing_tests():
    verifier = CodeVerifier()
    good, missing = verifier.verify(
        [rollout("def add(a, b):\n    return a + b", tests=["assert add(1, 1) == 2", "assert add(0, 0) == 0"]),
         rollout("def add(a, b):\n    return a + b", 1)]
    )  # fmt: skip
    assert good.passed
    assert not missing.passed and missing.info["status"] == "error" and "tests" in missing.info["error"]


def test_code_humaneval_style_check():
    tests = "def check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n"
    verifier = CodeVerifier()
    right, wrong = verifier.verify([rollout("def add(a, b):\n    return a + b", tests=tests),
                                    rollout("def add(a, b):\n    return a * b", 1, tests=tests)])  # fmt: skip
    assert right.passed and not wrong.passed


def verify_code(*pairs: tuple[str, str], **meta) -> list:
    """Verdicts for ``(program, tests)`` pairs, with ``meta`` added to each record."""
    rollouts = [rollout(code, i, tests=tests, **meta) for i, (code, tests) in enumerate(pairs)]
    return CodeVerifier(timeout=3, workers=2).verify(rollouts)


def test_code_the_tests_get_functions_and_plain_constants():
    program = (
        "LIMIT = 3\nseen = []\ndef add(a, b=0, *, c=0):\n    seen.append(a)\n    print('call', a)\n    return a + b + c"
    )
    tests = "assert add(LIMIT, 1) == 4\nassert add(1, b=2, c=3) == 6\nassert add(**{'a': 1}) == 1\n"
    bad_constant = "LIMIT = object()\ndef add(a, b=0, *, c=0):\n    return a + b + c"
    right, wrong = verify_code((program, tests), (bad_constant, tests))
    assert right.passed and right.info["stdout"] == "call 3\ncall 1\ncall 1\n"
    assert wrong.info["status"] == "failed"
    assert "the tests use LIMIT, which is object (object cannot" in wrong.info["error"]


def test_code_program_exceptions_reach_the_tests_as_builtins():
    tests = """
try:
    f(-1)
except KeyError as exc:
    assert exc.args == ("negative", -1)
else:
    raise AssertionError("no exception")
assert f(2) == 2
"""
    body = "def f(x):\n    if x < 0:\n        raise {}\n    return x"
    own = "class Negative(KeyError):\n    pass\n" + body.format("Negative('negative', x)")
    plain = body.format("KeyError('negative', x)")
    custom = "class Oops(Exception):\n    pass\n" + body.format("Oops('negative')")
    verdicts = verify_code((own, tests), (plain, tests), (custom, tests))
    assert [v.passed for v in verdicts] == [True, True, False]
    # the program's own class is made on the tests' side, with its name and built-in base: except KeyError misses it
    assert "tests: Oops: negative (tests.py, line 3); raised by the program (Oops" in verdicts[2].info["error"]


def test_code_stop_iteration_cannot_end_the_tests_loops():
    tests = "assert all(map(is_even, [2, 4, 6]))\nassert not any(map(is_even, [1, 3]))\n"
    stop = "def is_even(n):\n    raise StopIteration"
    right = "def is_even(n):\n    return n % 2 == 0"
    wrong, good = verify_code((stop, tests), (right, tests))
    assert not wrong.passed and "ProgramError: StopIteration" in wrong.info["error"]
    assert good.passed


def test_code_a_value_that_is_not_plain_fails_even_when_the_tests_catch_it():
    tests = "try:\n    r = f()\nexcept Exception:\n    r = 1\nassert r == 1\n"
    program = "class Forty:\n    def __eq__(self, other):\n        return True\ndef f():\n    return [Forty()]"
    (verdict,) = verify_code((program, tests))
    assert verdict.info["status"] == "failed"
    assert verdict.info["error"].startswith("program: f() returned list holding Forty (Forty is an object of the")


def test_code_an_argument_that_cannot_cross_fails_with_the_rule():
    (verdict,) = verify_code(("def f(x):\n    return 1", "assert f(object()) == 1\n"))
    assert verdict.info["status"] == "failed"
    assert "an argument of f() cannot go to the program: object cannot cross" in verdict.info["error"]


POLY_PROMPT = (
    "import math\n\n\ndef poly(xs: list, x: float):\n    return sum(c * math.pow(x, i) for i, c in enumerate(xs))\n\n\n"
    'def find_zero(xs: list):\n    """ a zero of the polynomial """\n'
)
POLY_TESTS = (
    "def check(candidate):\n    assert abs(poly([-6, 11, -6, 1], candidate([-6, 11, -6, 1]))) < 1e-4\n\n"
    "check(find_zero)\n"
)


def test_code_prompt_helpers_are_the_tests_own():
    """HumanEval/32: the tests check the answer with the prompt's poly; a program's own poly cannot answer for it."""
    rigged = "def poly(xs, x):\n    return 0\n\ndef find_zero(xs):\n    return 0.0\n"
    right = POLY_PROMPT + "    return 1.0\n"  # 1 is a root of (x-1)(x-2)(x-3)
    meta = {"entry_point": "find_zero", "prompt_code": POLY_PROMPT}
    rigged_verdict, right_verdict = verify_code((rigged, POLY_TESTS), (right, POLY_TESTS), **meta)
    assert not rigged_verdict.passed and rigged_verdict.info["status"] == "failed"
    assert right_verdict.passed


def test_code_entry_point_must_be_a_name():
    (verdict,) = verify_code(("def f():\n    return 1", "assert f() == 1\n"), entry_point="not a name")
    assert verdict.info["status"] == "error" and "entry_point" in verdict.info["error"]


def test_code_arguments_are_checked():
    with pytest.raises(UserError, match="isolation"):
        CodeVerifier(isolation="docker")
    with pytest.raises(UserError, match="timeout"):
        CodeVerifier(timeout=0)
    with pytest.raises(UserError, match="workers"):
        CodeVerifier(workers=-1)


# -- executor --------------------------------------------------------------------------------------------


def test_executor_outputs_and_expected():
    rollouts = [
        rollout("def f(xs):\n    return sorted(xs)", 0, input="[3, 1, 2]"),
        rollout("def f(a, b):\n    return a * b", 1, answer="12", input="3, 4"),
        rollout("def f(a, b):\n    return a * b", 2, answer="13", input="3, 4"),
        rollout("```python\ndef f(s):\n    return s.upper()\n```", 3, input="'ab'", expected_output="'AB'"),
        rollout("def f(x):\n    return (x, [x])", 4, answer="(1,[1])", input="1"),  # equal values, other spacing
    ]
    verdicts = ExecutorVerifier().verify(rollouts)
    assert [v.info["output"] for v in verdicts] == ["[1, 2, 3]", "12", "12", "'AB'", "(1, [1])"]
    assert [v.passed for v in verdicts] == [True, True, False, True, True]
    assert verdicts[2].info["status"] == "failed" and verdicts[2].info["expected"] == "13"


def test_executor_determinism_check():
    rollouts = [
        rollout("def f(x):\n    return id(object()) + x", 0, input="1"),
        rollout("def f(x):\n    return {x, 'a', 'b', 'c', 'd'}", 1, input="1"),  # order may vary; the value does not
    ]
    nondeterministic, a_set = ExecutorVerifier().verify(rollouts)
    assert not nondeterministic.passed and nondeterministic.info["status"] == "nondeterministic"
    assert a_set.passed


def test_executor_validity_errors_per_program():
    rollouts = [
        rollout("import os\ndef f(x):\n    return os.getcwd()", 0, input="1"),
        rollout("from subprocess import run\ndef f(x):\n    return x", 1, input="1"),
        rollout("def f(x):\n    return eval('x')", 2, input="1"),
        rollout("def g(x):\n    return x", 3, input="1"),
        rollout("def f(x:\n    return x", 4, input="1"),
        rollout("def f(x):\n    return x", 5, input="__import__('os')"),
        rollout("def f(x):\n    return x", 6),
    ]
    verdicts = ExecutorVerifier().verify(rollouts)
    assert not any(v.passed for v in verdicts)
    assert [v.info["status"] for v in verdicts] == ["invalid"] * 4 + ["syntax", "invalid", "invalid"]
    assert verdicts[0].info["errors"] == ["program: banned import 'os' (line 1)"]
    assert verdicts[1].info["errors"] == ["program: banned import 'subprocess' (line 1)"]
    assert verdicts[2].info["errors"] == ["program: banned call eval() (line 2)"]
    assert verdicts[3].info["errors"] == ["program: no top-level function 'f'"]
    assert verdicts[5].info["errors"][0].startswith("input: not an argument list of literals: this call")
    assert "input" in verdicts[6].info["errors"][0]


def test_executor_ban_list_is_configurable_and_single_def():
    program = "import math\ndef helper(x):\n    return x\ndef f(x):\n    return math.floor(helper(x))"
    assert validity_errors(program, "f", set(), set(), single_def=False) == []
    assert validity_errors(program, "f", {"math"}, set(), single_def=False) == [
        "program: banned import 'math' (line 1)"
    ]
    assert validity_errors(program, "f", set(), set(), single_def=True) == [
        "program: expected exactly one function definition, found 2"
    ]
    verdict = ExecutorVerifier(banned_imports=[], single_def=False).verify([rollout(program, input="1.5")])[0]
    assert verdict.passed and verdict.info["output"] == "1"


def test_executor_runtime_failures():
    rollouts = [
        rollout("def f(x):\n    return 1 / x", 0, input="0"),
        rollout("def f(x):\n    while True:\n        pass", 1, input="0"),
    ]
    verdicts = ExecutorVerifier(timeout=1).verify(rollouts)
    assert [v.info["status"] for v in verdicts] == ["error", "timeout"]
    assert "ZeroDivisionError" in verdicts[0].info["errors"][0]


def test_same_output():
    assert same_output("[1, 2]", "[1,2]") and same_output("'a'", '"a"') and not same_output("1", "2")
    assert not same_output("<object at 0x1>", "<object at 0x2>")
    assert same_output("float('nan')", " float('nan') ") and same_output("{1, 2}", "{2, 1}")
    assert same_output("(1+2j)", "complex(1.0, 2.0)") and same_output("1", "1.0")
    assert not same_output("(1).__class__", "(2).__class__")  # neither side is evaluated
    assert same_output("nan", "float('nan')") and same_output("[inf, nan]", "[float('inf'), float('nan')]")
    assert same_output("(nan+1j)", "complex(float('nan'), 1.0)") and not same_output("nan", "inf")


@pytest.mark.parametrize(
    "program, arguments, expected, passed",
    [
        ("def f(x):\n    return x * 2", "3", "6", True),
        ("def f(x):\n    return 0", "0) if 0 else (7", "7", False),  # the issue's injected "input": refused
        ("def f(x):\n    return 0", "0); print(1); (0", "0", False),
        ("def f(*a, **k):\n    return [a, k]", "1, [2], k=set()", "[(1, [2]), {'k': set()}]", True),
        ("def f(x):\n    return x", "float('inf')", "inf", True),  # as Python prints it
        ("def f(x):\n    return [x]", "-inf", "[-inf]", True),
        ("def f(x):\n    return x", "complex(nan, 1)", "(nan+1j)", True),
        ("def f(x):\n    return x", "lambda: 0", "0", False),
    ],
)
def test_executor_inputs_are_arguments_not_code(program, arguments, expected, passed):
    (verdict,) = ExecutorVerifier(timeout=2).verify([rollout(program, input=arguments, expected_output=expected)])
    assert verdict.passed is passed, verdict.info
    if not passed and "def f(x):\n    return 0" == program:
        assert verdict.info["status"] == "invalid" and verdict.info["errors"][0].startswith("input: ")


def test_executor_output_size_is_checked_on_the_verifiers_side():
    """A program that writes its own output frame past the harness's cap gets an error, not an output."""
    forged = (
        "import os\ndef f(x):\n    os.write(3, (\"('output', '\" + 'x' * 900_000 + \"')\\n\").encode())\n"
        "    os._exit(0)\n"
    )
    (verdict,) = ExecutorVerifier(banned_imports=[]).verify([rollout(forged, input="0")])
    assert verdict.info["status"] == "error" and "longer than 10000 characters" in verdict.info["errors"][0]


def test_executor_outputs_are_plain_values_only():
    objects = [
        ("class E:\n    def __eq__(self, o):\n        return True\n    def __repr__(self):\n        return '3'\n"
         "def f(x):\n    return E()", "E"),
        ("class I(int):\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return I(3)", "I"),
        ("def f(x):\n    return (i for i in range(x))", "generator"),
        ("def f(x):\n    return [1, {'k': lambda: x}]", "list holding function"),
    ]  # fmt: skip
    verdicts = ExecutorVerifier().verify([rollout(p, i, answer="3", input="3") for i, (p, _) in enumerate(objects)])
    for verdict, (_, culprit) in zip(verdicts, objects, strict=True):
        assert not verdict.passed and verdict.info["status"] == "error" and verdict.info["output"] is None
        assert verdict.info["errors"] == [f"f returned {culprit}, not a plain value"]


def test_executor_output_is_canonical():
    rollouts = [
        rollout("def f(x):\n    return {3, 1, 2}", 0, input="0"),
        rollout("def f(x):\n    return float('nan')", 1, input="0", expected_output="float('nan')"),
        rollout("def f(x):\n    return 10 ** 5000", 2, input="0"),
    ]
    verdicts = ExecutorVerifier().verify(rollouts)
    assert [v.passed for v in verdicts] == [True, True, True]
    assert verdicts[0].info["output"] == "{1, 2, 3}" and verdicts[1].info["output"] == "float('nan')"
    assert verdicts[2].info["output"] == hex(10**5000)


def test_executor_arguments_are_checked():
    with pytest.raises(UserError, match="runs"):
        ExecutorVerifier(runs=0)
    with pytest.raises(UserError, match="entry"):
        ExecutorVerifier(entry="not a name")


def test_registered_as_verifiers():
    assert registries["verifier"].get("code") is CodeVerifier
    assert registries["verifier"].get("executor") is ExecutorVerifier
