"""The comparison spec: shared training settings plus a list of named entries (config overrides).

    name: backbones                 # optional: the folder runs/compare/<name>
    shared:                         # any TrainConfig option, the same for every entry
      dataset: fashion_mnist
      subset: 5000
      epochs: 5
      batch: 64
      seed: 0
    time_budget: 120                # optional: seconds of training per entry ("2m", "90s" work too)
    entries:
      - lenet5                      # shorthand: a model name
      - {name: resnet18, model: resnet18_cifar, lr: 0.05}
      - {name: vgg-aug, model: vgg11_bn_cifar, augment: {horizontal_flip: true}, time_budget: 60}

Entry keys other than ``name`` and ``time_budget`` are TrainConfig overrides (dotted names such as
``model_kwargs.dropout`` reach nested options) merged over ``shared``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError
from cnnlab.experiments.overrides import deep_merge
from cnnlab.experiments.runner import OUTPUT_KEYS, TASKS, is_number, validate_config

SPEC_KEYS = ("name", "task", "shared", "entries", "time_budget", "description")
SHARED_ALIASES = ("base", "defaults", "common")
ENTRY_KEYS = ("name", "time_budget", "description")
# options that do not change what an entry computes (ignored when deciding whether it is done)
RUNTIME_KEYS = ("verbose", "device", "threads", "workers", "plots", "tensorboard", "data_dir")


@dataclass
class Entry:
    """One row of the comparison: a name, its config overrides and an optional time budget (s)."""

    name: str
    overrides: dict[str, Any]
    time_budget: float | None = None
    description: str = ""

    @property
    def slug(self) -> str:
        return slugify(self.name)


@dataclass
class CompareSpec:
    """A parsed comparison spec."""

    entries: list[Entry]
    shared: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    time_budget: float | None = None
    description: str = ""
    source: str = "spec"
    task: str = "classify"          # classify (cnnlab.train), detect, localize or segment (runner.TASKS)

    def entry_config(self, entry: Entry) -> dict[str, Any]:
        """The full run config of ``entry`` (shared settings + its overrides)."""
        return deep_merge(self.shared, entry.overrides)

    def budget(self, entry: Entry) -> float | None:
        return entry.time_budget if entry.time_budget is not None else self.time_budget

    def to_dict(self) -> dict[str, Any]:
        """The spec as a mapping that :func:`parse_spec` reads back (unset options left out)."""
        entries = [{"name": e.name, **copy.deepcopy(e.overrides),
                    **_given(time_budget=e.time_budget, description=e.description)} for e in self.entries]
        task = {"task": self.task} if self.task != "classify" else {}
        return {**_given(name=self.name, description=self.description), **task, "shared": copy.deepcopy(self.shared),
                **_given(time_budget=self.time_budget), "entries": entries}


def _given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are set (not None, not empty text)."""
    return {k: v for k, v in values.items() if v is not None and v != ""}


