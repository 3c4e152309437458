"""Registries of components, one per kind, fed by Python entry points.

Built-in components are declared as entry points in selfimprove's own
``pyproject.toml``, exactly as a third-party plugin declares its own, so both
take the same path. Entry points are only imported when a recipe names them,
so a broken plugin fails only the run that uses it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from selfimprove.errors import PluginError, UserError

T = TypeVar("T")

# kind -> entry-point group
KINDS: dict[str, str] = {
    "task": "selfimprove.tasks",
    "generator": "selfimprove.generators",
    "verifier": "selfimprove.verifiers",
    "selector": "selfimprove.selectors",
    "updater": "selfimprove.updaters",
    "source": "selfimprove.sources",
    "parser": "selfimprove.parsers",
    "reward": "selfimprove.rewards",
}


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:attr"
    package: str  # the distribution that provides it
    version: str


class Registry(Generic[T]):
    """Name -> component factory, resolved lazily from ``module:attr`` targets."""

    def __init__(self, kind: str, group: str):
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry] | None = None
        self._extra: dict[str, Entry] = {}
        self._loaded: dict[str, T] = {}
        self.collisions: dict[str, list[Entry]] = {}  # a name two packages declare: an error when it is used

    def register(self, name: str, target: str | T) -> None:
        """Register a component in code (tests, notebooks). Entry points are the usual path."""
        if isinstance(target, str):
            self._extra[name] = Entry(name, target, "<registered in code>", "")
        else:
            self._extra[name] = Entry(name, f"{target.__module__}:{target.__qualname__}", "<registered in code>", "")
            self._loaded[name] = target

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Components registered in code inside the block are forgotten after it (a test's own)."""
        extra, loaded = dict(self._extra), dict(self._loaded)
        try:
            yield
        finally:
            self._extra, self._loaded = extra, loaded

    def entries(self) -> dict[str, Entry]:
        if self._entries is None:
            found: dict[str, Entry] = {}
            for ep in metadata.entry_points(group=self.group):
                dist = ep.dist
                entry = Entry(ep.name, ep.value, dist.metadata["Name"] if dist else "?", dist.version if dist else "")
                first = found.setdefault(ep.name, entry)
                if (first.package, first.target) != (entry.package, entry.target):
                    self.collisions.setdefault(ep.name, [first]).append(entry)
            self._entries = found
        return {**self._entries, **self._extra}

    def names(self) -> list[str]:
        return sorted(self.entries())

    def unknown_message(self, name: str) -> str:
        available = self.names()
        msg = f"Unknown {self.kind} '{name}'."
        close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        if close:
            msg += f" Did you mean: {', '.join(close)}?"
        return msg + f" Available: {', '.join(available) or '(none)'}"

    def get(self, name: str) -> T:
        if name in self._loaded:
            return self._loaded[name]
        entries = self.entries()
        if name not in entries:
            raise UserError(self.unknown_message(name))
        if name in self.collisions:
            sources = " and ".join(f"{e.package} {e.version} ({e.target})" for e in self.collisions[name])
            raise PluginError(
                f"{self.kind} '{name}' is declared by more than one package: {sources}. Uninstall one of them: "
                "which one a recipe meant cannot be told"
            )
        entry = entries[name]
        module_name, _, attr = entry.target.partition(":")
        try:
            obj: Any = __import__(module_name, fromlist=["_"])
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # a plugin can fail in any way while importing
            raise PluginError(
                f"{self.kind} '{name}' from package '{entry.package}' failed to load "
                f"({entry.target}): {type(exc).__name__}: {exc}"
            ) from exc
        self._loaded[name] = obj
        return obj

    def describe(self, name: str) -> str:
        """First line of the component's docstring."""
        doc = inspect.getdoc(self.get(name)) or ""
        return doc.splitlines()[0] if doc else ""


registries: dict[str, Registry[Any]] = {kind: Registry(kind, group) for kind, group in KINDS.items()}


def get(kind: str, name: str) -> Any:
    return registries[kind].get(name)
