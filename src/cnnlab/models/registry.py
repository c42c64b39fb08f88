"""The model registry: ``@register_model`` functions and ``create_model``, the one door (timm style).

A model function has the signature ``fn(num_classes=10, in_chans=3, img_size=32, **kw) -> nn.Module``.
Every module in ``cnnlab/models/scratch/`` is imported on first use, so a new file there registers
its models by itself. ``timm/<name>`` builds any timm architecture (random init).

Every name a user can type goes through :func:`resolve_model`: a registered name, an alias an entry
declares (familiar names such as ``ResNet50V2`` build ``transfer`` with that backbone; ``yolov3_tiny``
is ``yolov3-tiny``), or ``timm/<name>``. An entry also says what it is for (``task``), which input
scaling it wants (``input_norm``) and how to build it small for the test suite (``test_kwargs``).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnlab.errors import ModelError
from cnnlab.io import plain_data
from cnnlab.models.counting import count_params, format_count, parse_count

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

TIMM_PREFIX = "timm/"
TASKS = ("classify", "detect")
# ``timm/<name>`` asked for with pretrained weights is this entry with the timm name as its backbone
# (its loader knows timm's hub); without pretrained weights it is the plain timm model.
PRETRAINED_TIMM_ENTRY = "transfer"


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder, family (module name), one-line description, default input.

    ``task``: ``classify`` (logits ``(B, num_classes)``) or ``detect`` (a YOLO ``DarknetModel``).
    ``aliases``: other names that build this entry, matched ignoring case and separators; with
    ``alias_arg`` the name as typed is passed as that option (``transfer``: ``backbone``).
    ``input_norm``: the input scaling the model asks for (``{"mean": 0.0, "std": 1.0}``: pixels on the
    [0, 1] scale, it normalises them itself); None: the dataset's statistics.
    ``test_kwargs``: a small, fast build for the test suite (model options plus ``in_chans`` /
    ``img_size`` when they must differ from ``input_size``).
    """

    name: str
    fn: Callable[..., Any]
    family: str
    description: str
    input_size: tuple[int, int, int]  # (C, H, W) the model is usually trained on
    task: str = "classify"
    aliases: tuple[str, ...] = ()
    alias_arg: str | None = None
    input_norm: dict[str, float] | None = None
    test_kwargs: dict[str, Any] = field(default_factory=dict)
    knobs: bool = False


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}  # alias_key(alias) -> registered name
_SCRATCH_LOADED = False
_TIMM_NAMES: frozenset[str] | None = None


def alias_key(name: str) -> str:
    """How aliases are matched: lower case, letters and digits only (``ResNet-50 V2`` -> ``resnet50v2``)."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def register_model(fn: Callable[..., Any] | None = None, *, name: str | None = None,
                   input_size: tuple[int, int, int] | None = None, task: str = "classify",
                   aliases: Iterable[str] = (), alias_arg: str | None = None,
                   input_norm: dict[str, float] | None = None,
                   test_kwargs: dict[str, Any] | None = None, knobs: bool = False) -> Any:
    """Register a model function under its name (or ``name``, for names such as ``yolov3-tiny``).

    Use as ``@register_model`` or ``@register_model(input_size=(1, 28, 28), ...)``; ``input_size`` is
    the input the model is usually used with (default: the function's ``in_chans``/``img_size``
    defaults). The other options fill the :class:`ModelEntry` fields of the same names; ``knobs``: the
    builder makes its layers through ``cnnlab.models.layers`` (activation/norm/init options apply).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        key = name or f.__name__
        if key in _REGISTRY and _REGISTRY[key].fn is not f:
            raise ValueError(f"model {key!r} is registered twice")
        params = inspect.signature(f).parameters
        default_in = params["in_chans"].default if "in_chans" in params else 3
        default_size = params["img_size"].default if "img_size" in params else 32
        doc = (inspect.getdoc(f) or "").strip().split("\n\n")[0].split()
        entry = ModelEntry(
            name=key,
            fn=f,
            family=f.__module__.rsplit(".", 1)[-1],
            description=" ".join(doc),
            input_size=tuple(input_size) if input_size else (int(default_in), int(default_size),
                                                              int(default_size)),
            task=task,
            aliases=tuple(aliases),
            alias_arg=alias_arg,
            input_norm=dict(input_norm) if input_norm else None,
            test_kwargs=dict(test_kwargs or {}),
            knobs=bool(knobs),
        )
        for alias in entry.aliases:
            other = _ALIASES.get(alias_key(alias))
            if other is not None and other != key:
                raise ValueError(f"alias {alias!r} of model {key!r} is already an alias of {other!r}")
        _REGISTRY[key] = entry
        _ALIASES.update({alias_key(a): key for a in entry.aliases})
        return f

    return deco(fn) if fn is not None else deco


