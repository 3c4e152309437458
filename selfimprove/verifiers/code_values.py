"""Values of the standard library that cross between the code verifier's two processes, beyond plain values.

Inlined into both harnesses (standard library only). A sender turns such an object into a call of plain values
(``convert``: ``Counter({'a': 2})``, ``namedtuple('Point', ('x', 'y'), (1, 2))``, ``iterator([1, 2])``), found by
its exact type; a receiver builds it again with its own standard library (``BUILDERS``). So what the tests hold
is always an object of a class of the standard library, built from plain values, and compares with the
standard library's code, whatever the program did to the object it had. An iterator (a generator, ``map``, a
program's own) is materialised by the sender, at most ``MAX_ITEMS`` items, and is a generator on the other side.
Builders that hash what they are given refuse piles of one hash, as the decoder does (``plain.spread``).

``refresh`` brings the tests' own argument in line with what the program made of it (in place, keeping every
inner object it can), so a function that sorts its argument in place has sorted the tests' list.
"""

import builtins
import sys

from selfimprove.sandbox.plain import spread

MAX_ITEMS = 100_000  # items of an iterator, materialised when it crosses
MUTABLE = (list, dict, set, bytearray)  # plus the mutable classes of collections: see mutable()


class NotValue(TypeError):
    """An object that cannot cross (``type_name``: its type), with the rule it breaks."""

    def __init__(self, type_name, why):
        super().__init__(why)
        self.type_name = type_name


def _module(name):
    """A standard module only if the sender has imported it: an object of its classes cannot exist otherwise."""
    return sys.modules.get(name)


def convert(x):
    """``(builder name, plain args)`` for a standard-library object, None for a plain container, else raises."""
    t = type(x)
    if t in (list, tuple, dict, set, frozenset):
        return None
    if t is range:
        return ("range", (x.start, x.stop, x.step))
    if t is bytearray:
        return ("bytearray", (bytes(x),))
    if t.__name__ in ("dict_keys", "dict_values", "dict_items") and t.__module__ == "builtins":
        return (t.__name__, (list(x),))
    collections, fractions, decimal, re = (_module(m) for m in ("collections", "fractions", "decimal", "re"))
    if collections is not None:
        if t is collections.Counter:
            return ("Counter", (dict(x),))
        if t is collections.OrderedDict:
            return ("OrderedDict", (list(x.items()),))
        if t is collections.defaultdict:
            return ("defaultdict", (x.default_factory, dict(x)))
        if t is collections.deque:
            return ("deque", (list(x), x.maxlen))
    if isinstance(x, tuple) and type(getattr(t, "_fields", None)) is tuple:  # a namedtuple, typing.NamedTuple
        return ("namedtuple", (t.__name__, tuple(map(str, t._fields)), tuple(x)))
    if fractions is not None and t is fractions.Fraction:
        return ("Fraction", (x.numerator, x.denominator))
    if decimal is not None and t is decimal.Decimal:
        return ("Decimal", (str(x),))
    if re is not None and t is re.Match:
        return ("Match", (x.re.pattern, x.re.flags, x.string, x.pos, x.endpos, x.start(), x.end()))
    if hasattr(t, "__next__") and hasattr(t, "__iter__"):  # an iterator: its items, computed here
        items = []
        for item in x:
            if len(items) == MAX_ITEMS:
                raise NotValue(t.__name__, f"an iterator of more than {MAX_ITEMS} items (iterators are materialised)")
            items.append(item)
        return ("iterator", (items,))
    return None if t in MUTABLE else _refuse(x)


def _refuse(x):
    t = type(x)
    if isinstance(x, BaseException):
        why = "an exception object cannot cross; raise it"
    elif t.__module__ not in ("builtins", "collections", "fractions", "decimal", "re"):
        why = f"{t.__name__} is an object of the program's own class, whose methods would take part in the tests"
    else:
        why = f"{t.__name__} cannot cross between the program and the tests"
    raise NotValue(t.__name__, why)


