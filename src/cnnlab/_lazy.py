"""Lazy package exports (PEP 562): a name is imported from its module on first access, then cached."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(module_name: str, mapping: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for package ``module_name``; ``mapping`` is public name -> defining module.

        __getattr__, __dir__ = lazy_exports(__name__, {"Detector": "cnnlab.detect.detector"})

    ``__dir__`` lists the package's ``__all__`` (the mapping's names when it has none).
    """

    def __getattr__(name: str) -> Any:
        target = mapping.get(name)
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target), name)
        setattr(sys.modules[module_name], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return list(getattr(sys.modules[module_name], "__all__", sorted(mapping)))

    return __getattr__, __dir__
