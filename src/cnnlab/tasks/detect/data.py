"""The datasets of a detector run: training and validation splits, validation images preprocessed as
``Detector`` does, and the anchors a run trains with."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.config import DetectTrainConfig
from cnnlab.detect.train.dataset import to_targets
from cnnlab.detect.types import DetectionSample
from cnnlab.errors import DataError, UserError


def _load_split(spec: str, split: str, names: list[str] | None = None):
    from cnnlab.detect.data import load_detection_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_detection_data(spec, split=split, names=names, warn=False)


def load_train_val(cfg: DetectTrainConfig, log=print):
    """The training and validation datasets of ``cfg.data`` (validation falls back to training)."""
    train = _load_split(cfg.data, "train")
    if train.num_boxes == 0:
        raise DataError(f"{cfg.data}: the training split has {len(train)} images but no labelled boxes (its "
                        f"{train.format} label files hold none; `cnnlab data check {cfg.data}` lists them)")
    split = cfg.val or "val"
    try:
        val = _load_split(cfg.data, split, train.names)
    except DataError as e:
        if cfg.val is not None or f"no '{split}' split" not in str(e):
            raise
        log(f"warning: {cfg.data} has no '{split}' split; validating on the training images")
        val = train
    if list(val.names) != list(train.names):
        raise DataError(f"{cfg.data}: train and {split} class names differ")
    return train, val


class ValidationSet:
    """Validation images preprocessed as ``Detector`` does (letterbox, RGB, /255), with their targets."""

    def __init__(self, samples: list[DetectionSample], imgsz: int, cache: bool = True) -> None:
        self.samples = samples
        self.imgsz = imgsz
        self.cache = cache
        self._images: dict[int, np.ndarray] = {}

    def image(self, i: int) -> np.ndarray:
        from cnnlab.detect.images import read_image

        if i in self._images:
            return self._images[i]
        img = read_image(self.samples[i].image_path)
        if self.cache:
            self._images[i] = img
        return img

    def batches(self, batch: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, list[Any]]]:
        from cnnlab.detect.processing import preprocess_image

        for start in range(0, len(self.samples), batch):
            idx = list(range(start, min(start + batch, len(self.samples))))
            blobs, metas, rows = [], [], []
            for k, i in enumerate(idx):
                blob, meta = preprocess_image(self.image(i), (self.imgsz, self.imgsz), True)
                s = self.samples[i]
                b = s.boxes.astype(np.float32).copy()
                b[:, [0, 2]] = b[:, [0, 2]] * meta.scale[0] + meta.pad[0]
                b[:, [1, 3]] = b[:, [1, 3]] * meta.scale[1] + meta.pad[1]
                rows.append(to_targets(b, s.class_ids, k, self.imgsz, self.imgsz))
                blobs.append(blob)
                metas.append(meta)
            yield idx, torch.from_numpy(np.concatenate(blobs)), torch.from_numpy(np.concatenate(rows)), metas


BPR_MIN = 0.98   # anchors 'check': the cfg's anchors stay when this share of the boxes has a fitting anchor
                 # (YOLOv5's rule: an anchor within 4x of the box's width and height)


def resolve_anchors(cfg: DetectTrainConfig, train_samples: list[DetectionSample], log,
                    pretrained_head: bool = False) -> list[list[float]] | None:
    """The anchors a run trains with: None (the cfg's), k-means (``auto``; ``check`` when the cfg's
    best possible recall on the boxes is below `BPR_MIN` and the head starts fresh), or the list given.
    k-means is deterministic (sorted boxes, seeded), and says so in one line.

    ``pretrained_head``: the head's box rows come from trained weights (a fine-tune); ``check`` then keeps
    the anchors they were trained with (new anchors would make those rows predict wrong sizes: measured,
    Yolo-Fastest on the person set started at mAP50 0.13 with k-means anchors).
    """
    if cfg.anchors is None:
        return None
    if isinstance(cfg.anchors, str):
        if cfg.anchors not in ("auto", "check"):
            raise UserError(f"anchors must be a list of [w, h] pairs, 'auto' or 'check', got {cfg.anchors!r}")
        from cnnlab.detect.train.anchors import (
            anchor_fitness,
            best_possible_recall,
            dataset_wh,
            kmeans_anchors,
        )
        from cnnlab.detect.train.model import is_anchor_free

        if is_anchor_free(cfg.model):
            if cfg.anchors == "auto":
                log(f"anchors: {cfg.model} is anchor-free; 'auto' has nothing to fit")
            return None

        current = _cfg_anchors(cfg)
        if not current:   # a run of an anchor-free model: nothing to check or fit
            return None
        n = len(current)
        wh = dataset_wh(train_samples, cfg.imgsz)
        if cfg.anchors == "check":
            bpr = best_possible_recall(wh, np.asarray(current, np.float64))
            if bpr >= BPR_MIN or len(wh) < n:
                log(f"anchors: the cfg's fit the data (best possible recall {bpr:.3f} >= {BPR_MIN}); kept")
                return None
            if pretrained_head:
                log(f"anchors: the cfg's kept for its pretrained head (best possible recall {bpr:.3f} < {BPR_MIN}; "
                    "--anchors auto would cluster new ones and retrain the box rows)")
                return None
            why = f"the cfg's best possible recall {bpr:.3f} < {BPR_MIN}"
        else:
            why = "anchors auto"
        anchors = kmeans_anchors(wh, n, cfg.seed)
        new = anchor_fitness(wh, anchors)
        log(f"anchors: k-means ({why}; seed {cfg.seed}, deterministic): {np.round(anchors).astype(int).tolist()} "
            f"best possible recall {best_possible_recall(wh, anchors):.3f}, mean best IoU {new['mean_iou']:.3f}")
        return [[float(w), float(h)] for w, h in anchors]
    return [[float(v) for v in a] for a in cfg.anchors]


def _cfg_anchors(cfg: DetectTrainConfig) -> list[list[float]]:
    """The anchors (network pixels) of the model ``cfg`` names: a native architecture, a cfg, a run (none
    for a run of an anchor-free model)."""
    from cnnlab.detect.train.model import is_native, native_sections

    if is_native(cfg.model):
        secs = native_sections(cfg.model, 1, cfg.imgsz, cfg.width_mult)
    else:
        secs = _model_sections(cfg.model)
        if secs is None:
            return []
    yolo = [s for s in secs if s.type == "yolo"]
    if not yolo:
        raise UserError(f"{cfg.model}: no [yolo] layer, so no anchors to check")
    flat = yolo[0].get_floats("anchors", [])
    return [[flat[i], flat[i + 1]] for i in range(0, len(flat) - 1, 2)]


def _model_sections(spec: str):
    from cnnlab.darknet.cfg import parse_cfg_text, read_cfg

    p = Path(spec)
    if p.suffix.lower() == ".cfg":
        return read_cfg(p)
    from cnnlab.sources import resolve

    model = resolve(p, task="detect").model
    if getattr(model, "anchor_free", False):   # a cnnlab-nano run: no cfg, no anchors
        return None
    return parse_cfg_text(model.to_cfg())
