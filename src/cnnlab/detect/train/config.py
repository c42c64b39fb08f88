"""``DetectTrainConfig``: every option of a detector training run (Ultralytics/Darknet names)."""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import UserError

BOX_LOSSES = ("mse", "iou", "giou", "diou", "ciou")


@dataclass
class DetectTrainConfig:
    """Options of ``train_detector`` / ``cnnlab detect-train`` (recorded in the run's config.yaml)."""

    # data and model
    data: str = ""                       # data.yaml | YOLO folder | COCO json | VOC folder
    val: str | None = None               # validation split name in data.yaml (default: val, else train)
    model: str = "yolov3-tiny"           # yolov3-tiny | yolov3 | path/to.cfg | run folder | checkpoint .pt
    weights: str | None = None           # Darknet .weights to start from (transfer: shapes that fit)
    width_mult: float = 1.0              # channel multiplier of the native architectures
    anchors: list[list[float]] | str | None = None  # explicit anchors, "auto" (k-means) or None (cfg's)
    imgsz: int = 416
    # optimisation
    epochs: int = 30
    batch: int = 16
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.937
    nesterov: bool = True
    betas: list[float] = field(default_factory=lambda: [0.937, 0.999])
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    warmup_start: float = 0.1
    min_lr: float | None = None          # cosine: final lr (default lr * 0.01)
    ema: float | None = 0.999            # EMA decay of the weights (None: off)
    ema_warmup: int = 200
    grad_clip: float | None = 10.0
    freeze: int = 0                      # keep the first N layers fixed (transfer learning)
    # loss and targets
    box_loss: str = "ciou"               # mse (YOLOv3's), iou, giou, diou, ciou
    box_gain: float = 0.05
    obj_gain: float = 1.0
    cls_gain: float = 0.5
    iou_thresh: float = 0.213            # extra anchors whose IoU with a box exceeds this also learn it
    ignore_thresh: float = 0.7           # predictions overlapping a box above this are not negatives
    # augmentation
    augment: bool = True
    mosaic: float = 1.0                  # probability of a 4-image mosaic
    close_mosaic: int = 0                # no mosaic in the last N epochs
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    fliplr: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    multi_scale: bool = False            # random input size in [0.5, 1.5] x imgsz (multiples of 32)
    # validation
    conf: float = 0.001
    iou: float = 0.6
    val_period: int = 1                  # validate every N epochs (and always after the last)
    # run
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    cache: bool = True                   # keep decoded (resized) images in memory
    project: str = "runs"
    name: str = "train"
    exist_ok: bool = False
    plots: bool = True
    verbose: int = 1                     # 0 silent, 1 progress bar + epoch lines, 2 epoch lines only

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "detect-train options") -> DetectTrainConfig:
        """Build from a plain dict; unknown keys are a UserError with close matches."""
        data = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in (data or {}).items()}
        known = cls.field_names()
        unknown = [k for k in data if k not in known]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), known, n=2, cutoff=0.6)
                hints.append(f"{k!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
            raise UserError(f"{source}: unknown option{'s' if len(unknown) > 1 else ''} " + ", ".join(hints))
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """One-line errors before anything heavy starts."""
        if not self.data:
            raise UserError("no dataset given (a data.yaml, YOLO folder, COCO json or VOC folder)")
        if self.epochs < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch < 1:
            raise UserError(f"batch must be >= 1, got {self.batch}")
        if self.lr <= 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise UserError(f"imgsz must be a positive multiple of 32, got {self.imgsz}")
        if self.box_loss not in BOX_LOSSES:
            raise UserError(f"unknown box loss {self.box_loss!r}; choose from {', '.join(BOX_LOSSES)}")
        for name in ("mosaic", "fliplr", "iou_thresh", "ignore_thresh", "conf", "iou"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UserError(f"{name} must be in [0, 1], got {v}")
        if self.val_period < 1:
            raise UserError(f"val_period must be >= 1, got {self.val_period}")
        if self.width_mult <= 0:
            raise UserError(f"width_mult must be > 0, got {self.width_mult}")
