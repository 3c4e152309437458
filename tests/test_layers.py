"""The package graph has layers: no package imports one that imports it back, components never import the engine
(``selfimprove.loop``) or the CLI, the engine never imports the CLI, evaluation never imports the engine.

Every ``import`` under ``selfimprove/`` counts, those inside functions too (a lazy import is still a dependency).
A package is ``selfimprove.<name>`` (a folder) or a top-level module (``selfimprove.tracking``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import selfimprove

ROOT = Path(selfimprove.__file__).parent

# The component packages: what a recipe names and a plugin replaces. A renamed package goes here under its new name.
COMPONENTS = (
    "tasks", "sources", "parsers", "generators", "verifiers", "rewards", "selection", "objectives", "updaters",
    "models", "sandbox",
)  # fmt: skip
# importer -> the packages it must not import
FORBIDDEN = {
    **{component: ("loop", "cli") for component in COMPONENTS},
    "loop": ("cli",),
    "eval": ("loop", "cli"),
}

Edge = tuple[str, str, int]  # importing module, imported module, line


def module_name(file: Path, root: Path) -> str:
    parts = ("selfimprove", *file.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool, known: set[str]) -> Iterator[tuple[str, int]]:
    """The ``selfimprove`` modules one file imports, anywhere in it, resolved to modules that exist."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            # ``from selfimprove.loop import stages`` imports the module selfimprove.loop.stages
            targets = [f"{parent}.{a.name}" if f"{parent}.{a.name}" in known else parent for a in node.names]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:  # ``import selfimprove.a.b.name`` -> its module
                target = target.rsplit(".", 1)[0]
            if target.startswith("selfimprove.") and target in known:
                yield target, node.lineno


def module_edges(root: Path = ROOT) -> list[Edge]:
    files = {module_name(f, root): f for f in sorted(root.rglob("*.py"))}
    known = set(files)
    return sorted({
        (module, target, line)
        for module, file in files.items()
        for target, line in imports(file.read_text(), module, file.name == "__init__.py", known)
    })  # fmt: skip


def package(module: str) -> str:
    """``selfimprove.loop.stages`` -> ``loop``; ``selfimprove.tracking`` -> ``tracking``."""
    return module.split(".")[1] if "." in module else module


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The package cycles (strongly connected components of more than one package), each sorted."""
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges:
        if package(source) != package(target):
            graph.setdefault(package(source), set()).add(package(target))
            graph.setdefault(package(target), set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def describe(edges: list[Edge], packages: list[str]) -> str:
    """The imports that make up a cycle, module by module."""
    return "\n".join(
        f"  {source} -> {target} (line {line})"
        for source, target, line in edges
        if package(source) in packages and package(target) in packages and package(source) != package(target)
    )


def forbidden(edges: list[Edge]) -> list[str]:
    return [
        f"{source} imports {target} (line {line}): {package(source)} must not import {package(target)}"
        for source, target, line in edges
        if package(target) in FORBIDDEN.get(package(source), ())
    ]


def test_the_package_graph_has_no_cycles() -> None:
    edges = module_edges()
    assert edges, "no imports found: the parser is broken"
    found = cycles(edges)
    assert not found, "package cycles:\n" + "\n".join(f"{' <-> '.join(c)}:\n{describe(edges, c)}" for c in found)


def test_components_import_neither_the_engine_nor_the_cli() -> None:
    present = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert set(COMPONENTS) <= present, f"renamed? update COMPONENTS: {sorted(set(COMPONENTS) - present)}"
    problems = forbidden(module_edges())
    assert not problems, "\n".join(problems)


def test_the_checks_see_a_back_edge(tmp_path: Path) -> None:
    """The checks on a made-up tree: a component that imports the engine, inside a function, closes a cycle."""
    for name, text in {
        "__init__.py": "",
        "loop/__init__.py": "",
        "loop/stages.py": "from selfimprove.verifiers import exact\n",
        "verifiers/__init__.py": "",
        "verifiers/exact.py": "def f():\n    from ..loop import stages\n",
        "cli/__init__.py": "from selfimprove.loop import stages\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = module_edges(tmp_path)
    assert cycles(edges) == [["loop", "verifiers"]]
    assert "selfimprove.verifiers.exact -> selfimprove.loop.stages (line 2)" in describe(edges, ["loop", "verifiers"])
    assert forbidden(edges) == [
        "selfimprove.verifiers.exact imports selfimprove.loop.stages (line 2): verifiers must not import loop"
    ]
