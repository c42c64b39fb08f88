"""The network a detector training run starts from: a native architecture, a cfg, or a trained run,
re-headed for the dataset's classes; optional Darknet ``.weights`` transferred where shapes fit."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import torch

from cnnlab.darknet.cfg import Section, read_cfg
from cnnlab.darknet.model import DarknetModel
from cnnlab.errors import UserError


def set_classes(sections: list[Section], num_classes: int, imgsz: int | None = None,
                anchors: list[list[float]] | None = None) -> list[Section]:
    """A copy of a YOLO cfg predicting ``num_classes`` (each [yolo] layer and the conv feeding it),
    at input size ``imgsz`` and with new ``anchors`` when given."""
    secs = [Section(s.type, dict(s.options), s.line) for s in sections]
    if imgsz is not None:
        secs[0].options["width"] = secs[0].options["height"] = str(int(imgsz))
    yolo = [i for i, s in enumerate(secs) if s.type == "yolo"]
    if any(s.type == "region" for s in secs):
        raise UserError("training needs [yolo] output layers; [region] (YOLOv2) cfgs run for inference only "
                        "(detect, detect-eval, stream, export-detector)")
    if not yolo:
        raise UserError("the cfg has no [yolo] layers: not a YOLO detector")
    for i in yolo:
        sec = secs[i]
        if anchors is not None:
            total = len(sec.get_floats("anchors", [])) // 2
            if len(anchors) != total:
                raise UserError(f"the cfg uses {total} anchors, {len(anchors)} were given")
            sec.options["anchors"] = ",  ".join(f"{int(round(w))},{int(round(h))}" for w, h in anchors)
        mask = sec.get_ints("mask", list(range(sec.get_int("num", 1))))
        sec.options["classes"] = str(int(num_classes))
        prev = secs[i - 1]
        if prev.type not in ("convolutional", "conv"):
            raise UserError(f"cfg line {sec.line}: the layer before [yolo] must be convolutional")
        prev.options["filters"] = str(len(mask) * (num_classes + 5))
    return secs


def native_name(name: str) -> str | None:
    """The registry name of a native detector (``yolov3``, ``yolov3-tiny`` or an alias such as
    ``yolov3_tiny``), or None when ``name`` is no registered detector (a cfg, a run folder...)."""
    from cnnlab.models import find_entry

    entry = find_entry(name)
    return entry.name if entry is not None and entry.task == "detect" else None


def is_native(name: str) -> bool:
    """True when ``name`` is a detector of the model registry (``cnnlab models`` lists them)."""
    return native_name(name) is not None


def is_anchor_free(name: str) -> bool:
    """True when ``name`` is a registered anchor-free detector (``cnnlab-nano``): no cfg, no anchors."""
    native = native_name(name)
    return native is not None and native not in ("yolov3", "yolov3-tiny")


def training_criterion(model: Any, cfg: Any) -> Any:
    """The loss a detector trains with: the model's own (``TaskAlignedLoss`` for anchor-free models,
    gains = its defaults x the ratio of ``box_gain``/``cls_gain`` to DetectTrainConfig's defaults) or
    ``YoloLoss`` for the Darknet family."""
    if getattr(model, "anchor_free", False):
        from cnnlab.config import DetectTrainConfig
        from cnnlab.detect.train.af_loss import TaskAlignedLoss

        base = {f.name: f.default for f in dataclasses.fields(DetectTrainConfig)}
        return TaskAlignedLoss(model, box_gain=7.5 * cfg.box_gain / base["box_gain"],
                               cls_gain=0.5 * cfg.cls_gain / base["cls_gain"])
    from cnnlab.detect.train.loss import YoloLoss

    return YoloLoss(model, cfg.box_loss, cfg.box_gain, cfg.obj_gain, cfg.cls_gain, cfg.iou_thresh,
                    cfg.ignore_thresh, imgsz=cfg.imgsz)


def build_anchor_free(spec: str, num_classes: int, imgsz: int, width_mult: float = 1.0,
                      weights: str | os.PathLike | None = None, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """A registered anchor-free detector (``cnnlab-nano``) for ``num_classes``; ``weights``: a detection
    run folder / checkpoint of the same architecture to start from (tensors whose shapes fit)."""
    from cnnlab.models import create_model

    torch.manual_seed(seed)
    model = create_model(native_name(spec), num_classes=num_classes, img_size=imgsz, width_mult=width_mult)
    info: dict[str, Any] = {"model": spec}
    if weights is not None:
        from cnnlab.sources import resolve

        if Path(weights).suffix.lower() in (".weights", ".cfg", ".onnx"):
            raise UserError(f"--weights {weights}: {spec} starts from a {spec} run folder or .pt checkpoint "
                            "(Darknet .weights fit the Darknet models only)")
        src = resolve(Path(weights), task="detect")
        if src.kind not in ("detect-run", "detect-checkpoint") or not getattr(src.model, "anchor_free", False):
            raise UserError(f"{weights}: {spec} starts from a {spec} run folder or checkpoint, not "
                            f"{src.describe()}")
        n, total, _ = transfer_state(model, src.model.state_dict())
        info.update(init_from=str(src.path), init_names=list(src.classes), transferred=f"{n}/{total}")
    return model, info


def native_sections(name: str, num_classes: int, imgsz: int, width_mult: float = 1.0,
                    anchors: list[list[float]] | None = None) -> list[Section]:
    """The cfg of a registered detector (``yolov3`` / ``yolov3-tiny``, built by ``cnnlab.darknet.yolo``)."""
    from cnnlab.darknet.yolo import build_sections

    try:
        return build_sections(native_name(name) or name, num_classes=num_classes, img_size=imgsz,
                              width_mult=width_mult, anchors=[tuple(a) for a in anchors] if anchors else None)
    except ValueError as e:
        raise UserError(f"{name}: {e}") from None


def transfer_state(dst: torch.nn.Module, src_state: dict[str, torch.Tensor]) -> tuple[int, int, set[str]]:
    """Copy every tensor of ``src_state`` whose name and shape match into ``dst``.

    Returns (tensors copied, tensors of ``dst``, names of the copied tensors).
    """
    own = dst.state_dict()
    copied = {k for k, v in src_state.items() if k in own and own[k].shape == v.shape}
    own.update({k: src_state[k].detach().to(own[k].dtype) for k in copied})
    dst.load_state_dict(own)
    return len(copied), len(own), copied


def load_weights_flexible(model: DarknetModel, path: Path) -> int | None:
    """Load a Darknet weights file into ``model``: the whole net, or only its first layers when the
    file is a truncated backbone (``darknet53.conv.74``-style). Returns the cutoff (None: all)."""
    from cnnlab.darknet.weights import expected_count, file_values, load_darknet_weights

    have = file_values(path)
    if have == expected_count(model):
        load_darknet_weights(model, path)
        return None
    for cutoff in range(len(model.layers) - 1, 0, -1):
        if expected_count(model, cutoff) == have:
            load_darknet_weights(model, path, cutoff=cutoff)
            return cutoff
    raise UserError(f"{path}: its {have} float32 values fit neither the whole cfg ({expected_count(model)}) "
                    "nor any prefix of its layers (wrong cfg for these weights? pass the cfg they were trained "
                    "with as --model)")


def _source_model_for_weights(spec: str, num_classes: int, imgsz: int, width_mult: float, weights: Path
                              ) -> DarknetModel:
    """The network ``weights`` were saved from: the cfg as given, or a native architecture with the
    number of classes the file fits (the dataset's, COCO's 80 or VOC's 20)."""
    from cnnlab.darknet.weights import expected_count, file_values

    if not is_native(spec):
        return DarknetModel(read_cfg(spec), source=spec)
    have = file_values(weights)
    candidates = []
    for nc in dict.fromkeys((num_classes, 80, 20)):
        m = DarknetModel(native_sections(spec, nc, imgsz, width_mult), source=spec)
        if expected_count(m) == have:
            return m
        candidates.append(m)
    return candidates[0]  # a backbone-only file: load_weights_flexible finds the prefix


def init_head_biases(model: DarknetModel, skip: set[str] = frozenset()) -> None:
    """YOLOv5's prior for fresh heads: objectness bias for ~8 objects per 640 image, class bias 0.6/nc."""
    for i in model.yolo_indices:
        conv = model.layers[i - 1].conv
        if conv.bias is None or f"layers.{i - 1}.conv.bias" in skip:
            continue
        y = model.layers[i]
        stride = model.width / model.shapes[i].w
        with torch.no_grad():
            b = conv.bias.view(y.num_anchors, -1)
            b[:, 4] += math.log(8 / (640 / stride) ** 2)
            b[:, 5:] += math.log(0.6 / max(y.classes - 0.99, 0.01))


def transfer_head_classes(model: DarknetModel, src_state: dict[str, torch.Tensor], src_sections: list[Section],
                          src_names: list[str] | None, names: list[str] | None) -> dict[str, Any]:
    """Re-heading for new classes: copy into each [yolo] head conv of ``model`` the rows of the source
    head (``src_state``/``src_sections``, e.g. COCO's 80 classes) that keep their meaning: per anchor the
    box and objectness rows, and the class row of every class whose name the source also has (``person``
    -> ``person``). Heads whose anchor count or input channels differ are left as initialised.

    Returns ``{"heads": heads copied, "matched": [names kept], "of": source class count}``.
    """
    src_yolo = [i for i, s in enumerate(src_sections[1:]) if s.type == "yolo"]
    dst_yolo = list(model.yolo_indices)
    matched: list[str] = []
    heads = 0
    pos = {n: k for k, n in enumerate(src_names or [])}
    pairs = [(k, pos[n]) for k, n in enumerate(names or []) if n in pos]
    for si, di in zip(src_yolo, dst_yolo, strict=False):
        w_key, b_key = f"layers.{si - 1}.conv.weight", f"layers.{si - 1}.conv.bias"
        if w_key not in src_state or b_key not in src_state:
            continue
        conv = model.layers[di - 1].conv
        y = model.layers[di]
        sw, sb = src_state[w_key], src_state[b_key]
        a = y.num_anchors
        if conv.bias is None or sw.shape[1:] != conv.weight.shape[1:] or sw.shape[0] % a:
            continue
        src_nc = sw.shape[0] // a - 5
        if src_nc < 1:
            continue
        dw, db = conv.weight.data.view(a, 5 + y.classes, -1), conv.bias.data.view(a, 5 + y.classes)
        vw, vb = sw.reshape(a, 5 + src_nc, -1), sb.reshape(a, 5 + src_nc)
        with torch.no_grad():
            dw[:, :5] = vw[:, :5]
            db[:, :5] = vb[:, :5]
            for k, j in pairs:
                if j < src_nc:
                    dw[:, 5 + k] = vw[:, 5 + j]
                    db[:, 5 + k] = vb[:, 5 + j]
        heads += 1
    if heads:
        matched = [names[k] for k, _ in pairs]
    return {"heads": heads, "matched": matched, "of": len(src_names or [])}


def _source_names(src_model: DarknetModel | None, known: list[str] | None) -> list[str] | None:
    """Class names of the network weights come from: those recorded (a run), else COCO's for an
    80-class head (Darknet's COCO weights); None when unknown."""
    if known:
        return list(known)
    if src_model is None:
        return None
    if int(src_model.num_classes) == 80:
        from cnnlab.detect.names import COCO80

        return list(COCO80)
    return None


def build_training_model(spec: str, num_classes: int, imgsz: int, width_mult: float = 1.0,
                         anchors: list[list[float]] | None = None, weights: str | os.PathLike | None = None,
                         seed: int = 0, names: list[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """The model to train and how it was initialised (``info``: source, transferred tensors, head classes
    kept by name: see `transfer_head_classes`): a ``DarknetModel``, or an anchor-free detector
    (``cnnlab-nano``, ``weights`` then a run of it). ``names``: the dataset's class names."""
    torch.manual_seed(seed)
    if is_anchor_free(spec):
        return build_anchor_free(spec, num_classes, imgsz, width_mult, weights, seed)
    info: dict[str, Any] = {"model": spec}
    src_state: dict[str, torch.Tensor] | None = None
    src_sections: list[Section] | None = None
    src_names: list[str] | None = None
    path = Path(spec)
    if is_native(spec):
        sections = native_sections(spec, num_classes, imgsz, width_mult, anchors)
    elif path.suffix.lower() == ".cfg":
        if not path.is_file():
            raise UserError(f"cfg file not found: {path}")
        sections = set_classes(read_cfg(path), num_classes, imgsz, anchors)
    elif path.is_dir() or path.suffix.lower() in (".pt", ".pth"):
        from cnnlab.sources import resolve

        src = resolve(path, task="detect")
        if src.kind not in ("detect-run", "detect-checkpoint"):
            raise UserError(f"{path}: expected a detection run folder or checkpoint (weights/best.pt)")
        trained = src.model
        if getattr(trained, "anchor_free", False):
            if weights is not None:
                raise UserError("--weights (a Darknet file) starts a yolov3/yolov3-tiny or .cfg model; a run "
                                "folder already brings its weights")
            spec_name = trained.cnnlab_spec["name"]
            kw = trained.cnnlab_spec.get("kwargs", {})
            model, info = build_anchor_free(spec_name, num_classes, imgsz, float(kw.get("width_mult", 1.0)),
                                            path, seed)
            info["model"] = spec
            return model, info
        sections = set_classes(trained.sections, num_classes, imgsz, anchors)
        src_state = trained.state_dict()
        src_sections, src_names = trained.sections, list(src.classes)
        info["init_from"] = str(src.path)
        info["init_names"] = list(src.classes)
    else:
        from cnnlab.models import list_models

        known = ", ".join(list_models(task="detect"))
        raise UserError(f"model {spec!r} not found: expected {known}, a .cfg file, a detection run folder "
                        "or a .pt checkpoint")
    model = DarknetModel(sections, source=spec)
    if weights is not None:
        if src_state is not None:
            raise UserError("--weights (a Darknet file) starts a yolov3/yolov3-tiny or .cfg model; a run folder "
                            "already brings its weights")
        wpath = Path(weights)
        if not wpath.is_file():
            raise UserError(f"weights file not found: {wpath}")
        source_model = _source_model_for_weights(spec, num_classes, imgsz, width_mult, wpath)
        cutoff = load_weights_flexible(source_model, wpath)
        src_state = source_model.state_dict()
        info.update(weights=str(wpath), weights_cutoff=cutoff)
        if cutoff is not None:  # only the first `cutoff` layers hold real values
            src_state = {k: v for k, v in src_state.items() if int(k.split(".")[1]) < cutoff}
        else:
            src_sections, src_names = source_model.sections, _source_names(source_model, None)
    copied: set[str] = set()
    if src_state is not None:
        n, total, copied = transfer_state(model, src_state)
        info["transferred"] = f"{n}/{total}"
        info["head_pretrained"] = any(f"layers.{i - 1}.conv.weight" in copied for i in model.yolo_indices)
    init_head_biases(model, skip=copied)
    if src_state is not None and src_sections is not None and names is not None:
        head = transfer_head_classes(model, {k: v for k, v in src_state.items() if k not in copied},
                                     src_sections, src_names, names)
        if head["heads"]:
            kept = ", ".join(head["matched"][:8]) + (" ..." if len(head["matched"]) > 8 else "")
            info["head_classes"] = (f"box and objectness rows of {head['heads']} head(s) kept; "
                                    f"{len(head['matched'])} of {len(names)} classes kept by name from the "
                                    f"{head['of'] or 'source'}-class head" + (f" ({kept})" if kept else ""))
            info["head_matched"] = head["matched"]
            info["head_pretrained"] = True
    return model, info


def freeze_layers(model: Any, n: int) -> int:
    """Stop gradients in the first ``n`` layers (their BN statistics stay fixed too); returns tensors frozen."""
    params = [p for layer in list(model.layers)[:n] for p in layer.parameters()]
    for p in params:
        p.requires_grad_(False)
    return len(params)
