"""The model registry: ``@register_model`` functions and ``create_model``, the one door (timm style).

A model function has the signature ``fn(num_classes=10, in_chans=3, img_size=32, **kw) -> nn.Module``.
Every module in ``cnnlab/models/scratch/`` is imported on first use, so a new file there registers
its models by itself. ``timm/<name>`` builds any timm architecture (random init).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnnlab.errors import ModelError, UserError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

TIMM_PREFIX = "timm/"


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder, family (module name), one-line description, default input."""

    name: str
    fn: Callable[..., Any]
    family: str
    description: str
    input_size: tuple[int, int, int]  # (C, H, W) the model is usually trained on


_REGISTRY: dict[str, ModelEntry] = {}
_SCRATCH_LOADED = False


def register_model(fn: Callable[..., Any] | None = None, *,
                   input_size: tuple[int, int, int] | None = None) -> Any:
    """Register a model function under its name.

    Use as ``@register_model`` or ``@register_model(input_size=(1, 28, 28))`` to state the input the
    model is usually used with (default: the function's ``in_chans``/``img_size`` defaults).
    """

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        name = f.__name__
        if name in _REGISTRY and _REGISTRY[name].fn is not f:
            raise ValueError(f"model {name!r} is registered twice")
        params = inspect.signature(f).parameters
        default_in = params["in_chans"].default if "in_chans" in params else 3
        default_size = params["img_size"].default if "img_size" in params else 32
        doc = (inspect.getdoc(f) or "").strip().split("\n\n")[0].split()
        _REGISTRY[name] = ModelEntry(
            name=name,
            fn=f,
            family=f.__module__.rsplit(".", 1)[-1],
            description=" ".join(doc),
            input_size=tuple(input_size) if input_size else (int(default_in), int(default_size),
                                                              int(default_size)),
        )
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
    """All registered (from-scratch) models by name."""
    _load_scratch()
    return dict(sorted(_REGISTRY.items()))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name is a ModelError listing close matches."""
    entries = model_entries()
    if name not in entries:
        raise ModelError(_unknown_message(name, list(entries)))
    return entries[name]


def is_model_name(name: str) -> bool:
    """True when ``name`` is a registered model or a ``timm/<name>`` reference."""
    return name.startswith(TIMM_PREFIX) or name in model_entries()


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names matching the fnmatch ``pattern`` (all when None), sorted.

    A pattern starting with ``timm/`` lists timm's architectures instead, e.g. ``"timm/resnet*"``.
    """
    if pattern and pattern.startswith(TIMM_PREFIX):
        from cnnlab.models.timm_bridge import timm_model_names

        sub = pattern[len(TIMM_PREFIX):] or "*"
        return [TIMM_PREFIX + n for n in timm_model_names() if fnmatch.fnmatchcase(n, sub)]
    names = list(model_entries())
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def models_table_rows(names: list[str] | None = None, params: bool = False,
                      num_classes: int = 10) -> list[dict[str, Any]]:
    """One row per registered model (name, family, input, description; counts when ``params``).

    Counts are for ``num_classes`` classes at the model's default input, built on the CPU.
    """
    entries = model_entries()
    rows = []
    for name in names if names is not None else list(entries):
        e = get_entry(name)
        row: dict[str, Any] = {"name": name, "family": e.family, "description": e.description,
                               "input": "x".join(str(v) for v in e.input_size)}
        if params:
            model = create_model(name, num_classes=num_classes, in_chans=e.input_size[0],
                                 img_size=e.input_size[1])
            trainable, non_trainable = count_params(model)
            row.update(trainable=trainable, non_trainable=non_trainable,
                       total=trainable + non_trainable, total_short=format_count(trainable + non_trainable))
        rows.append(row)
    return rows


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, img_size: int | None = None,
                 max_params: int | str | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with fresh weights; the one door to every architecture.

    ``img_size`` None means the model's default. ``max_params`` (int or ``"30M"``) refuses a model
    whose total parameter count (trainable + non-trainable, as Keras counts) is over the budget.
    The model gets ``model.cnnlab_spec`` (plain data) from which ``model_from_spec`` rebuilds it.
    """
    if not isinstance(name, str) or not name:
        raise ModelError("model name must be a non-empty string")
    _check_positive("num_classes", num_classes)
    _check_positive("in_chans", in_chans)
    if img_size is not None:
        _check_positive("img_size", img_size)
    budget = parse_count(max_params) if max_params is not None else None
    plain_kwargs = _plain(kwargs)

    if name.startswith(TIMM_PREFIX):
        from cnnlab.models.timm_bridge import create_timm_model

        model, img_size = create_timm_model(name[len(TIMM_PREFIX):], num_classes=num_classes,
                                            in_chans=in_chans, img_size=img_size, **kwargs)
    else:
        entry = get_entry(name)
        if img_size is None:
            img_size = entry.input_size[1]
        try:
            model = entry.fn(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kwargs)
        except TypeError as e:
            if "unexpected keyword argument" in str(e):
                bad = str(e).split("argument", 1)[1].strip()
                raise ModelError(f"model {name!r} does not accept the option {bad}") from None
            raise

    if budget is not None:
        trainable, non_trainable = count_params(model)
        total = trainable + non_trainable
        if total > budget:
            raise ModelError(
                f"model {name!r} has {total:,} parameters ({format_count(total)}), over the budget "
                f"of {budget:,} ({format_count(budget)}) set by max_params"
            )
    model.cnnlab_spec = {
        "name": name,
        "num_classes": int(num_classes),
        "in_chans": int(in_chans),
        "img_size": int(img_size) if img_size is not None else None,
        "kwargs": plain_kwargs,
    }
    return model


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


def count_params(model: nn.Module) -> tuple[int, int]:
    """``(trainable, non_trainable)`` element counts, matching Keras' ``model.summary()``.

    Trainable: parameters with ``requires_grad``. Non-trainable: frozen parameters plus the
    floating-point buffers kept in the state_dict (BatchNorm running mean/var, Keras' "moving"
    statistics). Integer buffers such as ``num_batches_tracked`` do not count. Shared tensors count once.
    """
    seen: set[int] = set()
    trainable = non_trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if p.requires_grad:
            trainable += p.numel()
        else:
            non_trainable += p.numel()
    for _, module in model.named_modules():
        persistent = set(module._buffers) - set(getattr(module, "_non_persistent_buffers_set", ()))
        for bname in persistent:
            b = module._buffers[bname]
            if b is None or id(b) in seen or not b.is_floating_point():
                continue
            seen.add(id(b))
            non_trainable += b.numel()
    return trainable, non_trainable


_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}


def parse_count(value: int | float | str) -> int:
    """Parse a count such as ``30M``, ``1.5m``, ``500K``, ``2G``, ``30_000_000`` or ``1,000`` to an int."""
    if isinstance(value, bool):
        raise UserError(f"invalid count {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise UserError(f"invalid count {value!r}: must be a non-negative number")
        return int(value)
    text = str(value).strip().upper().replace("_", "").replace(",", "")
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGB]?)", text)
    if not m:
        raise UserError(f"invalid count {value!r}: expected a number with an optional K/M/G suffix, e.g. 30M")
    return int(round(float(m.group(1)) * _SUFFIX[m.group(2)]))


def format_count(n: int) -> str:
    """Short human form of a count: 890410 -> '890.4K', 11173962 -> '11.17M'."""
    if n >= 10**9:
        return f"{n / 10**9:.2f}G"
    if n >= 10**6:
        return f"{n / 10**6:.2f}M"
    if n >= 10**3:
        return f"{n / 10**3:.1f}K"
    return str(n)


def _unknown_message(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    try:
        import timm

        if timm.is_model(name):
            close.append(TIMM_PREFIX + name)
    except ImportError:  # pragma: no cover
        pass
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (f"unknown model {name!r}{hint} (`cnnlab models` lists them; any timm architecture works "
            f"as timm/<name>)")


def _check_positive(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"{what} must be a positive integer, got {value!r}")


def _plain(obj: Any) -> Any:
    """Kwargs as plain data (lists for tuples) so the spec survives YAML, JSON and weights_only loads."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ModelError(f"model option of type {type(obj).__name__} cannot be recorded in the model spec; "
                     "use plain values (numbers, strings, lists)")
