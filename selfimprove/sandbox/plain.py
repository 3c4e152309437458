"""Plain values: the only data that crosses between an untrusted program and the code that judges it.

A plain value is None, a bool, int, float, complex, str or bytes, or a tuple, list, dict, set or frozenset of
plain values, nested at most ``MAX_DEPTH`` deep. ``encode`` checks every object by its exact type
(``type(x) is int``, never ``isinstance``), so no subclass and no object with methods of its own is accepted,
and writes canonical Python-literal text: sets sorted, a float's nan and infinities as ``float('nan')``, a
complex as ``complex(re, im)``, an int too long for decimal as hex. ``decode`` reads text that may come from a
hostile process or a model: it parses it into a syntax tree (never evaluates it) and accepts only literal nodes,
a sign on a number, the forms above and Python's own reprs (``nan``, ``inf``, ``(nan+infj)``); anything else,
and text that is too long (checked before parsing), too deep, breaks the parser or piles set items of one hash
(quadratic to build), raises ``NotPlainText``. ``decode_call`` reads an argument list the same way. Every value
they return is built from the parser's own constants by built-in constructors, so comparing it runs built-in
code only, in time linear in the text (up to a log factor).

This module is self-contained (only the built-in ``_ast``, not ``ast``, whose imports cost ~8 ms): its source is
also sent into the sandbox, where the harnesses run on the standard library and must start fast.
"""

import _ast

MAX_DEPTH = 100
MAX_CHARS = 1 << 20
_BIG_INT_BITS = 12_000  # above this an int's decimal text nears Python's 4300-digit conversion limit: hex
_NUMBERS = (int, float, complex)
MAX_SAME_HASH = 64  # set items or dict keys of one hash in a decoded value (see _spread)
CALLS = ("float('nan' | 'inf' | '-inf')", "complex(<real>, <real>)", "set()", "frozenset()", "frozenset({...})")
_SPECIAL = {"nan": float("nan"), "inf": float("inf")}  # floats without a literal, as Python prints them


class NotPlain(TypeError):
    """A value that is not plain; ``type_name`` names the first object that is not (``'generator'``)."""

    def __init__(self, type_name, why=""):
        super().__init__(why or f"{type_name} is not a plain value")
        self.type_name = type_name


class NotPlainText(ValueError):
    """Text that is not the encoding of a plain value."""


def encode(value, hook=None):
    """The canonical text of a plain value; raises ``NotPlain`` for anything else.

    ``hook`` (the code verifier's richer values) is asked first about every object that is not a number, a string
    or None: it returns None (encode as usual) or ``(name, args)``, written as the call ``name(*args)`` with each
    argument encoded the same way, or raises ``NotPlain``."""
    out = []
    _encode(value, out, 0, hook)
    return "".join(out)


def _encode(x, out, depth, hook=None):
    t = type(x)
    call = None if hook is None or x is None or t in (bool, str, bytes, int, float, complex) else hook(x)
    if call is not None:
        if depth >= MAX_DEPTH:
            raise NotPlain(t.__name__, f"nested deeper than {MAX_DEPTH}")
        out.append(call[0] + "(")
        for i, item in enumerate(call[1]):
            if i:
                out.append(", ")
            _encode(item, out, depth + 1, hook)
        out.append(")")
    elif x is None or t is bool or t is str or t is bytes:
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
            _encode(item, out, depth + 1, hook)
        out.append(("," if len(x) == 1 else "") + ")" if t is tuple else "]")
    elif t is dict:
        out.append("{")
        for i, (key, item) in enumerate(x.items()):
            if i:
                out.append(", ")
            _encode(key, out, depth + 1, hook)
            out.append(": ")
            _encode(item, out, depth + 1, hook)
        out.append("}")
    elif t is set or t is frozenset:
        items = sorted(_text(item, depth + 1, hook) for item in x)
        body = "{" + ", ".join(items) + "}" if items else ""
        out.append(f"frozenset({body})" if t is frozenset else body or "set()")
    else:
        raise NotPlain(t.__name__)


def _text(value, depth, hook):
    out = []
    _encode(value, out, depth, hook)
    return "".join(out)


def _float(x):
    if x != x:
        return "float('nan')"
    if x in (float("inf"), float("-inf")):
        return f"float('{x}')"
    return repr(x)


