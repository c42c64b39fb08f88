"""Search spaces for ``cnnlab tune``: parse a space file and suggest values through Optuna.

A space file maps option names (dotted names reach nested options, e.g. ``augment.rotation_range``)
to one of::

    lr:        {loguniform: [1.0e-4, 1.0e-1]}
    momentum:  {uniform: [0.5, 0.99]}          # or {uniform: {low: 0.5, high: 0.99, step: 0.01}}
    epochs:    {int: [2, 8]}                   # or {int: {low: 2, high: 8, step: 2, log: false}}
    batch:     {choice: [32, 64, 128]}         # a bare list means the same
    optimizer: {grid: [sgd, adam]}

The grid sampler needs every parameter discrete (``grid``, ``choice`` or ``int``); the random and
TPE samplers treat ``grid`` like ``choice``. The whole file may also sit under a ``parameters:`` key.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError

KINDS = ("grid", "choice", "uniform", "loguniform", "int")
_PRIMITIVE = (type(None), bool, int, float, str)
# PyYAML reads "1e-4" (no dot) as a string; numbers like that are meant as floats.
_EXP_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _number(text: Any) -> Any:
    if isinstance(text, str) and _EXP_NUMBER.fullmatch(text.strip()):
        return float(text)
    return text


@dataclass(frozen=True)
class Param:
    """One searched option: its dotted name, kind and range or values."""

    name: str
    kind: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    # -- categorical values must be plain for Optuna; others (lists, mappings) go by a JSON label --
    @property
    def _encoded(self) -> bool:
        return not all(isinstance(v, _PRIMITIVE) for v in self.values)

    def labels(self) -> list[Any]:
        """The categorical choices as Optuna stores them."""
        return [json.dumps(v, sort_keys=True) if self._encoded else v for v in self.values]

    def decode(self, stored: Any) -> Any:
        """The option value for what Optuna stored for this parameter."""
        if self.kind in ("grid", "choice") and self._encoded:
            return self.values[self.labels().index(stored)]
        if self.kind == "int":
            return int(stored)
        return stored

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for a value; returns the (decoded) option value."""
        if self.kind in ("grid", "choice"):
            return self.decode(trial.suggest_categorical(self.name, self.labels()))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1),
                                     log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step,
                                   log=self.kind == "loguniform" or self.log)

    def grid_labels(self) -> list[Any]:
        """Every value the grid sampler visits (stored form)."""
        if self.kind in ("grid", "choice"):
            return self.labels()
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9))
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        raise UserError(f"space: {self.name} is continuous ({self.kind}); the grid sampler needs "
                        f"a 'grid' list, a 'choice' list, an 'int' range or a 'step'")

    def extremes(self) -> list[Any]:
        """Every choice, or both ends of the range: the values to check configs with before searching."""
        return list(self.values) if self.kind in ("grid", "choice") else [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        if self.kind in ("grid", "choice"):
            return {self.kind: list(self.values)}
        spec: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step:
            spec["step"] = self.step
        if self.log:
            spec["log"] = True
        return {self.kind: spec}


class SearchSpace:
    """An ordered set of :class:`Param`."""

    def __init__(self, params: list[Param]):
        if not params:
            raise UserError("space: no parameters to search")
        self.params = params
        self.by_name = {p.name: p for p in params}

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> SearchSpace:
        if isinstance(data, Mapping) and set(data) == {"parameters"}:
            data = data["parameters"]
        if not isinstance(data, Mapping) or not data:
            raise UserError(f"{source}: expected a mapping of option name: {{kind: ...}} "
                            f"with kinds {', '.join(KINDS)}")
        return cls([_parse_param(str(name), spec, source) for name, spec in data.items()])

    @classmethod
    def load(cls, space: str | Path | Mapping[str, Any] | SearchSpace) -> SearchSpace:
        """From a SearchSpace, a mapping or a YAML file."""
        if isinstance(space, SearchSpace):
            return space
        if isinstance(space, Mapping):
            return cls.from_dict(space)
        from cnnlab.io import read_yaml

        return cls.from_dict(read_yaml(space), source=str(space))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Suggest every parameter on an Optuna trial; dotted name -> option value."""
        return {p.name: p.suggest(trial) for p in self.params}

    def decode(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """Option values for a trial's stored Optuna params."""
        return {name: self.by_name[name].decode(v) if name in self.by_name else v
                for name, v in stored.items()}

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's search space: name -> stored values."""
        return {p.name: p.grid_labels() for p in self.params}

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point of the full grid (stored values), in row-major order."""
        grid = self.grid()
        return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]

    def example(self) -> dict[str, Any]:
        """A valid value of every parameter (the first choice or the low end)."""
        return {p.name: p.extremes()[0] for p in self.params}

    def values_to_check(self) -> list[tuple[str, Any]]:
        """(name, value) for every choice and both ends of every range: to validate configs up front."""
        return [(p.name, v) for p in self.params for v in p.extremes()]

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.params}


def _parse_param(name: str, spec: Any, source: str) -> Param:
    where = f"{source}: {name}"
    if isinstance(spec, list):
        spec = {"choice": spec}
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise UserError(f"{where}: expected one of {{{', '.join(k + ': ...' for k in KINDS)}}}, got {spec!r}")
    (kind, body), = spec.items()
    kind = str(kind).lower()
    if kind not in KINDS:
        raise UserError(f"{where}: unknown kind {kind!r} (use {', '.join(KINDS)})")
    if kind in ("grid", "choice"):
        if not isinstance(body, list) or not body:
            raise UserError(f"{where}: {kind} needs a non-empty list of values")
        values = tuple(_number(v) for v in body)
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise UserError(f"{where}: {kind} lists a value twice")
        return Param(name, kind, values=values)
    low, high, step, log = _range(where, kind, body)
    if kind == "int":
        for label, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and float(v) != int(v):
                raise UserError(f"{where}: int {label} must be a whole number, got {v}")
        low, high = int(low), int(high)
        step = int(step) if step else None
        if log and step not in (None, 1):
            raise UserError(f"{where}: an int range cannot have both log and step")
    if not low < high:
        raise UserError(f"{where}: low ({low}) must be below high ({high})")
    if (kind == "loguniform" or log) and low <= 0:
        raise UserError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and step <= 0:
        raise UserError(f"{where}: step must be > 0, got {step}")
    if kind == "loguniform" and step:
        raise UserError(f"{where}: loguniform takes no step")
    return Param(name, kind, low=low, high=high, step=step, log=bool(log))


def _range(where: str, kind: str, body: Any) -> tuple[Any, Any, Any, bool]:
    spec = body
    if isinstance(body, list):
        if len(body) not in (2, 3) or (len(body) == 3 and kind != "int"):
            hint = "[low, high] or [low, high, step]" if kind == "int" else "[low, high]"
            raise UserError(f"{where}: {kind} needs {hint}")
        spec = dict(zip(("low", "high", "step"), body, strict=False))
    keys = set(spec) if isinstance(spec, Mapping) else set()
    if not {"low", "high"} <= keys or keys - {"low", "high", "step", "log"}:
        raise UserError(f"{where}: {kind} needs [low, high] or {{low: ..., high: ...}} (optional step, log)")
    try:
        step = float(_number(spec["step"])) if spec.get("step") is not None else None
        return float(_number(spec["low"])), float(_number(spec["high"])), step, bool(spec.get("log", False))
    except (TypeError, ValueError):
        raise UserError(f"{where}: {kind} bounds must be numbers, got {body!r}") from None