def _load_scratch() -> None:
    """Import every module of ``cnnlab.models.scratch`` once so their models register themselves."""
    global _SCRATCH_LOADED
    if _SCRATCH_LOADED:
        return
    from cnnlab.models import scratch

    for info in pkgutil.iter_modules(scratch.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{scratch.__name__}.{info.name}")
    _SCRATCH_LOADED = True


def model_entries() -> dict[str, ModelEntry]:
    """All registered models by name."""
    _load_scratch()
    return dict(sorted(_REGISTRY.items()))


def find_entry(name: str) -> ModelEntry | None:
    """The entry ``name`` builds (a registered name, else an alias), or None."""
    _load_scratch()
    if name in _REGISTRY:
        return _REGISTRY[name]
    target = _ALIASES.get(alias_key(name))
    return _REGISTRY.get(target) if target else None


def get_entry(name: str) -> ModelEntry:
    """The registry entry ``name`` builds; an unknown name is a ModelError listing close matches."""
    entry = find_entry(name)
    if entry is None:
        raise ModelError(_unknown_message(name))
    return entry


def is_model_name(name: str) -> bool:
    """True when ``create_model`` knows ``name``: a registered model, an alias or ``timm/<name>``."""
    return name.startswith(TIMM_PREFIX) or find_entry(name) is not None


def resolve_model(name: str, pretrained: Any = None,
                  model_kwargs: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The registry name and options behind a model name as a user types it.

    A registered name stays as it is; an alias becomes its entry (``ResNet50V2`` -> ``transfer`` with
    ``backbone="ResNet50V2"``; options in ``model_kwargs`` win); ``timm/<name>`` stays a timm model
    unless ``pretrained`` weights are asked for, which makes it the ``transfer`` model with that
    backbone. An unknown name is a ModelError listing close matches.
    """
    if not isinstance(name, str) or not name:
        raise ModelError("model name must be a non-empty string")
    kwargs = dict(model_kwargs or {})
    if name.startswith(TIMM_PREFIX):
        if not pretrained:
            return name, kwargs
        entry = get_entry(PRETRAINED_TIMM_ENTRY)
    else:
        entry = get_entry(name)
        if entry.name == name:
            return name, kwargs
    if entry.alias_arg:
        kwargs = {entry.alias_arg: name, **kwargs}
    return entry.name, kwargs


def check_model(name: str, pretrained: Any = None, model_kwargs: dict[str, Any] | None = None,
                task: str | None = None) -> tuple[str, dict[str, Any]]:
    """Check a model name as a user types it without building anything (no weights, no timm model):
    a registered name or alias for ``task``, ``timm/<name>`` that timm knows, and for ``transfer``
    its backbone. A training run calls this before it loads any data, so a typo is one line at once.
    Returns what :func:`resolve_model` returns.
    """
    registry_name, kwargs = resolve_model(name, pretrained, model_kwargs)
    if registry_name.startswith(TIMM_PREFIX):
        check_timm_name(registry_name[len(TIMM_PREFIX):])
        return registry_name, kwargs
    entry = get_entry(registry_name)
    if task is not None and entry.task != task:
        kind = {"classify": "classifier", "detect": "detector"}
        raise ModelError(f"model {name!r} is a {kind[entry.task]}, not a {kind[task]} "
                         f"(`cnnlab models --task {task}` lists the {kind[task]}s)")
    if entry.name == PRETRAINED_TIMM_ENTRY:
        from cnnlab.models.transfer import backbone_option, check_backbone

        check_backbone(backbone_option(kwargs))
    return registry_name, kwargs


def timm_names() -> frozenset[str]:
    """timm's architecture names (``timm.list_models()``, no pretrained tags).

    Importing timm takes seconds, so the list is kept per timm version in the user cache
    (``~/.cache/cnnlab/timm-<version>-models.txt``): checking a name costs no timm import after the
    first time. The list is only a fast path: building a model still asks timm itself.
    """
    global _TIMM_NAMES
    if _TIMM_NAMES is None:
        _TIMM_NAMES = frozenset(_read_timm_names())
    return _TIMM_NAMES


def _read_timm_names() -> list[str]:
    import sys
    from importlib.metadata import PackageNotFoundError, version

    from cnnlab.paths import cache_dir

    path = None
    if "timm" not in sys.modules:  # (once timm is imported, asking it is cheap)
        try:
            path = cache_dir() / f"timm-{version('timm')}-models.txt"
        except PackageNotFoundError:
            path = None
        if path is not None and path.is_file():
            try:
                names = path.read_text(encoding="utf-8").split()
            except (OSError, UnicodeDecodeError):
                names = []
            if names:
                return names
    import timm

    names = list(timm.list_models())
    if path is not None and names:
        import contextlib

        from cnnlab.io import atomic_write_text

        with contextlib.suppress(OSError):  # a read-only cache only costs the next command the timm import
            atomic_write_text(path, "\n".join(names) + "\n")
    return names


def check_timm_name(name: str) -> None:
    """A ModelError (with close matches) unless timm knows the architecture ``name`` (a pretrained
    tag such as ``resnet18.a1_in1k`` is allowed); no model is built."""
    base = name.split(".", 1)[0]
    known = timm_names()
    if base in known:
        return
    close = difflib.get_close_matches(base, sorted(known), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
    raise ModelError(f"unknown timm model {name!r}{hint} (`cnnlab models 'timm/*'` lists them)")


def input_norm(name: str, pretrained: Any = None) -> dict[str, float] | None:
    """The input scaling model ``name`` asks for (``{"mean": 0.0, "std": 1.0}`` for ``transfer``),
    or None when it takes the dataset's own statistics (every other model, timm models too)."""
    registry_name, _ = resolve_model(name, pretrained)
    if registry_name.startswith(TIMM_PREFIX):
        return None
    norm = get_entry(registry_name).input_norm
    return dict(norm) if norm else None


def list_models(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Registered model names matching the fnmatch ``pattern`` (all when None) and ``task``, sorted.

    A pattern starting with ``timm/`` lists timm's architectures instead, e.g. ``"timm/resnet*"``.
    """
    if task is not None and task not in TASKS:
        raise ModelError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
    if pattern and pattern.startswith(TIMM_PREFIX):
        if task == "detect":
            return []
        sub = pattern[len(TIMM_PREFIX):] or "*"
        return [TIMM_PREFIX + n for n in sorted(timm_names()) if fnmatch.fnmatchcase(n, sub)]
    entries = model_entries()
    return [n for n, e in entries.items()
            if (not pattern or fnmatch.fnmatchcase(n, pattern)) and (task is None or e.task == task)]


def cached_table_rows() -> list[dict[str, Any]]:
    """:func:`models_table_rows` (no counts) for every registered model, kept in the user cache keyed by
    cnnlab's version and the model sources (names, sizes, mtimes), so listing models imports no torch
    after the first time (``cnnlab models`` in well under a second)."""
    import contextlib
    import json

    from cnnlab.paths import cache_dir

    path = cache_dir() / f"models-{_sources_key()}.json"
    with contextlib.suppress(OSError, ValueError):
        rows = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(rows, list) and all(isinstance(r, dict) and "name" in r for r in rows):
            return rows
    rows = models_table_rows()
    with contextlib.suppress(OSError):
        from cnnlab.io import atomic_write_text

        atomic_write_text(path, json.dumps(rows))
    return rows


def _sources_key() -> str:
    import hashlib
    from pathlib import Path

    from cnnlab import __version__

    base = Path(__file__).resolve().parent
    h = hashlib.sha1(__version__.encode())
    for p in sorted(base.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(base)}:{st.st_mtime_ns}:{st.st_size};".encode())
    return h.hexdigest()[:16]


def models_table_rows(names: list[str] | None = None, params: bool = False,
                      num_classes: int = 10) -> list[dict[str, Any]]:
    """One row per registered model (name, task, family, input, aliases, description; counts when ``params``).

    Counts are for ``num_classes`` classes at the model's default input, built on the CPU.
    """
    entries = model_entries()
    rows = []
    for name in names if names is not None else list(entries):
        e = get_entry(name)
        row: dict[str, Any] = {"name": e.name, "task": e.task, "family": e.family, "description": e.description,
                               "input": "x".join(str(v) for v in e.input_size), "aliases": list(e.aliases)}
        if params:
            model = create_model(e.name, num_classes=num_classes, in_chans=e.input_size[0],
                                 img_size=e.input_size[1])
            trainable, non_trainable = count_params(model)
            row.update(trainable=trainable, non_trainable=non_trainable,
                       total=trainable + non_trainable, total_short=format_count(trainable + non_trainable))
        rows.append(row)
    return rows


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, img_size: int | None = None,
                 max_params: int | str | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with fresh weights; the one door to every architecture.

    ``name`` is anything :func:`resolve_model` accepts (a registered name, an alias such as
    ``ResNet50V2``, ``timm/<name>``). ``img_size`` None means the model's default. ``max_params`` (int
    or ``"30M"``) refuses a model whose total parameter count (trainable + non-trainable, as Keras
    counts) is over the budget. The model gets ``model.cnnlab_spec`` (plain data, with the registry
    name) from which ``model_from_spec`` rebuilds it.
    """
    registry_name, kwargs = resolve_model(name, model_kwargs=kwargs)
    _check_positive("num_classes", num_classes)
    _check_positive("in_chans", in_chans)
    if img_size is not None:
        _check_positive("img_size", img_size)
    budget = parse_count(max_params) if max_params is not None else None
    plain_kwargs = plain_data(kwargs, other=_not_plain)
    from cnnlab.models.layers import pop_knobs, using_layers

    layers = pop_knobs(kwargs)  # activation / norm / init: one mechanism for every from-scratch model
    whiten = kwargs.pop("whiten", None)

    if registry_name.startswith(TIMM_PREFIX):
        from cnnlab.models.timm_bridge import create_timm_model

        model, img_size = create_timm_model(registry_name[len(TIMM_PREFIX):], num_classes=num_classes,
                                            in_chans=in_chans, img_size=img_size, **kwargs)
    else:
        entry = get_entry(registry_name)
        if img_size is None:
            img_size = entry.input_size[1]
        try:
            with using_layers(layers):
                model = entry.fn(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kwargs)
        except TypeError as e:
            if "unexpected keyword argument" in str(e):
                bad = str(e).split("argument", 1)[1].strip()
                raise ModelError(f"model {name!r} does not accept the option {bad}") from None
            raise
    for knob in ("activation", "norm"):
        if getattr(layers, knob) is not None and knob not in layers.used:
            raise ModelError(f"model {name!r} has fixed layers: the {knob} option applies to cnnlab's "
                             f"from-scratch models ({', '.join(knob_models())})")
    layers.initialise(model)
    if whiten:
        from cnnlab.models.zca import Whitened

        model = Whitened(model, whiten, in_chans, img_size)

    if budget is not None:
        total = sum(count_params(model))
        if total > budget:
            raise ModelError(
                f"model {name!r} has {total:,} parameters ({format_count(total)}), over the budget "
                f"of {budget:,} ({format_count(budget)}) set by max_params"
            )
    model.cnnlab_spec = {
        "name": registry_name,
        "num_classes": int(num_classes),
        "in_chans": int(in_chans),
        "img_size": int(img_size) if img_size is not None else None,
        "kwargs": plain_kwargs,
    }
    return model


def knob_models() -> list[str]:
    """The registered models whose layers follow the activation/norm knobs (``@register_model(knobs=True)``:
    they build their layers through ``cnnlab.models.layers``)."""
    return [name for name, entry in model_entries().items() if entry.knobs]


def model_from_spec(spec: dict[str, Any], max_params: int | str | None = None) -> nn.Module:
    """Rebuild a model (fresh weights) from ``model.cnnlab_spec`` / a checkpoint's ``model_spec``."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ModelError("model spec must be a mapping with at least a 'name'")
    unknown = set(spec) - {"name", "num_classes", "in_chans", "img_size", "kwargs"}
    if unknown:
        raise ModelError(f"model spec has unknown keys: {', '.join(sorted(unknown))}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ModelError("model spec 'kwargs' must be a mapping")
    return create_model(
        spec["name"],
        num_classes=spec.get("num_classes", 10),
        in_chans=spec.get("in_chans", 3),
        img_size=spec.get("img_size"),
        max_params=max_params,
        **kwargs,
    )


def _unknown_message(name: str) -> str:
    _load_scratch()
    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.6)
    close += [a for a in difflib.get_close_matches(alias_key(name), list(_ALIASES), n=3, cutoff=0.7)
              if a not in close]
    if name.split(".", 1)[0] in timm_names():
        close.append(TIMM_PREFIX + name)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (f"unknown model {name!r}{hint} (`cnnlab models` lists them; any timm architecture works "
            f"as timm/<name>)")


def _check_positive(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"{what} must be a positive integer, got {value!r}")


def _not_plain(obj: Any) -> Any:
    """Model options are kept as plain data so the spec survives YAML, JSON and weights_only loads."""
    raise ModelError(f"model option of type {type(obj).__name__} cannot be recorded in the model spec; "
                     "use plain values (numbers, strings, lists)")


__all__ = ["ModelEntry", "TASKS", "TIMM_PREFIX", "alias_key", "check_model", "check_timm_name", "count_params",
           "cached_table_rows", "create_model", "find_entry", "format_count", "get_entry", "input_norm",
           "is_model_name", "knob_models", "list_models", "model_entries", "model_from_spec", "models_table_rows",
           "parse_count", "register_model", "resolve_model",
           "timm_names"]
