"""Checkpoints: plain data written atomically, loaded with ``weights_only`` (a checkpoint runs no code).

Format (``weights/best.pt``, ``weights/last.pt``)::

    {"format": "cnnlab.classify", "version": 1, "model_spec": {...}, "model": state_dict,
     "ema": state_dict | None, "optimizer": ..., "scheduler": ..., "epoch": completed epochs,
     "rng": {...}, "config": {...}, "classes": [...], "preprocess": {...}, "metrics": {...}}
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ModelError, UserError
from cnnlab.io import torch_load_safe, torch_save_atomic

FORMAT = "cnnlab.classify"
VERSION = 1
REQUIRED = ("format", "version", "model_spec", "model")
# checkers of the task-specific fields of other tasks' formats ("cnnlab.<task>" -> fn(ckpt, path)); a task
# module registers its own when imported (tasks sit above the engine)
FORMAT_CHECKERS: dict[str, Any] = {}


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> Path:
    """Write a checkpoint dict atomically (format and version default to the classification ones)."""
    data = {"format": FORMAT, "version": VERSION, **ckpt}
    return torch_save_atomic(data, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a cnnlab classification checkpoint; anything else is a one-line UserError."""
    ckpt = torch_load_safe(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not a cnnlab classification checkpoint")
    check_checkpoint(ckpt, path)
    return ckpt


# -- validation: every field a checkpoint reader uses has the type it expects, or one UserError line ----

def check_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike, resumable: bool = False) -> None:
    """Check the fields of a loaded checkpoint (classification or detection, by its ``format``).

    ``resumable`` also requires the training state (optimizer, scheduler, epoch). A field of the wrong
    type (``version: "1"``, ``epoch: 2.5``, a model that is not a dict of tensors...) is a UserError
    naming the file and the field, so no reader ever converts or indexes a malformed value.
    """
    fmt = ckpt.get("format")
    if fmt == FORMAT:
        check_version(ckpt, path, VERSION)
        missing = [k for k in REQUIRED if k not in ckpt]
        if missing:
            raise UserError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
        _check_classify_fields(ckpt, path)
    elif fmt == "cnnlab.detect":
        from cnnlab.detect.checkpoint import check_detector_fields

        check_detector_fields(ckpt, path)
    elif fmt in FORMAT_CHECKERS:
        FORMAT_CHECKERS[fmt](ckpt, path)
    else:
        raise UserError(f"{path}: not a cnnlab checkpoint (format {_short(fmt)})")
    _check_engine_fields(ckpt, path, resumable)


def check_version(ckpt: dict[str, Any], path: str | os.PathLike, newest: int) -> int:
    if "version" not in ckpt:
        raise UserError(f"{path}: incomplete checkpoint (missing version)")
    version = ckpt["version"]
    if not _is_int(version) or version < 1:
        raise malformed(path, "version", "a positive integer", version)
    if version > newest:
        raise UserError(f"{path}: checkpoint version {version} is newer than this cnnlab reads ({newest})")
    return version


