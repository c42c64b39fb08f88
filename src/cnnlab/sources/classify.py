"""Classifier loaders of the resolver: checkpoints and run folders, ONNX, TorchScript, model names, modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnlab.errors import UserError
from cnnlab.sources.kinds import CLASSIFY, Located
from cnnlab.sources.resolved import Resolved

# A randomly initialised model has no training statistics: inputs are scaled to [-1, 1].
DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5
ONNX_RUNTIMES = (None, "onnxruntime", "onnx")


def load_classifier(loc: Located, *, runtime: str | None = None, device: str = "cpu", use_ema: bool = True,
                    classes: Sequence[str] | None = None, num_classes: int | None = None,
                    in_chans: int | None = None, img_size: int | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    name: str | None = None, seed: int = 0) -> Resolved:
    """Load what :func:`identify` found as a classifier (see :func:`cnnlab.sources.resolve`)."""
    _check_runtime(loc, runtime)
    if loc.kind == "onnx":
        r = _onnx(loc)
    elif loc.kind == "torchscript":
        r = _torchscript(loc)
    elif loc.kind in ("classify-run", "classify-checkpoint"):
        r = _checkpoint(loc, device, use_ema)
    elif loc.kind == "model-name":
        r = _model_name(loc, device, num_classes, in_chans, img_size, mean, std, seed)
    else:
        r = _module(loc, in_chans, img_size, mean, std, name)
    if classes is not None:
        r.classes = [str(c) for c in classes]
    return r


def _check_runtime(loc: Located, runtime: str | None) -> None:
    if loc.kind == "onnx":
        if runtime not in ONNX_RUNTIMES:
            raise UserError(f"an .onnx model runs with --runtime onnxruntime, not {runtime!r}")
    elif runtime in ("onnxruntime", "onnx"):
        raise UserError(f"runtime onnxruntime needs an .onnx model, got {loc.describe()}")
    elif runtime not in ((None, "torch", "torchscript") if loc.kind == "torchscript" else (None, "torch")):
        raise UserError(f"runtime {runtime!r} needs an .onnx model; use torch for checkpoints and runs")


def _device(device: str) -> Any:
    from cnnlab.devices import resolve_device

    return resolve_device(device)


def _checkpoint(loc: Located, device: str, use_ema: bool) -> Resolved:
    from cnnlab.deploy.metadata import Preprocess
    from cnnlab.engine.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(loc.path)
    model = model_from_checkpoint(ckpt, str(loc.path), use_ema=use_ema).to(_device(device))
    spec = ckpt["model_spec"]
    pre = dict(ckpt.get("preprocess") or {})
    in_chans = int(pre.get("in_chans") or spec.get("in_chans", 3))
    pre.update(in_chans=in_chans, img_size=pre.get("img_size") or spec.get("img_size"),
               mean=list(pre.get("mean") or [0.0] * in_chans), std=list(pre.get("std") or [1.0] * in_chans))
    classes = [str(c) for c in ckpt.get("classes") or range(spec.get("num_classes") or 0)]
    config = dict(ckpt.get("config") or {})
    if not config and loc.run_dir is not None and (loc.run_dir / "config.yaml").is_file():
        from cnnlab.runs import read_run_config

        config = read_run_config(loc.run_dir)
    return Resolved(CLASSIFY, loc.kind, model.eval(), "torch", classes, str(loc.path),
                    str(spec.get("name") or loc.path.stem), path=loc.path, run_dir=loc.run_dir, spec=spec,
                    config=config, metrics=dict(ckpt.get("metrics") or {}), preprocessing=Preprocess.from_dict(pre))


def _onnx(loc: Located) -> Resolved:
    from cnnlab.deploy.runtime import load_onnx_classifier

    clf = load_onnx_classifier(loc.path)
    if clf.metadata is None and len(clf.session.get_outputs()[0].shape) == 3:
        raise UserError(f"{loc.path} is a detector (a 3-D YOLO output), not a classifier "
                        "(use cnnlab detect / detect-eval / stream)")
    spec = clf.spec if isinstance(clf.spec, dict) else None
    return Resolved(CLASSIFY, "onnx", clf, "onnxruntime", list(clf.classes), str(loc.path),
                    str((spec or {}).get("name") or loc.path.stem), path=loc.path, spec=spec,
                    preprocessing=clf.preprocess_spec, defaults_assumed=clf.defaults_assumed)


def _torchscript(loc: Located) -> Resolved:
    from cnnlab.deploy.export import load_torchscript
    from cnnlab.deploy.metadata import Preprocess

    module, meta = load_torchscript(loc.path)
    meta = meta or {}
    return Resolved(CLASSIFY, "torchscript", module, "torchscript", [str(c) for c in meta.get("classes") or []],
                    str(loc.path), loc.path.name, path=loc.path, spec=meta.get("model_spec"),
                    preprocessing=Preprocess.from_dict(meta.get("preprocess") or {}),
                    defaults_assumed=not meta.get("preprocess"))


def _model_name(loc: Located, device: str, num_classes: int | None, in_chans: int | None,
                img_size: int | None, mean: Sequence[float] | None, std: Sequence[float] | None,
                seed: int) -> Resolved:
    """A registered model with random weights (seeded, without touching the global RNG)."""
    import torch

    from cnnlab.models import create_model, get_entry

    name = str(loc.name)
    if not name.startswith("timm/"):
        default = get_entry(name).input_size
        in_chans = in_chans or default[0]
        img_size = img_size or default[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(name, num_classes=num_classes or 10, in_chans=in_chans or 3, img_size=img_size)
    spec = model.cnnlab_spec
    pre = default_preprocess(spec["in_chans"], spec.get("img_size") or _pretrained_size(model), mean, std)
    return Resolved(CLASSIFY, "model-name", model.eval().to(_device(device)), "torch", [], name, name,
                    spec=spec, preprocessing=pre, defaults_assumed=mean is None)


def _module(loc: Located, in_chans: int | None, img_size: int | None, mean: Sequence[float] | None,
            std: Sequence[float] | None, name: str | None) -> Resolved:
    """A module as it is (mode and device untouched); ``model.cnnlab_spec`` fills in what it can."""
    model = loc.module
    spec = getattr(model, "cnnlab_spec", None)
    s = spec or {}
    chans = in_chans or s.get("in_chans") or (len(mean) if mean is not None else None) or _first_conv_channels(model)
    pre = default_preprocess(chans or 3, img_size or s.get("img_size") or _pretrained_size(model), mean, std)
    return Resolved(CLASSIFY, "module", model, "torch", [], name or s.get("name") or type(model).__name__,
                    name or s.get("name") or type(model).__name__, spec=spec, preprocessing=pre,
                    defaults_assumed=mean is None)


def default_preprocess(in_chans: int, img_size: int | None, mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None) -> Any:
    """Preprocessing for a model without training statistics: mean 0.5, std 0.5 per channel."""
    from cnnlab.deploy.metadata import Preprocess

    c = int(in_chans)
    return Preprocess(mean=tuple(float(v) for v in (mean if mean is not None else [DEFAULT_MEAN] * c)),
                      std=tuple(float(v) for v in (std if std is not None else [DEFAULT_STD] * c)),
                      img_size=int(img_size) if img_size else None, in_chans=c)


def _first_conv_channels(model: Any) -> int | None:
    """Input channels of the first convolution (how many channels a bare module expects)."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            return int(m.in_channels)
    return None


def _pretrained_size(model: Any) -> int | None:
    """The input size a timm model was pretrained at (its ``pretrained_cfg``), if it says."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    return int(size[-1]) if size else None
