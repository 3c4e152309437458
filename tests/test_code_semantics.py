"""What crosses between the tests and the program in the code verifier: arguments that behave as the tests
expect (changes reflected, identity kept), callables both ways, standard-library values, the program's own
exception classes and modules. Each right program must pass and each wrong one fail."""

from __future__ import annotations

import warnings

import pytest

from selfimprove.records import Rollout
from selfimprove.verifiers.code import CodeVerifier


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def verdicts(*cases: tuple[str, str], **meta):
    rollouts = [Rollout(f"r{i}", "solver", f"p{i}", [], code, meta={"tests": t, **meta}) for i, (code, t) in
                enumerate(cases)]  # fmt: skip
    return CodeVerifier(timeout=3, workers=2).verify(rollouts)


def check(right: str, wrong: str | None, tests: str, **meta):
    cases = [(right, tests)] + ([(wrong, tests)] if wrong else [])
    found = verdicts(*cases, **meta)
    assert found[0].passed, found[0].info
    if wrong:
        assert not found[1].passed and found[1].info["status"] != "syntax", found[1].info
    return found


IN_PLACE = "xs = [3, 1, 2]\nassert sort_in_place(xs) is None\nassert xs == [1, 2, 3]\n"
UNCHANGED = "xs = [3, 1, 2]\nassert sorted_copy(xs) == [1, 2, 3]\nassert xs == [3, 1, 2]\n"
NEW_OBJECT = "xs = [3, 1, 2]\nys = sorted_copy(xs)\nassert ys == [1, 2, 3] and ys is not xs\n"


def test_a_change_to_an_argument_reaches_the_tests():
    check("def sort_in_place(xs):\n    xs.sort()", "def sort_in_place(xs):\n    sorted(xs)", IN_PLACE)


def test_an_argument_left_unchanged_is_checked():
    right, wrong = "def sorted_copy(xs):\n    return sorted(xs)", "def sorted_copy(xs):\n    xs.sort()\n    return xs"
    check(right, wrong, UNCHANGED)


def test_a_returned_argument_is_the_tests_own_object():
    right, wrong = "def sorted_copy(xs):\n    return sorted(xs)", "def sorted_copy(xs):\n    xs.sort()\n    return xs"
    check(right, wrong, NEW_OBJECT)
    same = "xs = [2, 1]\nassert f(xs) is xs and xs == [1, 2]\nd = {'k': [1]}\nassert f2(d) is d['k']\n"
    check("def f(xs):\n    xs.sort()\n    return xs\ndef f2(d):\n    return d['k']",
          "def f(xs):\n    return sorted(xs)\ndef f2(d):\n    return list(d['k'])", same)  # fmt: skip


def test_nested_changes_keep_the_tests_inner_objects():
    tests = "row = [1, 2]\nm = [row, [3]]\nf(m)\nassert m == [[1, 2, 0], [3], [9]] and m[0] is row\nd = {'a': {1}}\n"
    tests += "g(d, key='b')\nassert d == {'a': {1, 2}, 'b': set()}\n"
    right = "def f(m):\n    m[0].append(0)\n    m.append([9])\ndef g(d, key):\n    d['a'].add(2)\n    d[key] = set()"
    check(right, "def f(m):\n    m.append([9])\ndef g(d, key):\n    d[key] = set()", tests)


def test_callables_cross_both_ways():
    tests = (
        "assert apply_all([1, 2], lambda x: x * 10) == [10, 20]\n"
        "assert sort_by(['bb', 'a', 'ccc'], key=len) == ['a', 'bb', 'ccc']\n"
        "assert sort_by(['B', 'a'], key=str.lower) == ['a', 'B']\n"
        "assert make_adder(2)(3) == 5\n"
        "assert apply_all([1], make_adder(1)) == [2]\n"
        "seen = []\nassert apply_all([1, 2], seen.append) == [None, None] and seen == [1, 2]\n"
    )
    right = (
        "def apply_all(xs, fn):\n    return [fn(x) for x in xs]\n"
        "def sort_by(xs, key):\n    return sorted(xs, key=key)\n"
        "def make_adder(n):\n    return lambda x: x + n\n"
    )
    check(right, right.replace("x + n", "x - n"), tests)


def test_ranges_and_generators_and_library_values():
    tests = (
        "assert total(range(5)) == 10\n"
        "assert list(evens(6)) == [0, 2, 4]\n"
        "import types\nassert isinstance(evens(2), types.GeneratorType)\n"
        "assert counts('abca') == {'a': 2, 'b': 1, 'c': 1}\n"
        "assert counts('ab').most_common(1) == [('a', 1)]\n"
        "p = point(1, 2)\nassert p == (1, 2) and p.x == 1 and type(p).__name__ == 'Point'\n"
        "from fractions import Fraction\nassert half(3) == Fraction(3, 2)\n"
        "assert match('ab12')\nassert match('ab12').group(0) == '12' and not match('ab')\n"
        "assert dq([1, 2]).pop() == 2\n"
    )
    right = (
        "import collections, fractions, re\n"
        "Point = collections.namedtuple('Point', 'x y')\n"
        "def total(r):\n    return sum(r)\n"
        "def evens(n):\n    yield from range(0, n, 2)\n"
        "def counts(s):\n    return collections.Counter(s)\n"
        "def point(x, y):\n    return Point(x, y)\n"
        "def half(n):\n    return fractions.Fraction(n, 2)\n"
        "def match(s):\n    return re.search(r'\\d+', s)\n"
        "def dq(xs):\n    return collections.deque(xs)\n"
    )
    check(right, right.replace("range(0, n, 2)", "range(0, n, 3)"), tests)


