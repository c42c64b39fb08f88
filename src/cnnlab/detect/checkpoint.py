"""cnnlab detection checkpoints: a Darknet model as plain data, loadable with ``weights_only=True``.

Format (``torch.save`` of a dict)::

    {"format": "cnnlab.detect", "version": 2,
     "cfg": "<Darknet cfg text>", "model": state_dict, "ema": state_dict | None,
     "names": [...], "imgsz": [w, h], "letterbox": bool, ...the engine's training state}

Inference uses the EMA weights when there are any (version 1 files kept them in "model").

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
    from cnnlab.io import torch_load_safe

    ckpt = torch_load_safe(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        fmt = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{path}: not a cnnlab detection checkpoint (format {fmt!r})")
    if int(ckpt.get("version", 0)) > VERSION:
        raise UserError(f"{path}: checkpoint version {ckpt['version']} is newer than this cnnlab reads")
    model = DarknetModel(parse_cfg_text(ckpt["cfg"], source=str(path)), source=str(path))
    state = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{path}: weights do not match its cfg ({len(missing)} missing, "
                        f"{len(unexpected)} unexpected tensors)")
    imgsz = tuple(ckpt.get("imgsz") or (model.width, model.height))
    return model.eval(), list(ckpt.get("names") or []), imgsz, bool(ckpt.get("letterbox", True))
