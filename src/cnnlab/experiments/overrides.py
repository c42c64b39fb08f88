"""Apply dotted-key overrides (``augment.rotation_range: 10``) to plain config dicts."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cnnlab.errors import UserError


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config["a"]["b"]["c"] = value`` for ``key="a.b.c"``, creating (or replacing null) mappings."""
    parts = str(key).split(".")
    if not all(parts):
        raise UserError(f"invalid option name {key!r}")
    node = config
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise UserError(f"cannot set {key!r}: {'.'.join(parts[: i + 1])!r} is {child!r}, not a mapping")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def get_dotted(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``config["a"]["b"]`` for ``key="a.b"``; ``default`` when any level is missing."""
    node: Any = config
    for part in str(key).split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def apply_params(config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``config`` with each dotted ``name: value`` of ``params`` set."""
    out = copy.deepcopy(dict(config))
    for key, value in params.items():
        set_dotted(out, key, value)
    return out


def deep_merge(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``config`` with ``overrides`` merged in.

    Mappings merge key by key (dotted keys reach nested options); any other value, ``null``
    included, replaces what was there.
    """
    out = copy.deepcopy(dict(config))
    _merge_into(out, overrides)
    return out


def _merge_into(node: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        head, _, rest = str(key).partition(".")
        if rest:  # "a.b: v" is "a: {b: v}", merged into a mapping at "a" (made when there is none)
            value = {rest: value}
            if not isinstance(node.get(head), dict):
                node[head] = {}
        if isinstance(value, Mapping) and isinstance(node.get(head), dict):
            _merge_into(node[head], value)
        else:
            node[head] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
