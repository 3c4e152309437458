"""Command-line overrides: ``loop.iterations=2 generator.temperature=0.7 roles.0.n=4``."""

from __future__ import annotations

from typing import Any

import yaml

from selfimprove.config.loader import Located, RecipeLoader
from selfimprove.errors import ConfigError
from selfimprove.registry import KINDS

# Keys whose string value is a component's short form (``task: arithmetic``), and lists of components.
COMPONENT_KEYS = {*KINDS, "tasks"}


def apply_overrides(recipe: Located, overrides: list[str]) -> None:
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            problems.append(f"command line: overrides must look like key=value, got '{item}'")
            continue
        try:
            value: Any = yaml.load(raw, Loader=RecipeLoader) if raw else ""
        except yaml.YAMLError:
            value = raw
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
        node: Any = recipe.data
        for depth, part in enumerate(parts[:-1]):
            try:
                child = node[part]
            except (KeyError, IndexError, TypeError):
                if isinstance(node, dict) and isinstance(part, str):
                    child = node[part] = {}
                    recipe.where[tuple(parts[: depth + 1])] = f"command line ({item})"
                else:
                    problems.append(f"command line: '{key}': no '{'.'.join(map(str, parts[: depth + 1]))}' to set")
                    break
            owner = part if isinstance(part, str) else parts[depth - 1] if depth else None
            if isinstance(child, str) and owner in COMPONENT_KEYS:  # task.size=10 on `task: arithmetic`
                child = node[part] = {"name": child}
            node = child
        else:
            last = parts[-1]
            if isinstance(node, list) and isinstance(last, int) and last < len(node):
                node[last] = value
            elif isinstance(node, dict) and isinstance(last, str):
                node[last] = value
            else:
                problems.append(f"command line: '{key}': cannot set this key")
                continue
            recipe.where[tuple(parts)] = f"command line ({item})"
    if problems:
        raise ConfigError(problems)