def test_an_endless_generator_is_refused_with_its_rule():
    (verdict,) = verdicts(("import itertools\ndef f():\n    return itertools.count()", "assert next(f()) == 0\n"))
    assert not verdict.passed and "more than 100000 items (iterators are materialised)" in verdict.info["error"]


def test_the_programs_exception_classes_and_modules():
    tests = (
        "try:\n    f(-1)\nexcept NegativeError as exc:\n    assert str(exc) == 'no'\nelse:\n    raise AssertionError\n"
        "try:\n    f(-2)\nexcept ValueError:\n    pass\n"
        "assert issubclass(TooSmall, NegativeError)\n"
        "assert f(2) == sys.maxsize - 2\n"
    )
    right = (
        "import sys\nclass NegativeError(ValueError):\n    pass\nclass TooSmall(NegativeError):\n    pass\n"
        "def f(x):\n    if x == -1:\n        raise NegativeError('no')\n    if x < 0:\n        raise TooSmall('x')\n"
        "    return sys.maxsize - x\n"
    )
    check(right, right.replace("raise NegativeError('no')", "raise ValueError('no')"), tests)


def test_an_entry_point_named_like_a_builtin():
    right, wrong = verdicts(
        ("def sum(a, b):\n    return a - b", "assert sum(5, 3) == 2\n"),
        ("def sum(a, b):\n    return a + b", "assert sum(5, 3) == 2\n"),
        entry_point="sum",
    )
    assert right.passed and not wrong.passed


def test_objects_of_the_programs_classes_stay_there():
    program = "class Box:\n    def __eq__(self, other):\n        return True\ndef f():\n    return Box()\n"
    (verdict,) = verdicts((program, "assert f() == 1\n"))
    assert not verdict.passed and "Box is an object of the program's own class" in verdict.info["error"]


def test_multiprocessing_in_the_program():
    program = (
        "import multiprocessing\ndef square(x):\n    return x * x\n"
        "def f(xs):\n    with multiprocessing.Pool(2) as pool:\n        return pool.map(square, xs)\n"
    )
    (verdict,) = verdicts((program, "assert f([1, 2, 3]) == [1, 4, 9]\n"))
    assert verdict.passed, verdict.info


def test_library_values_round_trip_through_their_builders():
    import collections
    import fractions
    import re

    from selfimprove.sandbox.plain import decode, encode
    from selfimprove.verifiers.code_values import BUILDERS, convert

    point = collections.namedtuple("Point", "x y")
    values = [
        collections.Counter("abca"),
        collections.OrderedDict([("b", 1), ("a", 2)]),
        collections.defaultdict(list, {"k": [1]}),
        collections.deque([1, 2], maxlen=3),
        point(1, 2),
        fractions.Fraction(3, 4),
        range(1, 9, 2),
        bytearray(b"ab"),
        {"a": 1}.keys(),
        re.search(r"\d+", "ab12cd"),
    ]
    for value in values:
        back = decode(encode(value, lambda x: convert(x) if not callable(x) else ("builtin", (x.__name__,))),
                      calls=dict(BUILDERS, builtin=lambda name: {"list": list}[name]))  # fmt: skip
        assert type(back).__name__ == type(value).__name__
        if type(value).__name__ == "Match":
            assert back.span() == value.span() and back.group() == "12"
        elif type(value).__name__ == "dict_keys":
            assert list(back) == list(value)
        else:
            assert back == value
    assert list(decode("iterator([1, 2])", calls=BUILDERS)) == [1, 2]


def test_builders_that_hash_refuse_piles_of_one_hash():
    from selfimprove.sandbox.plain import NotPlainText, decode
    from selfimprove.verifiers.code_values import BUILDERS

    pile = ", ".join(str(i * (2**61 - 1)) for i in range(100))
    for text in [f"dict_keys([{pile}])", f"OrderedDict([{', '.join(f'({k}, 0)' for k in pile.split(', '))}])"]:
        with pytest.raises(NotPlainText, match="one hash"):
            decode(text, calls=BUILDERS)


def test_refresh_keeps_the_owners_inner_objects():
    from selfimprove.verifiers.code_values import refresh

    row, d = [1], {"k": [2]}
    old = [row, d, (3, [4])]
    assert refresh(old, [[1, 5], {"k": [2, 6], "j": 0}, (3, [4, 7])]) is old
    assert old == [[1, 5], {"k": [2, 6], "j": 0}, (3, [4, 7])] and old[0] is row and old[1] is d
