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


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> Path:
    """Write a checkpoint dict atomically (format and version default to the classification ones)."""
    data = {"format": FORMAT, "version": VERSION, **ckpt}
    return torch_save_atomic(data, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a cnnlab classification checkpoint; anything else is a one-line UserError."""
    ckpt = torch_load_safe(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not a cnnlab classification checkpoint")
    if int(ckpt.get("version", 0)) > VERSION:
        raise UserError(f"{path}: checkpoint version {ckpt['version']} is newer than this cnnlab ({VERSION})")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise UserError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
    return ckpt


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

