"""Inputs are arguments, not code: the one reader of model-written arguments and values for the whole project.

``parse_arguments`` reads an argument list as it stands between the parentheses of a call (``1, [2, 3], k='x'``)
and ``parse_value`` one value (an expected output, a deduction answer), both as Python prints plain values:
literals, a sign on a number, and a short named list of values that have no literal (``nan``, ``inf``, ``infj``,
``float('inf')``, ``complex(1.0, nan)``, ``set()``, ``frozenset()``, ``frozenset({1})``). The text is parsed
into a syntax tree and never evaluated (``selfimprove.sandbox.plain``), its length checked before parsing, so
reading it takes time linear in a bounded text; whatever it is, a bad one raises ``ArgumentError`` with the
rule it broke. The caller builds the call from the values (``f(*args, **kwargs)``), so an "input" such as
``0) if 0 else (7`` can never become part of the program.

``values_equal`` is how two such values compare: as Python's ``==``, except that a NaN equals a NaN wherever it
stands but in a set or among a dict's keys (Python prints both the same; its ``[nan] == [nan]`` is false
for two NaN objects, as two decoded NaNs are).
"""

from __future__ import annotations

import math
from typing import Any

from selfimprove.sandbox.plain import NotPlainText, decode, decode_call

MAX_CHARS = 1 << 16  # an argument list or a value, in characters


class ArgumentError(ValueError):
    """Text that is not an argument list (or a value) of plain literals; the message says which rule it broke."""


def parse_arguments(text: str, max_chars: int = MAX_CHARS) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` of an argument list of literals: ``"1, [2], k='x'"`` -> ``((1, [2]), {"k": "x"})``."""
    return _parse(decode_call, text, max_chars, "an argument list")


def parse_value(text: str, max_chars: int = MAX_CHARS) -> Any:
    """The value of a literal as Python prints it: ``"[inf, nan]"``, ``"(nan+1j)"``, ``"{1: 'a'}"``."""
    return _parse(decode, text, max_chars, "a value")


def _parse(read: Any, text: str, max_chars: int, what: str) -> Any:
    if not isinstance(text, str):
        raise ArgumentError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > max_chars:
        raise ArgumentError(f"{what} longer than {max_chars} characters")
    try:
        return read(text.strip(), max_chars)
    except NotPlainText as exc:
        raise ArgumentError(f"not {what} of literals: {exc}") from None


def values_equal(a: Any, b: Any) -> bool:
    """Python's ``==`` on plain values, with a NaN equal to a NaN at any place (in a float, a complex, a list,
    a dict's values). Recursion follows the values, which decoding bounds to ``MAX_DEPTH`` levels."""
    if isinstance(a, float | complex) and isinstance(b, float | complex):
        return _number_equal(complex(a), complex(b))
    if type(a) in (list, tuple) and type(b) is type(a):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(values_equal(a[key], b[key]) for key in a)
    return bool(a == b)


def _number_equal(a: complex, b: complex) -> bool:
    def same(x: float, y: float) -> bool:
        return x == y or (math.isnan(x) and math.isnan(y))

    return same(a.real, b.real) and same(a.imag, b.imag)