def decode(text, max_chars=MAX_CHARS, calls=None):
    """The plain value that ``text`` encodes, also written as Python prints it (``(1+2j)``, ``nan``, ``[inf]``).

    ``calls`` (the code verifier's richer values) maps more call names to builders: ``name(*args)`` in the text,
    its arguments decoded the same way, becomes ``calls[name](*args)``; whatever a builder raises is refused."""
    return _decode(text, max_chars, lambda tree: _value(tree, 0, calls or {}))


def decode_call(text, max_chars=MAX_CHARS):
    """``(args, kwargs)`` of an argument list of plain values, as it stands between the parentheses of a call
    (``1, [2], k='x'``). The text is parsed inside ``_(`` ... ``)`` and must be exactly that one call."""
    return _decode(text, max_chars, _arguments, prefix="_(", suffix="\n)")


def _decode(text, max_chars, build, prefix="", suffix=""):
    if type(text) is not str:
        raise NotPlainText(f"expected text, got {type(text).__name__}")
    if len(text) > max_chars:  # before parsing: the parser's time and memory grow with the text
        raise NotPlainText(f"longer than {max_chars} characters")
    try:
        tree = compile(prefix + text + suffix, "<plain>", "eval", _ast.PyCF_ONLY_AST, dont_inherit=True)
        return build(tree.body)
    except NotPlainText:
        raise
    except (SyntaxError, ValueError, TypeError, OverflowError, MemoryError, RecursionError) as exc:
        # SyntaxError also covers ints beyond the digit limit; TypeError an unhashable set item or dict key
        raise NotPlainText(f"{type(exc).__name__}: {exc}"[:200]) from None


def _arguments(node):
    if not (type(node) is _ast.Call and type(node.func) is _ast.Name and node.func.id == "_"):
        raise NotPlainText("it closes the parentheses of the call and goes on")
    if node.func.col_offset != 0 or node.func.lineno != 1 or node.end_col_offset != 1:
        raise NotPlainText("it closes the parentheses of the call and goes on")
    if any(keyword.arg is None for keyword in node.keywords):
        raise NotPlainText("** in an argument list is not a plain value")
    args = tuple(_value(arg, 0, {}) for arg in node.args)
    kwargs = {keyword.arg: _value(keyword.value, 0, {}) for keyword in node.keywords}
    if len(kwargs) < len(node.keywords):
        raise NotPlainText("a keyword argument is repeated")
    return args, kwargs


def _value(node, depth, calls):
    t = type(node)
    if t is _ast.Constant:
        if node.value is ... or node.value is not None and type(node.value) not in (bool, str, bytes, *_NUMBERS):
            raise NotPlainText(f"{type(node.value).__name__} is not a plain value")
        return node.value
    if t is _ast.Call and type(node.func) is _ast.Name and node.func.id in calls and not node.keywords:
        return _built(node, depth, calls)
    if t is _ast.Call and type(node.func) is _ast.Name and node.func.id in ("set", "frozenset"):
        return _set_call(node, depth, calls)
    if t in (_ast.Name, _ast.UnaryOp, _ast.BinOp, _ast.Call):
        number = _number(node)
        if number is None:
            raise NotPlainText(_not_a_number(node))
        return number
    if depth >= MAX_DEPTH:
        raise NotPlainText(f"nested deeper than {MAX_DEPTH}")
    if t is _ast.Tuple or t is _ast.List:
        items = [_value(item, depth + 1, calls) for item in node.elts]
        return tuple(items) if t is _ast.Tuple else items
    if t is _ast.Set:
        return set(spread([_value(item, depth + 1, calls) for item in node.elts]))
    if t is _ast.Dict:
        if any(key is None for key in node.keys):
            raise NotPlainText("** in a dict is not a plain value")
        keys = spread([_value(k, depth + 1, calls) for k in node.keys])
        return dict(zip(keys, [_value(v, depth + 1, calls) for v in node.values], strict=True))
    raise NotPlainText(f"{t.__name__} is not allowed in a plain value")


def _not_a_number(node):
    t = type(node)
    if t is _ast.Name:
        return f"the name {node.id[:50]!r} is not a plain value (the names allowed: nan, inf, nanj, infj)"
    if t is _ast.Call:
        return f"this call is not a plain value (the calls allowed: {', '.join(CALLS)})"
    if t is _ast.UnaryOp:
        return "only a sign on a number is allowed in a plain value"
    return "only a complex number's repr may add or subtract in a plain value"