def slugify(name: str) -> str:
    """A folder name for an entry: letters, digits, ``.``, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.") or "entry"


def parse_seconds(value: Any, what: str = "time_budget") -> float | None:
    """Seconds from a number or ``"90s"`` / ``"2m"`` / ``"1.5h"``; None stays None."""
    if value is None:
        return None
    if is_number(value):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*", str(value).lower())
        if not m:
            raise UserError(f"{what} must be seconds or a duration like 90s, 2m or 1h, got {value!r}")
        seconds = float(m.group(1)) * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m.group(2) or "s"]
    if seconds <= 0:
        raise UserError(f"{what} must be > 0 seconds, got {value!r}")
    return seconds


def _entry(item: Any, index: int, source: str) -> Entry:
    where = f"{source}: entry {index + 1}"
    if isinstance(item, str):
        if not item.strip():
            raise UserError(f"{where} is an empty string (expected a model name or a mapping)")
        return Entry(item.strip(), {"model": item.strip()})
    if not isinstance(item, Mapping):
        raise UserError(f"{where} must be a model name or a mapping of name + options, got {item!r}")
    data = {str(k): v for k, v in item.items()}
    overrides = {k: v for k, v in data.items() if k not in ENTRY_KEYS}
    name = data.get("name") or overrides.get("model")
    if not name or not isinstance(name, (str, int, float)):
        raise UserError(f"{where} needs a name (or at least a model)")
    for key in ("project", "exist_ok"):
        if key in overrides:
            raise UserError(f"{where} sets {key!r}; the comparison chooses where each entry's run goes")
    return Entry(str(name), overrides, parse_seconds(data.get("time_budget"), f"{where}: time_budget"),
                 str(data.get("description") or ""))


def parse_spec(data: Any, source: str = "spec") -> CompareSpec:
    """A :class:`CompareSpec` from a mapping (a parsed YAML file); a malformed spec is a UserError."""
    if isinstance(data, list):
        data = {"entries": data}
    if not isinstance(data, Mapping):
        raise UserError(f"{source}: a comparison spec must be a mapping with 'shared' settings and 'entries'")
    data = {str(k): v for k, v in data.items()}
    for alias in SHARED_ALIASES:
        if alias in data:
            if "shared" in data:
                raise UserError(f"{source}: give either 'shared' or '{alias}', not both")
            data["shared"] = data.pop(alias)
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise UserError(f"{source}: unknown key(s) {', '.join(unknown)} (expected {', '.join(SPEC_KEYS)}; "
                        "training options go under 'shared' or into an entry)")
    shared = data.get("shared") or {}
    if not isinstance(shared, Mapping):
        raise UserError(f"{source}: 'shared' must be a mapping of option: value, got {shared!r}")
    shared = {str(k): v for k, v in shared.items()}
    shared.pop("exist_ok", None)
    if "project" in shared or "name" in shared:
        raise UserError(f"{source}: 'shared' cannot set project or name (use --project / --name)")
    entries_data = data.get("entries")
    if not isinstance(entries_data, list) or not entries_data:
        raise UserError(f"{source}: 'entries' must be a non-empty list (model names or mappings)")
    entries = [_entry(item, i, source) for i, item in enumerate(entries_data)]
    seen: dict[str, str] = {}
    for e in entries:
        if e.slug in seen:
            raise UserError(f"{source}: two entries are named {seen[e.slug]!r} and {e.name!r}; "
                            "give each entry its own name")
        seen[e.slug] = e.name
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or slugify(name) != name):
        raise UserError(f"{source}: name must be a folder name (letters, digits, . _ -), got {name!r}")
    task = data.get("task") or "classify"
    if task not in TASKS:
        raise UserError(f"{source}: unknown task {task!r} (known: {', '.join(TASKS)})")
    spec = CompareSpec(entries, shared, name, parse_seconds(data.get("time_budget")),
                       str(data.get("description") or ""), source, task)
    validate(spec)
    return spec


def validate(spec: CompareSpec) -> None:
    """Check every entry's config against its task's config (unknown options, bad values) before training."""
    for e in spec.entries:
        validate_config(spec.entry_config(e), source=f"{spec.source}: entry {e.name!r}", task=spec.task)


def load_spec(spec: str | Path | Mapping[str, Any] | CompareSpec) -> CompareSpec:
    """A spec from a YAML file, a mapping or an already parsed :class:`CompareSpec`."""
    if isinstance(spec, CompareSpec):
        return spec
    if isinstance(spec, (Mapping, list)):
        return parse_spec(spec)
    from cnnlab.io import read_yaml

    path = Path(spec)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the comparison spec file (YAML)")
    return parse_spec(read_yaml(path), source=str(path))


def fingerprint(config: Mapping[str, Any], budget: float | None) -> str:
    """A short hash of what an entry computes: its config (minus runtime-only options) and budget."""
    relevant = {k: v for k, v in config.items() if k not in RUNTIME_KEYS + OUTPUT_KEYS}
    text = json.dumps({"config": relevant, "time_budget": budget}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
