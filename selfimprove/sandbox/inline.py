"""Self-contained program text from a module of this package, to be run in the sandbox.

A harness is written as an ordinary module (imported, linted and unit-tested on the host) that imports its
helpers from this package on single lines (``from selfimprove.sandbox.plain import encode``). The sandbox has
the standard library only, so ``source`` replaces each such line with the helper module's own source, once per
module and recursively. Inlined modules use the standard library only, no ``from __future__`` import, and no
top-level name of another inlined module: all of them share one namespace in the sandbox, which ``source``
checks.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from pathlib import Path

_IMPORT = re.compile(r"^from (selfimprove(?:\.\w+)+) import [^\n(]+$", re.MULTILINE)


@functools.cache
def source(module: str) -> str:
    """``module``'s source with every ``from selfimprove... import ...`` line replaced by that module's source."""
    seen: dict[str, str] = {}
    text = _inline(module, seen)
    defined: dict[str, str] = {}
    for name, part in seen.items():
        for node in ast.parse(part).body:
            for bound in _top_level_names(node):
                if defined.setdefault(bound, name) != name:
                    raise RuntimeError(f"{bound!r} is defined in both {defined[bound]} and {name}: inlined together")
    return text


def _inline(module: str, seen: dict[str, str]) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"cannot inline {module}: no source file")
    text = Path(spec.origin).read_text(encoding="utf-8")
    if re.search(r"^from __future__ ", text, re.MULTILINE):
        raise RuntimeError(f"cannot inline {module}: it has a __future__ import")
    seen[module] = text

    def replace(match: re.Match[str]) -> str:
        return "" if match.group(1) in seen else _inline(match.group(1), seen)

    return _IMPORT.sub(replace, text)


def _top_level_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []
