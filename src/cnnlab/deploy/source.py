"""What to export or benchmark: a run folder, a checkpoint, a registry name or an ``nn.Module``.

Everything becomes a :class:`TorchSource`: the model in eval mode on the CPU, its class names and the
preprocessing the exported file will document.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.deploy.metadata import Preprocess
from cnnlab.errors import UserError


@dataclass
class TorchSource:
    """A PyTorch classifier ready to export: model, classes, preprocessing and where it came from."""

    model: Any  # torch.nn.Module (eval mode, CPU)
    classes: list[str]
    preprocess: Preprocess
    name: str
    spec: dict[str, Any] | None = None
    run_dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        if not self.preprocess.img_size:
            raise UserError(f"{self.name}: unknown input size; pass img_size (e.g. --input 3x32x32)")
        return (self.preprocess.in_chans, self.preprocess.img_size, self.preprocess.img_size)


def is_torchscript(path: str | os.PathLike) -> bool:
    """True when ``path`` is a TorchScript archive (a zip holding ``code/`` and ``constants.pkl``)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def _preprocess_from(d: dict[str, Any] | None, spec: dict[str, Any] | None, *, mean=None, std=None,
                     img_size=None, in_chans=None) -> Preprocess:
    d = dict(d or {})
    spec = spec or {}
    in_chans = in_chans or d.get("in_chans") or spec.get("in_chans") or 3
    img_size = img_size or d.get("img_size") or spec.get("img_size")
    d.update(in_chans=in_chans, img_size=img_size)
    if mean is not None:
        d["mean"] = list(mean)
    if std is not None:
        d["std"] = list(std)
    d.setdefault("mean", [0.5] * int(in_chans))
    d.setdefault("std", [0.5] * int(in_chans))
    return Preprocess.from_dict(d)


def _first_conv_channels(model: Any) -> int | None:
    """Input channels of the first convolution (how many channels a bare module expects)."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return int(m.in_channels)
    return None


def from_module(model: Any, *, classes: list[str] | None = None, mean=None, std=None, img_size=None,
                in_chans=None, num_classes: int | None = None, name: str | None = None) -> TorchSource:
    """Wrap a plain ``nn.Module``; ``model.cnnlab_spec`` (from ``create_model``) fills in what it can."""
    spec = getattr(model, "cnnlab_spec", None)
    if in_chans is None and not (spec or {}).get("in_chans"):
        in_chans = len(mean) if mean is not None else _first_conv_channels(model)
    pre = _preprocess_from(None, spec, mean=mean, std=std, img_size=img_size, in_chans=in_chans)
    n = (spec or {}).get("num_classes") or num_classes
    classes = list(classes) if classes is not None else [str(i) for i in range(n)] if n else []
    return TorchSource(model=model.eval().cpu(), classes=classes, preprocess=pre,
                       name=name or (spec or {}).get("name") or type(model).__name__, spec=spec)


def from_registry(name: str, *, num_classes: int = 10, in_chans: int | None = None,
                  img_size: int | None = None, **kwargs: Any) -> TorchSource:
    """A registry model with random weights (for benchmarks): ``create_model(name, ...)``."""
    from cnnlab.models import create_model, get_entry

    if in_chans is None and not name.startswith("timm/"):
        in_chans = get_entry(name).input_size[0]
    model = create_model(name, num_classes=num_classes, in_chans=in_chans or 3, img_size=img_size, **kwargs)
    return from_module(model, name=name)


def from_run(source: str | os.PathLike) -> TorchSource:
    """A run folder or checkpoint file, loaded as ``cnnlab.load`` does (EMA weights when present)."""
    from cnnlab.runs import checkpoint_path, read_run_config

    p = Path(source)
    ckpt_file = p if p.is_file() else checkpoint_path(p, "best")
    try:
        from cnnlab.api import load  # the classification API, when present
    except ImportError:
        load = None
    if load is not None:
        loaded = load(ckpt_file)
        spec = getattr(loaded, "spec", None)
        pre = _preprocess_from({"mean": list(loaded.mean), "std": list(loaded.std),
                                "img_size": loaded.img_size, "in_chans": loaded.in_chans}, spec)
        model, classes = loaded.model, list(loaded.classes)
        config = dict(getattr(loaded, "config", None) or {})
    else:
        from cnnlab.engine.checkpoint import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(ckpt_file)
        spec = ckpt["model_spec"]
        model = model_from_checkpoint(ckpt, source=str(ckpt_file))
        pre = _preprocess_from(ckpt.get("preprocess"), spec)
        n = spec.get("num_classes") or 0
        classes = [str(c) for c in ckpt.get("classes") or range(n)]
        config = dict(ckpt.get("config") or {})
    run_dir = None
    for parent in [ckpt_file.parent, *ckpt_file.parents]:
        if (parent / "config.yaml").is_file():
            run_dir = parent
            break
    if run_dir is not None and not config:
        config = read_run_config(run_dir)
    name = (spec or {}).get("name") or ckpt_file.stem
    return TorchSource(model=model.eval().cpu(), classes=classes, preprocess=pre, name=name, spec=spec,
                       run_dir=run_dir, config=config)


def load_torch_source(source: Any, **options: Any) -> TorchSource:
    """Resolve any exportable source; ``options`` (classes, mean, std, img_size, in_chans) apply to modules."""
    import torch

    if isinstance(source, TorchSource):
        return source
    if isinstance(source, torch.nn.Module):
        return from_module(source, **options)
    p = Path(str(source))
    if p.suffix.lower() == ".onnx":
        raise UserError(f"{p} is already an ONNX model; export needs a run folder, checkpoint or model name")
    if p.is_file() and is_torchscript(p):
        raise UserError(f"{p} is a TorchScript file; export from the run folder or checkpoint instead")
    if p.is_dir() or p.is_file():
        return from_run(p)
    if p.suffix or os.sep in str(source):
        raise UserError(f"not found: {source} (expected a run folder, a checkpoint or a model name)")
    return from_registry(str(source), **{k: v for k, v in options.items()
                                         if k in ("num_classes", "in_chans", "img_size")})
