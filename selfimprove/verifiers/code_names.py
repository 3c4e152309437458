"""What the tests take from the program, decided from the tests' own source (trusted), never from the program.

The tests get from the program exactly the names they use without binding them anywhere, minus Python's
builtins, plus the entry point. So a program that defines ``abs`` or ``len`` does not change what those mean
in the tests, and a HumanEval prompt's helpers (``poly`` for HumanEval/32) run on the tests' side.
"""

from __future__ import annotations

import ast
import builtins

BUILTINS = frozenset(dir(builtins))


def free_names(*sources: str) -> set[str]:
    """Names the sources load but bind nowhere (as a variable, argument, import, definition, ``except``/``match``
    target). Scopes are ignored: a name bound anywhere counts as the tests' own. Raises ``SyntaxError``."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name):
                (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
                bound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                bound.add(node.rest)
    return loaded - bound


def program_names(tests: str, prelude: str = "", entry: str | None = None) -> list[str]:
    """The names the tests' namespace takes from the program: free, not builtins, and the entry point."""
    return sorted((free_names(prelude, tests) - BUILTINS) | ({entry} if entry else set()))


def prompt_helpers(prompt_code: str, entry: str) -> str:
    """A prompt's code without its definitions of ``entry``: the imports and helper functions it gives (trusted
    code, which the tests may call), with the lines of everything else kept as they are."""
    lines = prompt_code.splitlines(keepends=True)
    drop: set[int] = set()
    for node in ast.parse(prompt_code).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            drop.update(range(first - 1, node.end_lineno or node.lineno))
    return "".join(line for i, line in enumerate(lines) if i not in drop)
