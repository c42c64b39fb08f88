"""Detector loaders of the resolver: detection checkpoints and run folders, Darknet cfg + weights, ONNX files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cnnlab.errors import UserError
from cnnlab.sources.kinds import DETECT, Located, onnx_metadata
from cnnlab.sources.resolved import Resolved


def load_detector(loc: Located, classes: Sequence[str] | str | Any = None) -> Resolved:
    """Load what :func:`identify` found as a detector; ``classes`` (names, or a names file) replace the
    model's own. A Darknet model comes back as a ``DarknetModel`` (eval, CPU); an ONNX file is read for
    what it says about itself (names, input size, letterbox, layout) and opened by the detector backend."""
    from cnnlab.detect.names import parse_names

    r = _onnx(loc) if loc.kind == "onnx" else _darknet(loc)
    if classes is not None:
        r.classes = parse_names(classes)
    elif loc.names_file is not None:
        r.classes = parse_names(loc.names_file)
    if r.num_classes is not None and len(r.classes) != r.num_classes:
        raise UserError(f"{len(r.classes)} class names given but the model predicts {r.num_classes} classes")
    return r


def default_names(num_classes: int | None) -> list[str]:
    """COCO's 80 names for an 80-class (or unknown) model, else the class ids."""
    from cnnlab.detect.names import COCO80

    return list(COCO80) if num_classes in (None, 80) else [str(i) for i in range(num_classes)]


def _darknet(loc: Located) -> Resolved:
    from cnnlab.detect.types import ImageSize

    names: list[str] = []
    letterbox = None
    if loc.kind == "module":
        model = loc.module
    elif loc.kind == "darknet":
        from cnnlab.darknet.model import load_darknet

        model = load_darknet(loc.path, loc.weights)
    else:
        from cnnlab.detect.checkpoint import load_detector_checkpoint

        model, names, imgsz, letterbox = load_detector_checkpoint(loc.path)
    two_stage = bool(getattr(model, "two_stage", False))   # a torchvision Faster R-CNN (detect.twostage)
    if not (two_stage or getattr(model, "anchor_free", False) or model.head_indices):
        raise UserError(f"{loc.describe()}: the network has no [yolo] or [region] layer, so it is not a detector")
    size = ImageSize(int(imgsz[0]), int(imgsz[1])) if loc.kind.startswith("detect-") else \
        ImageSize(model.width, model.height)
    config: dict[str, Any] = {}
    if loc.run_dir is not None and (loc.run_dir / "config.yaml").is_file():
        from cnnlab.runs import read_run_config

        config = read_run_config(loc.run_dir)
    n = int(model.num_classes)
    source = str(loc.path) if loc.path is not None else str(getattr(model, "source", "") or type(model).__name__)
    label = loc.run_dir.name if loc.run_dir is not None else loc.path.stem if loc.path is not None \
        else type(model).__name__
    return Resolved(DETECT, loc.kind, model, "torch", list(names) or default_names(n), source, label,
                    path=loc.path, run_dir=loc.run_dir, config=config, imgsz=size, letterbox=letterbox,
                    num_classes=n, weights=loc.weights, output_format="boxes" if two_stage else "")


def darknet_files_only(loc: Located, classes: Sequence[str] | str | Any = None, reason: str = "") -> Resolved:
    """A Darknet cfg + weights that cnnlab does not build (``reason``), described from the cfg alone for a
    backend that reads the files itself (OpenCV): names, input size and class count, no model."""
    from cnnlab.darknet.cfg import read_cfg
    from cnnlab.darknet.model import MAX_DIM
    from cnnlab.detect.names import parse_names
    from cnnlab.detect.types import ImageSize

    sections = read_cfg(loc.path)
    heads = [s for s in sections if s.type in ("yolo", "region")]
    if not heads:
        raise UserError(f"{loc.describe()}: the network has no [yolo] or [region] layer, so it is not a detector")
    n = heads[-1].get_int("classes", 20, 1, MAX_DIM)
    net = sections[0]
    size = ImageSize(net.get_int("width", 416, 1, MAX_DIM), net.get_int("height", 416, 1, MAX_DIM))
    names = parse_names(classes) if classes is not None else \
        parse_names(loc.names_file) if loc.names_file is not None else default_names(n)
    if len(names) != n:
        raise UserError(f"{len(names)} class names given but the model predicts {n} classes")
    return Resolved(DETECT, loc.kind, None, "opencv", list(names), str(loc.path), loc.path.stem, path=loc.path,
                    imgsz=size, num_classes=n, weights=loc.weights, output_format="darknet",
                    config={"cnnlab_unsupported": reason})


def _onnx(loc: Located) -> Resolved:
    """Names, fixed input size, letterbox and output layout recorded in (or implied by) an ONNX file."""
    from cnnlab.detect.names import parse_names
    from cnnlab.detect.processing import guess_format
    from cnnlab.detect.types import ImageSize

    path = loc.path
    meta = onnx_metadata(path)
    if "cnnlab" in meta:
        raise UserError(f"{path} is a classifier (cnnlab classification metadata), not a detector "
                        "(use cnnlab evaluate / predict)")
    shape = json.loads(meta.get("_input_shape", "[]"))
    size = ImageSize(int(shape[3]), int(shape[2])) if len(shape) == 4 and shape[2] and shape[3] else None
    names = None
    if "names" in meta:
        try:
            names = parse_names(_loads_names(meta["names"]), f"{path} metadata")
        except UserError:
            names = None
    letterbox = meta["letterbox"].strip().lower() in ("true", "1") if "letterbox" in meta else None
    fmt = meta.get("cnnlab_format", "")
    out_shape = json.loads(meta.get("_output_shape", "[]"))
    n = len(names) if names else None
    if n is None and len(out_shape) == 3 and all(out_shape[1:]):
        # a foreign export without names: the class count follows from the output layout
        fmt = fmt or guess_format(tuple(out_shape))
        n = out_shape[2] - 5 if fmt == "yolov5" else out_shape[1] - 4
        n = n if n >= 1 else None
    return Resolved(DETECT, "onnx", None, "onnx", names or default_names(n), str(path), path.stem, path=path,
                    imgsz=size, fixed_imgsz=size is not None, letterbox=letterbox, num_classes=n,
                    output_format=fmt)


def _loads_names(text: str) -> Any:
    """Names metadata: JSON (cnnlab) or a Python-dict literal (Ultralytics writes ``{0: 'person', ...}``)."""
    import ast

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UserError("unreadable names metadata") from None
