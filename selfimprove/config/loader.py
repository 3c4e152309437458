"""Load YAML with ``include:`` and remember where every key came from (file:line)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from selfimprove.errors import ConfigError

KeyPath = tuple[str | int, ...]


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a number (YAML 1.1 wants ``1.0e-4``): learning rates look like that."""


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789.")
)


class Located:
    """Plain data plus the source location of each key path."""

    def __init__(self, data: dict[str, Any], where: dict[KeyPath, str]):
        self.data = data
        self.where = where

    def at(self, path: KeyPath) -> str:
        """The file:line of ``path`` or of its closest located parent."""
        while path:
            if path in self.where:
                return self.where[path]
            path = path[:-1]
        return self.where.get((), "?")


def format_path(path: KeyPath) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _construct(node: yaml.Node, loader: RecipeLoader, file: str, path: KeyPath, where: dict[KeyPath, str]) -> Any:
    where[path] = f"{file}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        own = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
        loader.flatten_mapping(node)  # `<<: *alias` merge keys: merged pairs come first, own keys override them
        merged = len(node.value) - own
        own_keys: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise ConfigError([f"{file}:{key_node.start_mark.line + 1}: keys must be strings, got {key!r}"])
            if i >= merged:
                if key in own_keys:
                    raise ConfigError([f"{file}:{key_node.start_mark.line + 1}: duplicate key '{key}'"])
                own_keys.add(key)
            out[key] = _construct(value_node, loader, file, (*path, key), where)
            where[(*path, key)] = f"{file}:{key_node.start_mark.line + 1}"
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loader, file, (*path, i), where) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _read(file: Path) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    if not file.is_file():
        raise ConfigError([f"{file}: recipe file not found"])
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"]) from None
    try:
        loader = RecipeLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character; it carries a position, not a line
        line = text[: exc.position].count("\n") + 1
        raise ConfigError([f"{file}:{line}: malformed YAML: unacceptable character #x{exc.character:04x}"]) from None
    where: dict[KeyPath, str] = {(): f"{file}:1"}
    try:
        node = loader.get_single_node()
        data = {} if node is None else _construct(node, loader, str(file), (), where)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        opened = exc.context_mark if exc.problem and exc.context else None  # e.g. where an unclosed { began
        context = f" ({exc.context} at line {opened.line + 1})" if opened and opened is not mark else ""
        raise ConfigError([f"{file}{line}: malformed YAML: {exc.problem or exc.context}{context}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: a recipe must be a mapping of keys, got {type(data).__name__}"])
    return data, where


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings; ``top`` wins. Lists are replaced, not concatenated."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(file: Path, _seen: tuple[Path, ...] = ()) -> Located:
    """Read ``file`` and every file it includes (paths relative to the including file)."""
    file = file.resolve()
    if file in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, file))
        raise ConfigError([f"include cycle: {chain}"])
    data, where = _read(file)
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError([f"{where[('include',)]}: include: expected a file name or a list of file names"])
    merged: dict[str, Any] = {}
    merged_where: dict[KeyPath, str] = {}
    for name in includes:
        target = file.parent / name
        if not target.is_file():
            raise ConfigError([f"{where[('include',)]}: include: file not found: {target}"])
        part = load_yaml(target, (*_seen, file))
        merged = _merge(merged, part.data)
        merged_where.update(part.where)
    merged = _merge(merged, data)
    merged_where.update(where)
    return Located(merged, merged_where)
