"""Turn what a user names (a module, a registered model name, a run folder or checkpoint) into a model
plus the preprocessing it expects."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError

# A randomly initialised model has no training statistics: inputs are scaled to [-1, 1].
DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5


@dataclass
class ModelSource:
    """A model (run folders and names load in eval mode) and how to feed it (the checkpoint contract's ``preprocess`` keys)."""

    model: Any
    preprocess: dict[str, Any]            # mean, std (per channel, [0, 1] scale), img_size, in_chans
    label: str                            # short name for titles and file names
    classes: list[str] | None = None
    run_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Put ``model`` in eval mode for the duration and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def default_preprocess(in_chans: int, img_size: int) -> dict[str, Any]:
    """Preprocessing for an untrained model: mean 0.5, std 0.5 per channel."""
    return {"mean": [DEFAULT_MEAN] * in_chans, "std": [DEFAULT_STD] * in_chans,
            "img_size": int(img_size), "in_chans": int(in_chans)}


def load_source(source: Any, num_classes: int = 10, in_chans: int | None = None,
                img_size: int | None = None, seed: int = 0) -> ModelSource:
    """Resolve ``source``: an ``nn.Module``, a model name (random init, seeded), or a run folder /
    checkpoint file (through ``cnnlab.api.load``)."""
    from torch import nn

    if isinstance(source, ModelSource):
        return source
    if isinstance(source, nn.Module):
        spec = getattr(source, "cnnlab_spec", None) or {}
        c = in_chans or spec.get("in_chans") or 3
        s = img_size or spec.get("img_size") or 32
        return ModelSource(source, default_preprocess(c, s), spec.get("name", type(source).__name__))
    if _is_loaded_model(source):
        return _from_loaded(source, Path(str(getattr(source, "source", "model"))))
    if not isinstance(source, (str, os.PathLike)):
        raise UserError(f"expected a model, a model name, a run folder or a checkpoint, got "
                        f"{type(source).__name__}")
    text = str(source)
    path = Path(text)
    if path.exists():
        return _load_run(path)
    from cnnlab.errors import ModelError
    from cnnlab.models import create_model, get_entry, is_model_name

    if not is_model_name(text):
        if any(ch in text for ch in "/\\") or path.suffix:
            raise UserError(f"no such run folder or checkpoint: {text}")
        try:
            get_entry(text)
        except ModelError as e:
            raise ModelError(f"no run folder or checkpoint named {text!r}, and {e}") from None
    import torch

    if not text.startswith("timm/"):
        default = get_entry(text).input_size
        in_chans = in_chans or default[0]
        img_size = img_size or default[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(text, num_classes=num_classes, in_chans=in_chans or 3, img_size=img_size)
    spec = model.cnnlab_spec
    return ModelSource(model.eval(), default_preprocess(spec["in_chans"], spec["img_size"] or 224), text)


def _load_run(path: Path) -> ModelSource:
    try:
        from cnnlab.api import load
    except ImportError as e:  # pragma: no cover - api.py is written by another part of the project
        raise UserError(f"cannot load {path}: cnnlab.api is not available ({e})") from None
    return _from_loaded(load(path), path)


def _is_loaded_model(obj: Any) -> bool:
    """True for ``cnnlab.api.LoadedModel`` (checked by shape, so this module does not import the API)."""
    return all(hasattr(obj, a) for a in ("model", "mean", "std", "img_size", "in_chans", "classes"))


def _from_loaded(loaded: Any, path: Path) -> ModelSource:
    if getattr(loaded, "runtime", "torch") != "torch":
        raise UserError(f"{path}: inspecting layers needs a PyTorch model (a run folder or .pt checkpoint), "
                        f"not a {loaded.runtime} model")
    spec = loaded.spec if isinstance(loaded.spec, dict) else {}
    img_size = loaded.img_size or spec.get("img_size") or 224
    pre = {"mean": list(loaded.mean), "std": list(loaded.std), "img_size": int(img_size),
           "in_chans": int(loaded.in_chans)}
    run_dir = path if path.is_dir() else (path.parent.parent if path.parent.name == "weights" else None)
    return ModelSource(loaded.model.eval(), pre, str(spec.get("name", path.stem)),
                       classes=list(loaded.classes or []) or None, run_dir=run_dir, extra={"loaded": loaded})
