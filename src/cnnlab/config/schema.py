"""The config machinery every task shares: typed dataclass options with help, one validation path.

An option is a dataclass field made with :func:`option` (default, help text, CLI short flag, help
section). :class:`Config` gives every config class the same construction and checks:

- ``from_dict`` / ``from_yaml`` / ``replace``: unknown names are one UserError with "did you mean";
- ``coerce``: values from YAML or the command line become the field's type (one-line errors);
- ``validate``: range checks, run before anything heavy starts.

The CLI options of ``train`` and ``detect-train`` are generated from these fields
(``cnnlab.cli.schema``), so help text and defaults cannot drift from the config.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Union

from cnnlab.errors import UserError

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, factory: Any = None, short: str | None = None,
           section: str = "Run", cli: bool = True) -> Any:
    """A config field: its default (or ``factory``), one-line help, CLI short flag and help section."""
    meta = {"help": help, "short": short, "section": section, "cli": cli}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    """Base of every config: construction from dicts/YAML with one validation path."""

    # names users bring from Keras / timm / Ultralytics -> ours (suggested in unknown-option errors)
    ALIASES: ClassVar[dict[str, str]] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def field_type(cls, name: str) -> Any:
        return _hints(cls)[name]

    @classmethod
    def default_of(cls, name: str) -> Any:
        f = next(f for f in dataclasses.fields(cls) if f.name == name)
        return f.default_factory() if f.default is _MISSING else f.default  # type: ignore[misc]

    @classmethod
    def check_keys(cls, data: dict[str, Any], source: str = "config") -> None:
        """Raise a UserError naming unknown option names, with close matches."""
        known = cls.field_names()
        unknown = [k for k in data if k not in known]
        if not unknown:
            return
        hints = []
        for k in unknown:
            key = str(k).replace("-", "_").lower()
            close = ([cls.ALIASES[key]] if key in cls.ALIASES
                     else difflib.get_close_matches(key, known, n=2, cutoff=0.6))
            hints.append(f"{k!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
        raise UserError(f"{source}: unknown option{'s' if len(unknown) > 1 else ''} " + ", ".join(hints))

    @classmethod
    def coerce(cls, name: str, value: Any) -> Any:
        """Convert ``value`` (from YAML or the command line) to the type of option ``name``."""
        return coerce_to(cls.field_type(name), name, value)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config") -> Any:
        """Build from a plain dict; unknown keys are a UserError naming them (with close matches)."""
        data = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in dict(data or {}).items()}
        cls.check_keys(data, source)
        cfg = cls()
        for k, v in data.items():
            setattr(cfg, k, cls.coerce(k, v))
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Any:
        return cls.from_dict(read_options(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | os.PathLike) -> Path:
        from cnnlab.io import write_yaml

        return write_yaml(path, self.to_dict())

    def replace(self, **overrides: Any) -> Any:
        """A copy with ``overrides`` applied (validated like a config file)."""
        type(self).check_keys(overrides, "overrides")
        return type(self).from_dict({**self.to_dict(), **overrides})

    def validate(self) -> None:
        """Range checks that give one-line errors before anything heavy starts."""


# what a run folder's config.yaml holds besides options (ignored when it is read back as a config)
RUN_METADATA = ("task", "names", "init")


def read_options(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file of options as a mapping (a run folder's metadata keys dropped); one-line errors."""
    from cnnlab.io import read_yaml

    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file must be a mapping of option: value")
    return {k: v for k, v in data.items() if k not in RUN_METADATA}


def _hints(cls: type) -> dict[str, Any]:
    cache = cls.__dict__.get("_hint_cache")
    if cache is None:
        cache = typing.get_type_hints(cls)
        cls._hint_cache = cache  # type: ignore[attr-defined]
    return cache


def allows_none(tp: Any) -> bool:
    """True for ``X | None`` types."""
    origin = typing.get_origin(tp)
    return (origin is Union or origin is types.UnionType) and type(None) in typing.get_args(tp)


def type_options(tp: Any) -> list[Any]:
    """The non-None members of a union (or ``[tp]``)."""
    if typing.get_origin(tp) in (dict, list):
        return [tp]
    return [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_args(tp) else [tp]


def coerce_to(tp: Any, name: str, value: Any) -> Any:
    """``value`` as type ``tp`` (option ``name`` in errors)."""
    if value is None:
        if allows_none(tp):
            return None
        raise UserError(f"option {name} cannot be null")
    if isinstance(value, str) and value.strip().lower() in ("none", "null", "off") and allows_none(tp):
        return None
    errors = []
    for opt in type_options(tp):
        try:
            return _coerce_one(opt, value)
        except (TypeError, ValueError, OverflowError) as e:
            errors.append(str(e))
    raise UserError(f"option {name}: cannot use {value!r} ({'; '.join(errors)})")


def _coerce_one(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise TypeError("expected an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, (int, str)):
            return int(value)
        raise TypeError("expected an integer")
    if tp is float:
        if isinstance(value, (bool, list, dict)):
            raise TypeError("expected a number")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise TypeError("expected a string")
        return str(value)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, str):
            value = _parse_list(value)
        if not isinstance(value, (list, tuple)):
            raise TypeError("expected a list")
        return [_coerce_one(item, v) if item is not Any else v for v in value]
    if origin is dict:
        if isinstance(value, str):
            value = _parse_yaml(value)
        if not isinstance(value, dict):
            raise TypeError("expected a mapping")
        return dict(value)
    return value


def only_str(tp: Any) -> bool:
    """True when a value of this type is always taken as written (no YAML parsing)."""
    return type_options(tp) == [str]


def _parse_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"not valid YAML: {str(e).splitlines()[0]}") from None


def _parse_list(text: str) -> list[Any]:
    parsed = _parse_yaml(text) if text.strip().startswith("[") else [p for p in text.split(",") if p.strip()]
    if not isinstance(parsed, list):
        raise TypeError("expected a list")
    return parsed


def parse_value(cls: type[Config], key: str, text: str) -> Any:
    """A command-line value (text) as option ``key`` of ``cls``: YAML-parsed unless the type is str."""
    tp = cls.field_type(key)
    if only_str(tp) and text.lower() not in ("null", "none"):
        return text
    try:
        import yaml

        parsed = yaml.safe_load(text) if text != "" else ""
    except Exception:
        parsed = text
    return cls.coerce(key, parsed)


def parse_cli_overrides(args: list[str], cls: type[Config]) -> dict[str, Any]:
    """Parse extra ``option=value`` (Ultralytics style) or ``--option value`` / ``--flag`` / ``--no-flag``."""
    known = cls.field_names()
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        i += 1
        if tok.startswith("--"):
            key, eq, val = tok[2:].partition("=")
        elif "=" in tok:
            key, _, val = tok.partition("=")
            eq = "="
        else:
            raise UserError(f"unexpected argument {tok!r} (options look like --name VALUE or name=VALUE)")
        key = key.replace("-", "_")
        negate = key.startswith("no_") and key not in known and key[3:] in known
        if negate:
            key = key[3:]
        cls.check_keys({key: None}, "command line")
        is_bool = cls.field_type(key) is bool
        if negate:
            out[key] = False
            continue
        if not eq:
            if is_bool and (i >= len(args) or args[i].startswith("--")):
                out[key] = True
                continue
            if i >= len(args):
                raise UserError(f"option --{key.replace('_', '-')} needs a value")
            val = args[i]
            i += 1
        out[key] = parse_value(cls, key, val)
    return out
