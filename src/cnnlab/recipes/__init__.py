"""Named training recipes shipped with the package: readable YAML files of ``TrainConfig`` options
with an ``about`` block (what the recipe reproduces or aims at, and what it reaches on a 2-core CPU
and on a GPU: measured figures or the course's, each labelled; "not measured" where none exists).

    cnnlab recipes                                   # list them (no torch import)
    cnnlab train --recipe cifar10-fast --epochs 4    # explicit options override the recipe
    cnnlab.train(recipe="mnist-fast", seed=1)

A run records the recipe's name and every resolved option in its ``config.yaml``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from cnnlab.errors import UserError

ABOUT_KEYS = ("summary", "source", "cpu", "gpu", "course")


@dataclass
class Recipe:
    """One recipe: its name, its options (TrainConfig fields) and its ``about`` lines."""

    name: str
    options: dict[str, Any]
    about: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def summary(self) -> str:
        return self.about.get("summary", "")


def _files() -> dict[str, Any]:
    root = resources.files(__name__)
    return {p.name[: -len(".yaml")]: p for p in root.iterdir() if p.name.endswith(".yaml")}


def list_recipes() -> list[str]:
    """Names of the shipped recipes, sorted."""
    return sorted(_files())


def parse_recipe(name: str, text: str) -> Recipe:
    """A recipe from its YAML text: a mapping of options plus an optional ``about`` mapping."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"recipe {name}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"recipe {name}: expected a mapping of options")
    about = data.pop("about", None) or {}
    if not isinstance(about, dict) or not set(map(str, about)) <= set(ABOUT_KEYS):
        raise UserError(f"recipe {name}: about must be a mapping with keys among {', '.join(ABOUT_KEYS)}")
    return Recipe(name, {str(k): v for k, v in data.items()}, {str(k): str(v).strip() for k, v in about.items()},
                  text)


def load_recipe(name: str) -> Recipe:
    """The shipped recipe ``name`` (unknown names: a one-line error with close matches)."""
    files = _files()
    key = str(name).strip().lower().replace("_", "-")
    if key not in files:
        close = difflib.get_close_matches(key, list(files), n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise UserError(f"unknown recipe {name!r}{hint}; choose from {', '.join(sorted(files))}")
    return parse_recipe(key, files[key].read_text(encoding="utf-8"))


def recipe_options(name: str) -> dict[str, Any]:
    """The options of recipe ``name`` with ``recipe: name`` added (what a run records)."""
    recipe = load_recipe(name)
    return {**recipe.options, "recipe": recipe.name}


__all__ = ["Recipe", "list_recipes", "load_recipe", "parse_recipe", "recipe_options"]
