"""Inputs are arguments, not code: the argument-list and value reader, and how values compare."""

from __future__ import annotations

import math
import time

import pytest

from selfimprove.verifiers.arguments import ArgumentError, parse_arguments, parse_value, values_equal

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "text, args, kwargs",
    [
        ("", (), {}),
        ("1, [2, 3], k='x'", (1, [2, 3]), {"k": "x"}),
        ("  (1,), {'a': None}, b=b'x', c=-2.5  ", ((1,), {"a": None}), {"b": b"x", "c": -2.5}),
        ("set(), frozenset(), frozenset({1, 2})", (set(), frozenset(), frozenset({1, 2})), {}),
        ("-inf, float('inf'), +1, True", (-INF, INF, 1, True), {}),
        ("[\n  1,\n  2,  # a comment\n]", ([1, 2],), {}),
        ("1  # trailing comment", (1,), {}),
    ],
)
def test_argument_lists(text, args, kwargs):
    assert parse_arguments(text) == (args, kwargs)


@pytest.mark.parametrize(
    "text, rule",
    [
        ("0) if 0 else (7", "closes the parentheses"),  # the injected "input" of the issue
        ("1)(2", "closes the parentheses"),
        ("1), (2", "closes the parentheses"),
        ("1)\n(2", "SyntaxError"),
        ("*[1, 2]", "Starred"),
        ("**{'a': 1}", r"\*\*"),
        ("x", "the name 'x'"),
        ("__import__('os').system('true')", "call"),
        ("f(1)", "call"),
        ("lambda: 1", "Lambda"),
        ("range(3)", "call"),
        ("[i for i in range(3)]", "ListComp"),
        ("1 + 2", "complex number"),
        ("--1", "sign"),
        ("a=1, a=2", "repeated"),
        ("(1", "SyntaxError"),
        ("1" * 5000, "4300 digits"),
        ("[" * 1000 + "]" * 1000, "SyntaxError"),  # the parser's nesting limit
        ("[" * 90 + "[" * 20 + "]" * 110, "deeper"),  # ours
        ("-" * 60_000 + "1", "MemoryError|RecursionError"),  # the parser gives up, however it does
        ("{" + ", ".join(str(i * (2**61 - 1)) for i in range(100)) + "}", "one hash"),
        ("{[1]: 2}", "unhashable"),
    ],
)
def test_anything_but_literals_is_refused_with_its_rule(text, rule):
    with pytest.raises(ArgumentError, match=rule):
        parse_arguments(text)


def test_size_is_checked_before_parsing():
    with pytest.raises(ArgumentError, match="longer than 100 characters"):
        parse_arguments("1," * 100, max_chars=100)
    with pytest.raises(ArgumentError, match="must be text"):
        parse_value(b"1")  # type: ignore[arg-type]


def test_equal_hash_piles_are_refused_in_linear_time():
    pile = "{" + ",".join(str(i * (2**61 - 1)) for i in range(25_000)) + "}"  # took the host about 9 s
    start = time.perf_counter()
    with pytest.raises(ArgumentError, match="one hash"):
        parse_value(pile, max_chars=len(pile))
    with pytest.raises(ArgumentError, match="one hash"):
        parse_value(pile.replace(",", ": 0,").replace("}", ": 0}"), max_chars=2 * len(pile))
    assert time.perf_counter() - start < 2
    assert parse_value("{-1, -2, 1, 1.0, True}") == {-1, -2, 1}  # a few equal hashes are ordinary


@pytest.mark.parametrize(
    "text, value",
    [
        ("nan", NAN),
        ("[inf, -inf]", [INF, -INF]),
        ("(nan+1j)", complex(NAN, 1)),
        ("(1-infj)", complex(1, -INF)),
        ("nanj", complex(0, NAN)),
        ("(-0-2j)", complex(0, -2)),
        ("complex(1.0, float('nan'))", complex(1, NAN)),
        ("float('-Infinity')", -INF),
        ("{1: 'a', (2, 3): [None]}", {1: "a", (2, 3): [None]}),
        ("frozenset({1})", frozenset({1})),
        (repr([NAN, complex(INF, NAN), {"k": -INF}]), [NAN, complex(INF, NAN), {"k": -INF}]),
    ],
)
def test_values_as_python_prints_them(text, value):
    assert values_equal(parse_value(text), value)


def test_values_equal_is_python_equality_with_nan_equal_to_nan():
    assert values_equal([NAN, (1, NAN)], [float("nan"), (1.0, float("nan"))])
    assert values_equal({"a": complex(NAN, 0)}, {"a": complex(NAN, 0.0)})
    assert values_equal(1, 1.0) and values_equal(1, True)  # as Python's ==
    assert not values_equal([1], (1,))
    assert not values_equal(NAN, 0.0) and not values_equal([NAN], [NAN, NAN])
    assert not values_equal({"a": 1}, {"b": 1})
    assert math.isnan(parse_value("nan"))
