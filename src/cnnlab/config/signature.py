"""Give an entry point that takes ``**options`` the real signature of its config's fields."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def with_config_signature(config_cls: type) -> Callable[[F], F]:
    """``inspect.signature(fn)`` (and ``help(fn)``) list every field of ``config_cls`` as a keyword-only
    parameter with its type and default, in place of ``**options``."""

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in params}
        hints = typing.get_type_hints(config_cls)
        for f in dataclasses.fields(config_cls):
            if f.name in taken:
                continue
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=hints.get(f.name, Any)))
        params.sort(key=lambda p: p.kind)  # keyword-only after the positional ones
        fn.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return fn

    return deco

