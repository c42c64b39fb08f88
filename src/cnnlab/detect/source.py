"""Where a detector's model comes from: a Darknet cfg+weights pair, an ONNX file, a cnnlab checkpoint,
or a folder holding one of them (with its class names)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import UserError

NAMES_FILES = ("*.names", "names.yaml", "names.yml", "data.yaml", "data.yml", "classes.txt")


@dataclass
class ModelSource:
    """A resolved model: exactly one of (cfg + weights), onnx, checkpoint is set."""

    cfg: Path | None = None
    weights: Path | None = None
    onnx: Path | None = None
    checkpoint: Path | None = None
    names_file: Path | None = None   # names found beside the model (folder sources)

    @property
    def kind(self) -> str:
        return "onnx" if self.onnx else "checkpoint" if self.checkpoint else "darknet"

    def describe(self) -> str:
        if self.onnx:
            return str(self.onnx)
        if self.checkpoint:
            return str(self.checkpoint)
        return f"{self.cfg} + {self.weights}"


def _need_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    return p


def resolve_model_source(cfg: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                         model: str | os.PathLike | None = None) -> ModelSource:
    """Check the given files and return what they are; a missing or ambiguous model is a UserError."""
    if model is not None and (cfg is not None or weights is not None):
        raise UserError("give either --model or --cfg/--weights, not both")
    if model is None:
        if cfg is None and weights is None:
            raise UserError("no model given: pass --cfg and --weights (Darknet) or --model (a .onnx file, "
                            "a detection checkpoint or a folder)")
        if cfg is None or weights is None:
            raise UserError("a Darknet model needs both --cfg and --weights")
        return ModelSource(cfg=_need_file(cfg, "cfg file"), weights=_need_file(weights, "weights file"))
    p = Path(model)
    if p.is_dir():
        return _from_folder(p)
    if not p.is_file():
        raise UserError(f"model not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return ModelSource(onnx=p)
    if suffix in (".pt", ".pth"):
        return ModelSource(checkpoint=p)
    if suffix == ".cfg":
        w = p.with_suffix(".weights")
        if not w.is_file():
            raise UserError(f"no weights beside {p} (expected {w.name}); pass --cfg and --weights")
        return ModelSource(cfg=p, weights=w, names_file=_names_in(p.parent))
    raise UserError(f"unsupported model file {p.name}: expected .onnx, a cnnlab detection checkpoint (.pt), "
                    "a .cfg with its .weights beside it, or a folder")


def _names_in(folder: Path) -> Path | None:
    for pattern in NAMES_FILES:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


def _from_folder(folder: Path) -> ModelSource:
    """A run folder (``weights/best.pt`` / ``last.pt``), or a folder with one .onnx or one cfg+weights pair."""
    for ckpt in (folder / "weights" / "best.pt", folder / "weights" / "last.pt", folder / "best.pt"):
        if ckpt.is_file():
            return ModelSource(checkpoint=ckpt)
    names = _names_in(folder)
    onnx = sorted(folder.glob("*.onnx"))
    cfgs = sorted(folder.glob("*.cfg"))
    weights = sorted(folder.glob("*.weights"))
    if cfgs and weights:
        pairs = [(c, c.with_suffix(".weights")) for c in cfgs if c.with_suffix(".weights").is_file()]
        if len(pairs) == 1:
            return ModelSource(cfg=pairs[0][0], weights=pairs[0][1], names_file=names)
        if len(cfgs) == 1 and len(weights) == 1:
            return ModelSource(cfg=cfgs[0], weights=weights[0], names_file=names)
        raise UserError(f"{folder} holds several cfg/weights files ({', '.join(c.name for c in cfgs)}); "
                        "pass --cfg and --weights")
    if len(onnx) == 1:
        return ModelSource(onnx=onnx[0], names_file=names)
    if len(onnx) > 1:
        raise UserError(f"{folder} holds several .onnx files; pass one with --model")
    raise UserError(f"{folder} holds no detection model (weights/best.pt, a .onnx file, or a .cfg with "
                    "its .weights)")


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading the weights into memory twice)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends for non-ONNX files
        raise UserError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    dims = proto.graph.input[0].type.tensor_type.shape.dim if proto.graph.input else []
    meta["_input_shape"] = json.dumps([d.dim_value if d.HasField("dim_value") else None for d in dims])
    dims = proto.graph.output[0].type.tensor_type.shape.dim if proto.graph.output else []
    meta["_output_shape"] = json.dumps([d.dim_value if d.HasField("dim_value") else None for d in dims])
    return meta
