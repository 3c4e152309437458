"""Recipes: YAML files that name one component per stage of the loop."""

from selfimprove.config.schema import Recipe, load_recipe

__all__ = ["Recipe", "load_recipe"]
