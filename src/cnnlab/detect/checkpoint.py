"""cnnlab detection checkpoints: a Darknet model as plain data, loadable with ``weights_only=True``.

Format (``torch.save`` of a dict)::

    {"format": "cnnlab.detect", "version": 2,
     "cfg": "<Darknet cfg text>", "model": state_dict, "ema": state_dict | None,
     (anchor-free detectors such as cnnlab-nano: "model_spec" {name, num_classes, kwargs...} instead of "cfg")
     "names": [...], "imgsz": [w, h], "letterbox": bool, ...the engine's training state}

Inference uses the EMA weights when there are any (version 1 files kept them in "model").
A two-stage (torchvision) detector has ``"torchvision": {"arch", "num_classes", "imgsz"}`` instead of
``"cfg"`` and comes back as a ``cnnlab.detect.twostage.TwoStageDetector``.

Detection run folders keep it as ``weights/best.pt``; ``Detector(model=<run folder>)`` reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.errors import UserError

FORMAT = "cnnlab.detect"
VERSION = 2


def save_detector_checkpoint(path: str | os.PathLike, model, names: list[str] | None = None,
                             imgsz: tuple[int, int] | None = None, letterbox: bool = True,
                             extra: dict | None = None) -> Path:
    """Write ``model`` (a ``DarknetModel``) with its cfg and class names, atomically."""
    from cnnlab.io import torch_save_atomic

    ckpt = {"format": FORMAT, "version": VERSION, "cfg": model.to_cfg(),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "names": list(names or [str(i) for i in range(model.num_classes)]),
            "imgsz": list(imgsz or (model.width, model.height)), "letterbox": bool(letterbox),
            **(extra or {})}
    return torch_save_atomic(ckpt, path)


def load_detector_checkpoint(path: str | os.PathLike):
    """Rebuild the model of a detection checkpoint; returns ``(model, names, imgsz, letterbox)``."""
    from cnnlab.darknet.cfg import parse_cfg_text
    from cnnlab.darknet.model import DarknetModel
    from cnnlab.engine.checkpoint import check_checkpoint
    from cnnlab.io import torch_load_safe

    ckpt = torch_load_safe(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        fmt = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        shown = repr(fmt) if isinstance(fmt, str) else type(fmt).__name__
        raise UserError(f"{path}: not a cnnlab detection checkpoint (format {shown[:60]})")
    check_checkpoint(ckpt, path)
    if "torchvision" in ckpt:
        from cnnlab.detect.twostage import TwoStageDetector

        model = TwoStageDetector.from_spec(ckpt["torchvision"])
        model.source = str(path)
    elif ckpt.get("model_spec") is not None:   # a registered (anchor-free) detector, e.g. cnnlab-nano
        from cnnlab.models import model_from_spec

        try:
            model = model_from_spec(ckpt["model_spec"])
        except (TypeError, ValueError, KeyError) as e:
            raise UserError(f"{path}: cannot rebuild its model_spec ({e})") from None
        if not getattr(model, "anchor_free", False):
            raise UserError(f"{path}: its model_spec names {ckpt['model_spec'].get('name')!r}, not a detector")
        model.source = str(path)
    else:
        model = DarknetModel(parse_cfg_text(ckpt["cfg"], source=str(path)), source=str(path))
    state = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    own = model.state_dict()
    missing, unexpected = [k for k in own if k not in state], [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        raise UserError(f"{path}: weights do not match its cfg ({len(missing)} missing, "
                        f"{len(unexpected)} unexpected, {len(shapes)} of another shape"
                        + (f", e.g. {shapes[0]}" if shapes else "") + ")")
    model.load_state_dict(state, strict=True)
    imgsz = tuple(ckpt.get("imgsz") or (model.width, model.height))
    return model.eval(), list(ckpt.get("names") or []), imgsz, bool(ckpt.get("letterbox", True))


def check_detector_fields(ckpt: dict, path: str | os.PathLike) -> None:
    """The fields only detection checkpoints have (the engine's are checked by ``check_checkpoint``)."""
    from cnnlab.engine.checkpoint import check_version, malformed

    check_version(ckpt, path, VERSION)
    spec = ckpt.get("model_spec")
    body = "torchvision" if "torchvision" in ckpt else "model_spec" if spec is not None else "cfg"
    missing = [k for k in (body, "model") if k not in ckpt]
    if missing:
        raise UserError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
    if "torchvision" in ckpt:
        _check_two_stage_spec(ckpt["torchvision"], path)
    elif spec is not None:
        if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)
                and isinstance(spec.get("num_classes"), int) and isinstance(spec.get("kwargs", {}), dict)):
            raise malformed(path, "model_spec", "a cnnlab model spec (name, num_classes, kwargs)", spec)
    elif not isinstance(ckpt["cfg"], str) or not ckpt["cfg"].strip():
        raise malformed(path, "cfg", "the Darknet cfg text", ckpt["cfg"])
    names = ckpt.get("names")
    if names is not None and not (isinstance(names, list | tuple) and all(isinstance(n, str) for n in names)):
        raise malformed(path, "names", "a list of class names", names)
    imgsz = ckpt.get("imgsz")
    if imgsz is not None and not (isinstance(imgsz, list | tuple) and len(imgsz) == 2
                                  and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                          for v in imgsz)):
        raise malformed(path, "imgsz", "[width, height] in pixels", imgsz)
    if "letterbox" in ckpt and not isinstance(ckpt["letterbox"], bool):
        raise malformed(path, "letterbox", "true or false", ckpt["letterbox"])


def _check_two_stage_spec(spec: object, path: str | os.PathLike) -> None:
    from cnnlab.detect.twostage import ARCHS
    from cnnlab.engine.checkpoint import malformed

    ok = (isinstance(spec, dict) and spec.get("arch") in ARCHS and isinstance(spec.get("num_classes"), int)
          and not isinstance(spec.get("num_classes"), bool) and 1 <= spec["num_classes"] <= 100_000
          and isinstance(spec.get("imgsz"), list | tuple) and len(spec["imgsz"]) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and 32 <= v <= 8192 for v in spec["imgsz"]))
    if not ok:
        raise malformed(path, "torchvision", f"{{arch: one of {', '.join(ARCHS)}, num_classes, imgsz}}", spec)
