"""Plain values: exact-type encoding, the strict decoder, and frames over pipes."""

from __future__ import annotations

import math
import os
import threading

import pytest

from selfimprove.sandbox.plain import MAX_DEPTH, NotPlain, NotPlainText, decode, encode, why_not
from selfimprove.sandbox.wire import Channel

VALUES = [
    None,
    True,
    False,
    0,
    -7,
    2**64,
    -(10**5000),  # beyond the 4300-digit decimal limit: sent as hex
    1.5,
    -0.0,
    1e300,
    float("inf"),
    float("-inf"),
    complex(1, -2),
    complex(-0.0, float("inf")),
    "",
    "quote ' \" and newline \n, nul \x00, surrogate \ud800, é, \u2028",
    b"\x00\xff\n",
    (),
    (1,),
    (1, "a", (2.5, None)),
    [],
    [1, [2, [3, []]]],
    {},
    {"a": 1, (1, 2): [3], None: {"b": b"c"}},
    set(),
    {3, "x", (1, 2), frozenset({1})},
    frozenset(),
    frozenset({1, 2, "3"}),
    {frozenset({1}): set()},
]


def same_shape(a, b) -> bool:
    """Equal, of exactly the same types all the way down (so 1 and True, or a list and a tuple, differ)."""
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same_shape(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(same_shape(a[k], b[k]) for k in a)
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_value_and_exact_types(value):
    text = encode(value)
    back = decode(text)
    assert same_shape(back, value)
    assert encode(back) == text  # canonical: encoding the decoded value gives the same text


def test_nan_round_trips_and_is_canonical():
    assert encode(float("nan")) == "float('nan')"
    assert math.isnan(decode(encode(float("nan"))))
    assert math.isnan(decode(encode(complex(float("nan"), 1))).real)


def test_sets_are_encoded_in_one_order_whatever_the_hash_seed():
    items = [f"s{i}" for i in range(50)]
    assert encode(set(items)) == encode(set(reversed(items))) == "{" + ", ".join(sorted(map(repr, items))) + "}"


def test_python_reprs_of_plain_values_decode():
    assert decode("[1,2]") == [1, 2] and decode("(1+2j)") == complex(1, 2) and decode("(-1-2j)") == complex(-1, -2)
    assert decode("-0.5") == -0.5 and decode("2j") == 2j and decode("-1j") == -1j
    assert decode("'a' 'b'") == "ab"  # adjacent literals are one constant to the parser


class MyInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class MyStr(str):
    pass


class MyList(list):
    pass


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __repr__(self):
        return "4"


@pytest.mark.parametrize(
    "value, culprit",
    [
        (MyInt(3), "MyInt"),
        (MyStr("a"), "MyStr"),
        (MyList([1]), "MyList"),
        (AlwaysEqual(), "AlwaysEqual"),
        ([1, (2, AlwaysEqual())], "AlwaysEqual"),
        ({"k": MyStr("v")}, "MyStr"),
        ({MyInt(1): 1}, "MyInt"),
        ({MyStr("a")}, "MyStr"),
        ((i for i in range(3)), "generator"),
        (lambda: 1, "function"),
        (bytearray(b"x"), "bytearray"),
        (range(3), "range"),
        (..., "ellipsis"),
        (object, "type"),
    ],
)
def test_anything_not_exactly_a_plain_type_is_refused(value, culprit):
    with pytest.raises(NotPlain) as caught:
        encode(value)
    assert caught.value.type_name == culprit


def test_too_deep_or_self_referential_is_refused():
    deep: list = []
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(NotPlain, match="deeper"):
        encode(deep)
    loop: list = []
    loop.append(loop)
    with pytest.raises(NotPlain, match="deeper"):
        encode(loop)
    ok: list = []
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    assert decode(encode(ok)) == ok


def test_why_not_names_the_culprit():
    def why(value):
        try:
            encode(value)
        except NotPlain as exc:
            return why_not(value, exc)

    assert why(AlwaysEqual()) == "AlwaysEqual"
    assert why([1, AlwaysEqual()]) == "list holding AlwaysEqual"


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",  # a call
        "open('/etc/passwd')",
        "x",  # a name
        "().__class__",  # attribute access
        "lambda: 1",
        "f'{1}'",  # an f-string
        "[i for i in range(3)]",
        "1 + 2",
        "[1] * 3",
        "--1",
        "-True",
        "not 1",
        "...",
        "{**{}}",
        "[*()]",
        "1 if 1 else 2",
        "(x := 1)",
        "set([1])",
        "frozenset([1])",
        "float('1.5')",
        "complex(1)",
        "float(x='nan')",
        "{[1]: 2}",  # unhashable key
        "{[1]}",
        "1; 2",
        "",
        "a\x00",
        "1" * 5000,  # beyond the decimal digit limit
        "[" * 150 + "]" * 150,  # beyond our depth
        "[" * 1000 + "]" * 1000,  # beyond the parser's
        "-" * 100_000 + "1",  # the parser runs out of memory
    ],
)
def test_decoder_refuses_anything_but_literals(text):
    with pytest.raises(NotPlainText):
        decode(text)


def test_decoder_caps_size_and_checks_its_input_type():
    big = "[" + "1, " * 200 + "1]"
    assert decode(big, max_chars=len(big)) == [1] * 201
    with pytest.raises(NotPlainText, match="longer"):
        decode(big, max_chars=len(big) - 1)
    with pytest.raises(NotPlainText):
        decode(b"1")  # type: ignore[arg-type]


def test_channel_round_trip_and_partial_reads():
    r, w = os.pipe()
    sender, receiver = Channel(-1, w), Channel(r, -1)
    big = "x" * 300_000  # larger than a pipe's buffer: written in parts while the other side reads
    thread = threading.Thread(target=lambda: [sender.send(v) for v in (("ok", 1), big, {"a": [1]})])
    thread.start()
    assert receiver.receive() == ("ok", 1)
    assert receiver.receive() == big
    assert receiver.receive() == {"a": [1]}
    thread.join()
    os.close(w)
    with pytest.raises(EOFError):
        receiver.receive()
    os.close(r)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\xff\xfe\n", "UTF-8"),
        (b"print(1)\n", "calls"),
        (b"x" * 100 + b"\n", "name"),
        (b"1" * 5000, "longer"),  # no newline within the cap
    ],
)
def test_channel_refuses_garbage(data, match):
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    with pytest.raises(NotPlainText, match=match):
        Channel(r, -1, max_chars=1000).receive()
    os.close(r)
