"""Plain values: the only data that crosses between an untrusted program and the code that judges it.

A plain value is None, a bool, int, float, complex, str or bytes, or a tuple, list, dict, set or frozenset of
plain values, nested at most ``MAX_DEPTH`` deep. ``encode`` checks every object by its exact type
(``type(x) is int``, never ``isinstance``), so no subclass and no object with methods of its own is accepted,
and writes canonical Python-literal text: sets sorted, a float's nan and infinities as ``float('nan')``, a
complex as ``complex(re, im)``, an int too long for decimal as hex. ``decode`` reads text that may come from a
hostile process: it parses it into a syntax tree (never evaluates it) and accepts only literal nodes, a minus
on a number, and the forms above; anything else, and text that is too long, too deep or breaks the parser,
raises ``NotPlainText``. Every value it returns is built from the parser's own constants by built-in
constructors, so comparing it runs built-in code only.

This module is self-contained (only the built-in ``_ast``, not ``ast``, whose imports cost ~8 ms): its source is
also sent into the sandbox, where the harnesses run on the standard library and must start fast.
"""

import _ast

MAX_DEPTH = 100
MAX_CHARS = 1 << 20
_BIG_INT_BITS = 12_000  # above this an int's decimal text nears Python's 4300-digit conversion limit: hex
_NUMBERS = (int, float, complex)
_CALLS = ("float", "complex", "set", "frozenset")
_SPECIAL_FLOATS = ("nan", "inf", "-inf")


class NotPlain(TypeError):
    """A value that is not plain; ``type_name`` names the first object that is not (``'generator'``)."""

    def __init__(self, type_name, why=""):
        super().__init__(why or f"{type_name} is not a plain value")
        self.type_name = type_name


class NotPlainText(ValueError):
    """Text that is not the encoding of a plain value."""


def encode(value):
    """The canonical text of a plain value; raises ``NotPlain`` for anything else."""
    out = []
    _encode(value, out, 0)
    return "".join(out)


def _encode(x, out, depth):
    t = type(x)
    if x is None or t is bool or t is str or t is bytes:
        out.append(repr(x))
    elif t is int:
        out.append(hex(x) if x.bit_length() > _BIG_INT_BITS else repr(x))
    elif t is float:
        out.append(_float(x))
    elif t is complex:
        out.append(f"complex({_float(x.real)}, {_float(x.imag)})")
    elif depth >= MAX_DEPTH:
        raise NotPlain(t.__name__, f"nested deeper than {MAX_DEPTH}")
    elif t is tuple or t is list:
        out.append("(" if t is tuple else "[")
        for i, item in enumerate(x):
            if i:
                out.append(", ")
            _encode(item, out, depth + 1)
        out.append(("," if len(x) == 1 else "") + ")" if t is tuple else "]")
    elif t is dict:
        out.append("{")
        for i, (key, item) in enumerate(x.items()):
            if i:
                out.append(", ")
            _encode(key, out, depth + 1)
            out.append(": ")
            _encode(item, out, depth + 1)
        out.append("}")
    elif t is set or t is frozenset:
        items = sorted(_text(item, depth + 1) for item in x)
        body = "{" + ", ".join(items) + "}" if items else ""
        out.append(f"frozenset({body})" if t is frozenset else body or "set()")
    else:
        raise NotPlain(t.__name__)


def _text(value, depth):
    out = []
    _encode(value, out, depth)
    return "".join(out)


def _float(x):
    if x != x:
        return "float('nan')"
    if x in (float("inf"), float("-inf")):
        return f"float('{x}')"
    return repr(x)


def decode(text, max_chars=MAX_CHARS):
    """The plain value that ``text`` encodes (also Python's own reprs of plain values: ``(1+2j)``, ``-0.5``)."""
    if type(text) is not str:
        raise NotPlainText(f"expected text, got {type(text).__name__}")
    if len(text) > max_chars:
        raise NotPlainText(f"longer than {max_chars} characters")
    try:
        tree = compile(text, "<plain>", "eval", _ast.PyCF_ONLY_AST, dont_inherit=True)
        return _value(tree.body, 0)
    except NotPlainText:
        raise
    except (SyntaxError, ValueError, TypeError, OverflowError, MemoryError, RecursionError) as exc:
        # SyntaxError also covers ints beyond the digit limit; TypeError an unhashable set item or dict key
        raise NotPlainText(f"{type(exc).__name__}: {exc}"[:200]) from None


