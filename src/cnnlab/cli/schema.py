"""CLI options generated from a config class, so ``--help`` lists every option with its type and
default, grouped by section, and the CLI cannot drift from the config.

    app.command("train")(config_command(TrainConfig, run, extra=[...]))

Each config field becomes ``--field-name`` (its short flag and help section from the field's
metadata). Booleans are ``--flag/--no-flag``; ints and floats are typed by click; lists, mappings and
unions are taken as text and parsed by the config's own coercion (YAML: ``[1,2]``, ``'{a: 1}'``,
``null``). Options not given stay ``None``, so values from ``--config FILE`` are not overridden.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import typer

from cnnlab.config.schema import Config, type_options


def _typer_type(tp: Any) -> type:
    opts = type_options(tp)
    if len(opts) == 1 and opts[0] in (bool, int, float, str):
        return opts[0]
    return str


def _type_label(tp: Any) -> str:
    opts = type_options(tp)
    names = []
    for o in opts:
        names.append(getattr(o, "__name__", str(o)).replace("typing.", ""))
    return " | ".join(names)


def _default_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (dict, list)) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    return str(value)


def config_parameters(cls: type[Config], skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One ``typer.Option`` parameter per field of ``cls`` (except ``skip``)."""
    params = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if f.name in skip or not meta.get("cli", True):
            continue
        tp = cls.field_type(f.name)
        ptype = _typer_type(tp)
        flag = "--" + f.name.replace("_", "-")
        decls = [f"{flag}/--no-{f.name.replace('_', '-')}"] if ptype is bool else [flag]
        if meta.get("short"):
            decls.append(meta["short"])
        default = cls.default_of(f.name)
        label = "" if ptype in (bool, int, float, str) else f" ({_type_label(tp)})"
        # "\[" keeps rich from reading "[default: x]" as markup
        help_text = f"{meta.get('help', '')}{label} \\[default: {_default_text(default)}]"
        option = typer.Option(None, *decls, help=help_text, rich_help_panel=meta.get("section"),
                              show_default=False)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=ptype | None))
    return params


def collect(cls: type[Config], values: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave (not None), coerced to the config's types (one-line errors)."""
    from cnnlab.config.schema import parse_value

    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = parse_value(cls, name, value) if isinstance(value, str) else cls.coerce(name, value)
    return out


def config_command(cls: type[Config], body: Callable[..., None], extra: list[inspect.Parameter],
                   doc: str, skip: tuple[str, ...] = ()) -> Callable[..., None]:
    """A typer command whose parameters are ``extra`` (arguments and command-only options) followed by
    every config field; ``body(ctx_args, options, **extra_values)`` runs it with the given options."""
    fields = config_parameters(cls, skip)
    extra_names = [p.name for p in extra]

    def command(**kwargs: Any) -> None:
        options = collect(cls, {p.name: kwargs.get(p.name) for p in fields})
        body(options, **{k: kwargs.get(k) for k in extra_names})

    params = extra + fields
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    command.__name__ = body.__name__
    return command
