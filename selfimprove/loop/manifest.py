"""``manifest.json``: what is needed to reproduce a run (resolved recipe, versions, seed, revision)."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from selfimprove import __version__
from selfimprove.config.schema import Recipe
from selfimprove.errors import UserError

PACKAGES = ["torch", "transformers", "peft", "trl", "accelerate", "math-verify"]

# Keys that may change between a run and its resumption (extending a run by more iterations or steps).
RESUMABLE_CHANGES = {("loop", "iterations"), ("loop", "steps")}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def build(recipe: Recipe, argv: list[str]) -> dict[str, Any]:
    return {
        "recipe": recipe.resolved,
        "recipe_file": recipe.source,
        "seed": recipe.loop.seed,
        "command": argv,
        "selfimprove": __version__,
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def _diff(a: Any, b: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), (*path, k))]
    return [] if a == b else [path]


def check_resumable(previous: dict[str, Any], recipe: Recipe, run_dir: Path) -> None:
    changed = [p for p in _diff(previous["recipe"], recipe.resolved) if p not in RESUMABLE_CHANGES]
    if changed:
        keys = ", ".join(".".join(p) for p in changed[:5])
        raise UserError(
            f"{run_dir} holds a run of a different recipe (changed: {keys}); "
            "resume it with the same recipe, or choose a new --run-dir"
        )