def _value(node, depth):
    t = type(node)
    if t is _ast.Constant:
        if node.value is ... or node.value is not None and type(node.value) not in (bool, str, bytes, *_NUMBERS):
            raise NotPlainText(f"{type(node.value).__name__} is not a plain value")
        return node.value
    if t is _ast.UnaryOp or t is _ast.BinOp:
        return _number(node)
    if t is _ast.Call:
        return _call(node, depth)
    if depth >= MAX_DEPTH:
        raise NotPlainText(f"nested deeper than {MAX_DEPTH}")
    if t is _ast.Tuple or t is _ast.List or t is _ast.Set:
        items = [_value(item, depth + 1) for item in node.elts]
        return tuple(items) if t is _ast.Tuple else items if t is _ast.List else set(items)
    if t is _ast.Dict:
        if any(key is None for key in node.keys):
            raise NotPlainText("** in a dict is not a plain value")
        return {_value(k, depth + 1): _value(v, depth + 1) for k, v in zip(node.keys, node.values, strict=True)}
    raise NotPlainText(f"{t.__name__} is not allowed in a plain value")


def _number(node):
    """``-<number>`` or Python's complex repr ``(<real> + <imaginary>j)``, ``(<real> - <imaginary>j)``."""
    if type(node) is _ast.UnaryOp:
        operand = node.operand
        if type(node.op) is _ast.USub and type(operand) is _ast.Constant and type(operand.value) in _NUMBERS:
            return -operand.value
        raise NotPlainText("only a minus sign on a number is allowed")
    right = node.right
    if (
        type(node.op) in (_ast.Add, _ast.Sub)
        and type(right) is _ast.Constant
        and type(right.value) is complex
        and not right.value.real
        and type(_real(node.left)) in (int, float)
    ):
        return _real(node.left) + right.value if type(node.op) is _ast.Add else _real(node.left) - right.value
    raise NotPlainText("only a complex number's repr may add or subtract")


def _real(node):
    """An int or float literal, a negated one, or ``float('nan' | 'inf' | '-inf')``; None for anything else."""
    if type(node) is _ast.Constant and type(node.value) in (int, float):
        return node.value
    if type(node) is _ast.UnaryOp and type(node.op) is _ast.USub and type(node.operand) is _ast.Constant:
        if type(node.operand.value) in (int, float):
            return -node.operand.value
    if type(node) is _ast.Call and type(node.func) is _ast.Name and node.func.id == "float" and not node.keywords:
        if len(node.args) == 1 and type(node.args[0]) is _ast.Constant and node.args[0].value in _SPECIAL_FLOATS:
            return float(node.args[0].value)
    return None


def _call(node, depth):
    """``float('nan')``, ``complex(re, im)``, ``set()``, ``frozenset()`` and ``frozenset({...})``; no others."""
    name = node.func.id if type(node.func) is _ast.Name else None
    if name not in _CALLS or node.keywords:
        raise NotPlainText("calls are not allowed in a plain value")
    args = node.args
    if name == "float" and _real(node) is not None:
        return _real(node)
    if name == "complex" and len(args) == 2 and None not in (_real(args[0]), _real(args[1])):
        return complex(_real(args[0]), _real(args[1]))
    if name in ("set", "frozenset") and depth >= MAX_DEPTH:
        raise NotPlainText(f"nested deeper than {MAX_DEPTH}")
    if name == "set" and not args:
        return set()
    if name == "frozenset" and not args:
        return frozenset()
    if name == "frozenset" and len(args) == 1 and type(args[0]) is _ast.Set:
        return frozenset(_value(args[0], depth))
    raise NotPlainText(f"{name}(...) with these arguments is not a plain value")


def why_not(value, exc):
    """What is not plain in ``value``, for a message: ``'AlwaysEqual'``, ``'list holding generator'``."""
    outer = type(value).__name__
    if exc.type_name == outer and str(exc) == f"{outer} is not a plain value":
        return outer
    if str(exc) == f"{exc.type_name} is not a plain value":
        return f"{outer} holding {exc.type_name}"
    return f"{outer} ({exc})"