def spread(keys):
    """``keys`` (a list), unless more than ``MAX_SAME_HASH`` of them share a hash. A hash table of n keys with one hash
    costs time quadratic in n (25,000 such ints: seconds), and a plain value's hash can be chosen (an int's is the
    int modulo 2**61 - 1). Sorting the hashes finds such a pile in n log n, before any table is built."""
    if len(keys) > MAX_SAME_HASH:
        hashes = sorted(map(hash, keys))
        for i in range(len(hashes) - MAX_SAME_HASH):
            if hashes[i] == hashes[i + MAX_SAME_HASH]:
                raise NotPlainText(f"more than {MAX_SAME_HASH} set items or dict keys with one hash")
    return keys


def _number(node):
    """A number as Python prints it or as the encoder writes it, or None: a real or imaginary number with an
    optional sign, a complex ``(<real> + <imaginary>)`` or ``complex(<real>, <real>)``."""
    value = _signed(node, _real)
    if value is None:
        value = _signed(node, _imaginary)
    if value is None and type(node) is _ast.BinOp and type(node.op) in (_ast.Add, _ast.Sub):
        left, right = _signed(node.left, _real), _imaginary(node.right)
        if left is not None and right is not None:
            value = left + right if type(node.op) is _ast.Add else left - right
    if value is None and _is_call(node, "complex", 2):
        real, imaginary = _signed(node.args[0], _real), _signed(node.args[1], _real)
        if real is not None and imaginary is not None:
            value = complex(real, imaginary)
    return value


def _signed(node, unsigned):
    if type(node) is _ast.UnaryOp and type(node.op) in (_ast.USub, _ast.UAdd):
        value = unsigned(node.operand)
        return value if value is None or type(node.op) is _ast.UAdd else -value
    return unsigned(node)


def _real(node):
    """An int or float literal, ``nan``, ``inf``, ``float('nan' | 'inf' | '-inf' | ...)``; else None."""
    if type(node) is _ast.Constant:
        return node.value if type(node.value) in (int, float) else None
    if type(node) is _ast.Name:
        return _SPECIAL.get(node.id)
    if _is_call(node, "float", 1) and type(node.args[0]) is _ast.Constant and type(node.args[0].value) is str:
        text = node.args[0].value.strip().lower()
        return float(text) if text.lstrip("+-") in ("nan", "inf", "infinity") else None
    return None


def _imaginary(node):
    """``2j``, ``infj``, ``nanj`` (as Python prints ``complex(0, inf)``); else None."""
    if type(node) is _ast.Constant:
        return node.value if type(node.value) is complex and not node.value.real else None
    if type(node) is _ast.Name and node.id.endswith("j") and node.id[:-1] in _SPECIAL:
        return complex(0, _SPECIAL[node.id[:-1]])
    return None


def _is_call(node, name, nargs):
    return (
        type(node) is _ast.Call
        and type(node.func) is _ast.Name
        and node.func.id == name
        and len(node.args) == nargs
        and not node.keywords
    )


def _built(node, depth, calls):
    if depth >= MAX_DEPTH:
        raise NotPlainText(f"nested deeper than {MAX_DEPTH}")
    args = [_value(arg, depth + 1, calls) for arg in node.args]
    try:
        return calls[node.func.id](*args)
    except NotPlainText:
        raise
    except Exception as exc:  # a builder refuses what it cannot build
        raise NotPlainText(f"{node.func.id}(...): {type(exc).__name__}: {exc}"[:200]) from None


def _set_call(node, depth, calls):
    """``set()``, ``frozenset()`` and ``frozenset({...})``; no other call of them."""
    if depth >= MAX_DEPTH:
        raise NotPlainText(f"nested deeper than {MAX_DEPTH}")
    name = node.func.id
    if _is_call(node, name, 0):
        return set() if name == "set" else frozenset()
    if name == "frozenset" and _is_call(node, name, 1) and type(node.args[0]) is _ast.Set:
        return frozenset(_value(node.args[0], depth, calls))
    raise NotPlainText(f"{name}(...) with these arguments is not a plain value")


def why_not(value, exc):
    """What is not plain in ``value``, for a message: ``'AlwaysEqual'``, ``'list holding generator'``."""
    outer = type(value).__name__
    if exc.type_name == outer and str(exc) == f"{outer} is not a plain value":
        return outer
    if str(exc) == f"{exc.type_name} is not a plain value":
        return f"{outer} holding {exc.type_name}"
    return f"{outer} ({exc})"
