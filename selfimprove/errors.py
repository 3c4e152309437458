"""Errors a user can act on. The CLI prints them without a traceback and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a recipe, an override, a data file, a missing package."""

    exit_code = 2


class ConfigError(UserError):
    """One or more problems in a recipe, all reported together."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{len(problems)} {noun} in the recipe:\n" + "\n".join(f"  - {p}" for p in problems))


class PluginError(UserError):
    """A component's package failed to import."""