def _check_classify_fields(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    spec = ckpt["model_spec"]
    if not isinstance(spec, dict):
        raise malformed(path, "model_spec", "a mapping", spec)
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise malformed(path, "model_spec.name", "a model name", spec.get("name"))
    for key in ("num_classes", "in_chans"):
        if key in spec and not (_is_int(spec[key]) and spec[key] >= 1):
            raise malformed(path, f"model_spec.{key}", "a positive integer", spec[key])
    if spec.get("img_size") is not None and not (_is_int(spec["img_size"]) and spec["img_size"] >= 1):
        raise malformed(path, "model_spec.img_size", "a positive integer or null", spec["img_size"])
    if spec.get("kwargs") is not None and not _is_str_dict(spec["kwargs"]):
        raise malformed(path, "model_spec.kwargs", "a mapping with string keys", spec["kwargs"])
    classes = ckpt.get("classes")
    if classes is not None:
        if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
            raise malformed(path, "classes", "a list of class names", classes)
        n = spec.get("num_classes")
        if n is not None and len(classes) != n:
            raise UserError(f"{path}: malformed checkpoint ({len(classes)} class names for a model with "
                            f"{n} classes)")
    pre = ckpt.get("preprocess")
    if pre is not None:
        if not _is_str_dict(pre):
            raise malformed(path, "preprocess", "a mapping", pre)
        for key in ("mean", "std"):
            v = pre.get(key)
            if v is not None and not (isinstance(v, list | tuple) and all(_is_real(x) for x in v)):
                raise malformed(path, f"preprocess.{key}", "a list of numbers", v)
        for key in ("in_chans", "resize"):
            v = pre.get(key)
            if v is not None and not (_is_int(v) and v >= 1):
                raise malformed(path, f"preprocess.{key}", "a positive integer", v)
        size = pre.get("img_size")
        sizes = size if isinstance(size, list | tuple) and size else [size]
        if size is not None and not all(_is_int(x) and x >= 1 for x in sizes):
            raise malformed(path, "preprocess.img_size", "a positive integer", size)
        if "scale" in pre and not _is_real(pre["scale"]):
            raise malformed(path, "preprocess.scale", "a number", pre["scale"])
        for key in ("channel_order", "interpolation", "layout"):
            if key in pre and not isinstance(pre[key], str):
                raise malformed(path, f"preprocess.{key}", "a string", pre[key])
    if "phase" in ckpt and not (_is_int(ckpt["phase"]) and ckpt["phase"] in (1, 2)):
        raise malformed(path, "phase", "1 or 2", ckpt["phase"])


def _check_engine_fields(ckpt: dict[str, Any], path: str | os.PathLike, resumable: bool) -> None:
    """The weights and the training state the engine reads back (checked when present; ``resumable``:
    the ones a resume needs must be there)."""
    if not is_state_dict(ckpt.get("model")):
        raise malformed(path, "model", "a state dict (names -> tensors)", ckpt.get("model"))
    if ckpt.get("ema") is not None and not is_state_dict(ckpt["ema"]):
        raise malformed(path, "ema", "a state dict (names -> tensors) or null", ckpt["ema"])
    if resumable:
        missing = [k for k in ("optimizer", "scheduler", "epoch") if k not in ckpt]
        if missing:
            raise UserError(f"{path}: not a resumable checkpoint (missing {', '.join(missing)})")
        if ckpt["optimizer"] is None or ckpt["scheduler"] is None:  # e.g. an imported model
            raise UserError(f"{path}: not a resumable checkpoint (it holds no optimizer state); start a new "
                            f"run from its weights with --weights {path}")
        for key, what in (("history", "a list of mappings"), ("callbacks", "a mapping of mappings"),
                          ("ema_updates", "a non-negative integer")):  # read back with no default for null
            if key in ckpt and ckpt[key] is None:
                raise malformed(path, key, what, None)
    if "world_size" in ckpt and not (_is_int(ckpt["world_size"]) and ckpt["world_size"] >= 1):
        raise malformed(path, "world_size", "a positive integer", ckpt["world_size"])
    for key in ("epoch", "global_step", "ema_updates"):
        if key in ckpt and not (_is_int(ckpt[key]) and ckpt[key] >= 0):
            raise malformed(path, key, "a non-negative integer", ckpt[key])
    if "train_time" in ckpt and not (_is_real(ckpt["train_time"]) and ckpt["train_time"] >= 0):
        raise malformed(path, "train_time", "a non-negative number", ckpt["train_time"])
    opt = ckpt.get("optimizer")
    if opt is not None and not (isinstance(opt, dict) and isinstance(opt.get("state"), dict)
                                    and isinstance(opt.get("param_groups"), list)
                                    and all(isinstance(g, dict) for g in opt["param_groups"])):
        raise malformed(path, "optimizer", "an optimizer state dict (state, param_groups)", opt)
    for key in ("scheduler", "scaler", "config", "metrics", "callbacks", "task_state", "init"):
        if ckpt.get(key) is not None and not _is_str_dict(ckpt[key]):
            raise malformed(path, key, "a mapping or null", ckpt[key])
    if isinstance(ckpt.get("callbacks"), dict) and not all(isinstance(v, dict) for v in ckpt["callbacks"].values()):
        raise malformed(path, "callbacks", "a mapping of mappings", ckpt["callbacks"])
    history = ckpt.get("history")
    if history is not None and not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
        raise malformed(path, "history", "a list of mappings", ckpt["history"])
    if ckpt.get("rng") is not None:
        _check_rng(ckpt["rng"], path)


def _check_rng(rng: Any, path: str | os.PathLike) -> None:
    """What :func:`set_rng_state` restores, shaped exactly as :func:`rng_state` writes it (the sizes of
    this Python's, NumPy's and torch's generator states), so a resume never fails inside a setstate."""
    if not _is_str_dict(rng):
        raise malformed(path, "rng", "a mapping or null", rng)
    py = rng.get("python")
    if py is not None:
        version, internal, _ = random.getstate()
        if not (isinstance(py, list | tuple) and len(py) == 3 and _is_int(py[0]) and py[0] == version
                and isinstance(py[1], list | tuple) and len(py[1]) == len(internal)
                and all(_is_int(x) and 0 <= x < 2**32 for x in py[1]) and py[1][-1] <= len(internal) - 1
                and (py[2] is None or _is_real(py[2]))):
            raise malformed(path, "rng.python", f"a Python random state (version {version})", py)
    npr = rng.get("numpy")
    if npr is not None:
        keys = npr.get("keys") if isinstance(npr, dict) else None
        if not (isinstance(npr, dict) and npr.get("name") == "MT19937" and isinstance(keys, torch.Tensor)
                and keys.shape == (624,) and keys.dtype in (torch.int64, torch.int32)
                and bool(((keys >= 0) & (keys < 2**32)).all())
                and _is_int(npr.get("pos")) and 0 <= npr["pos"] <= 624
                and _is_int(npr.get("has_gauss")) and npr["has_gauss"] in (0, 1)
                and _is_real(npr.get("gauss"))):
            raise malformed(path, "rng.numpy", "a NumPy MT19937 state", npr)
    t = rng.get("torch")
    if t is not None and not (isinstance(t, torch.Tensor) and t.dtype == torch.uint8
                              and t.shape == torch.get_rng_state().shape):
        raise malformed(path, "rng.torch", "a torch CPU generator state", t)
    cuda = rng.get("cuda")
    if cuda is not None and not (isinstance(cuda, list | tuple) and all(
            isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.ndim == 1 for x in cuda)):
        raise malformed(path, "rng.cuda", "a list of uint8 tensors", cuda)


def malformed(path: str | os.PathLike, field: str, what: str, value: Any) -> UserError:
    """``<path>: malformed checkpoint ('epoch' must be a non-negative integer, found str '2')``."""
    return UserError(f"{path}: malformed checkpoint ('{field}' must be {what}, found "
                     f"{type(value).__name__} {_short(value)})")


def is_state_dict(value: Any) -> bool:
    """A ``{name: tensor}`` mapping (what ``load_state_dict`` accepts)."""
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                           for k, v in value.items())


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str_dict(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


def _short(value: Any, limit: int = 40) -> str:
    """A short, cheap description of a value for a message (no repr of big containers or tensors)."""
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}"
    if isinstance(value, dict | list | tuple | set):
        return f"of length {len(value)}"
    if isinstance(value, str | bytes):
        value = value[:limit]
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = " ".join(repr(value).split()) if isinstance(value, str | bytes | int | float | None) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_spec(spec: dict[str, Any]) -> str:
    """``lenet5 (10 classes, 1 channel, 28 px)``."""
    parts = [f"{spec.get('num_classes')} classes", f"{spec.get('in_chans')} channels"]
    if spec.get("img_size"):
        parts.append(f"{spec['img_size']} px")
    if spec.get("kwargs"):
        parts.append(", ".join(f"{k}={v}" for k, v in spec["kwargs"].items()))
    return f"{spec.get('name')} ({', '.join(parts)})"


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], spec: dict[str, Any] | None = None,
                 source: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` strictly; a mismatch is one ModelError line, not a torch traceback."""
    target = getattr(model, "cnnlab_spec", None)
    if spec and target and (spec.get("name"), spec.get("in_chans"), spec.get("num_classes")) != (
            target.get("name"), target.get("in_chans"), target.get("num_classes")):
        raise ModelError(f"{source} is for {describe_spec(spec)}, but the model is {describe_spec(target)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        missing, unexpected, shapes = _diff(model.state_dict(), state)
        what = describe_spec(spec) if spec else "another architecture"
        model_name = describe_spec(target) if target else type(model).__name__
        detail = "; ".join(x for x in (missing, unexpected, shapes) if x) or str(e).splitlines()[0]
        raise ModelError(f"{source} is for {what}, which does not fit {model_name}: {detail}") from None


def _diff(own: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> tuple[str, str, str]:
    missing = [k for k in own if k not in other]
    unexpected = [k for k in other if k not in own]
    shapes = [k for k in own if k in other and tuple(own[k].shape) != tuple(other[k].shape)]

    def fmt(label: str, keys: list[str]) -> str:
        if not keys:
            return ""
        more = f" (+{len(keys) - 2} more)" if len(keys) > 2 else ""
        return f"{len(keys)} {label} ({', '.join(keys[:2])}{more})"

    return fmt("missing keys", missing), fmt("unexpected keys", unexpected), fmt("shape mismatches", shapes)


def model_from_checkpoint(ckpt: dict[str, Any], source: str = "checkpoint", use_ema: bool = True) -> nn.Module:
    """Rebuild the architecture from ``model_spec`` and load the (EMA, if present) weights."""
    from cnnlab.models import model_from_spec

    spec = ckpt["model_spec"]
    model = model_from_spec(spec)
    state = ckpt.get("ema") if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    load_weights(model, state, spec, source)
    return model.eval()


# -- RNG state as plain data (tensors, ints, tuples) so weights_only loading accepts it ------------

def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as plain data."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                             s["gauss"]))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