def mutable(x):
    """Objects whose changes by the receiver are sent back (``refresh``)."""
    collections = _module("collections")
    deque = (collections.deque,) if collections is not None else ()
    return isinstance(x, MUTABLE + deque) and not isinstance(x, tuple)


def _namedtuple(name, fields, values, _made={}):  # noqa: B006 - a cache of classes, one per (name, fields)
    key = (name, fields)
    if key not in _made:
        from collections import namedtuple

        _made[key] = namedtuple(name, fields, rename=True)
    return _made[key](*values)


def _match(pattern, flags, string, pos, endpos, start, end):
    """The same match again, run here: the pattern at its start, anchored, else matched to its end."""
    import re

    compiled = re.compile(pattern, flags)
    for found in (compiled.match(string, start, endpos), compiled.fullmatch(string, start, end)):
        if found is not None and found.span() == (start, end):
            return found
    raise ValueError("its pattern does not give this match here")


def _iterate(items):
    yield from items


def _counter(counts):
    from collections import Counter

    return Counter(counts)


def _dict(pairs):
    return dict(zip(spread([key for key, _ in pairs]), [value for _, value in pairs], strict=True))


def _ordered(pairs):
    from collections import OrderedDict

    return OrderedDict(_dict(pairs))


def _defaultdict(factory, items):
    from collections import defaultdict

    return defaultdict(factory, items)


def _deque(items, maxlen):
    from collections import deque

    return deque(items, maxlen)


def _fraction(numerator, denominator):
    from fractions import Fraction

    return Fraction(numerator, denominator)


def _decimal(text):
    from decimal import Decimal

    return Decimal(text)


BUILDERS = {
    "range": range,
    "bytearray": bytearray,
    "dict_keys": lambda items: dict.fromkeys(spread(items)).keys(),
    "dict_values": lambda items: dict(enumerate(items)).values(),
    "dict_items": lambda pairs: _dict(pairs).items(),
    "Counter": _counter,
    "OrderedDict": _ordered,
    "defaultdict": _defaultdict,
    "deque": _deque,
    "namedtuple": _namedtuple,
    "Fraction": _fraction,
    "Decimal": _decimal,
    "Match": _match,
    "iterator": _iterate,
}


def refresh(old, new):
    """``old`` (a receiver's own object) changed in place to equal ``new`` (what the other side made of it),
    keeping the inner objects of ``old`` where the shapes agree; returns what the owner should hold."""
    t = type(old)
    if type(new) is not t and not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    if t is list or t.__name__ == "deque":
        kept = [refresh(a, b) for a, b in zip(old, new, strict=False)] + list(new)[len(old) :]
        old.clear()
        old.extend(kept)
    elif isinstance(old, dict):
        kept = [(key, refresh(old[key], value) if key in old else value) for key, value in new.items()]
        old.clear()
        old.update(kept)
    elif t is set:
        if old != new:
            old.clear()
            old.update(new)
    elif t is bytearray:
        old[:] = new
    elif t is tuple and len(old) == len(new):
        for a, b in zip(old, new, strict=True):
            refresh(a, b)
    else:
        return new
    return old


def builtin_name(x):
    """The name of ``x`` in ``builtins`` (``len``, ``int``), or ``'str.upper'`` for a builtin type's method; None
    for anything else. Such a callable crosses by name and runs on the receiver's side."""
    name = getattr(x, "__name__", None)
    if type(name) is str and getattr(builtins, name, None) is x:
        return name
    owner = getattr(x, "__objclass__", None)
    if type(name) is str and not name.startswith("_") and isinstance(owner, type):
        if getattr(builtins, owner.__name__, None) is owner and getattr(owner, name, None) is x:
            return f"{owner.__name__}.{name}"
    return None


def from_builtins(name):
    """The receiver's own builtin called ``name`` (``'len'``, ``'str.upper'``)."""
    owner, _, method = name.partition(".")
    found = getattr(builtins, owner) if not owner.startswith("_") else None
    if method and not method.startswith("_") and isinstance(found, type):
        found = getattr(found, method)
    if not callable(found) or (method and not owner):
        raise ValueError(f"no builtin {name!r}")
    return found
