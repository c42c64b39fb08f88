"""``DetectTrainConfig``: a detector training run = the shared run options + the detection section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cnnlab.config.run import CB, NUM, OPT, SCHED, RunConfig
from cnnlab.config.schema import option
from cnnlab.errors import UserError

BOX_LOSSES = ("mse", "iou", "giou", "diou", "ciou")
DATA, MODEL, LOSS, AUG, VAL = "Data", "Model", "Loss and targets", "Augmentation", "Validation"


@dataclass
class DetectTrainConfig(RunConfig):
    """Options of ``train_detector`` / ``cnnlab detect-train`` (Ultralytics/Darknet names)."""

    # data and model
    data: str = option("", "data.yaml | YOLO folder | COCO json | VOC folder.", section=DATA)
    val: str | None = option(None, "Validation split of the data.yaml (default val, else train).", section=DATA)
    cache: bool = option(True, "Keep decoded (resized) images in memory.", section=DATA)
    model: str = option("yolov3-tiny", "yolov3-tiny | yolov3 | cnnlab-nano (anchor-free) | a Darknet .cfg | "
                        "a detection run folder / .pt | fasterrcnn_mobilenet_v3_large_320_fpn, "
                        "fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn (two-stage, torchvision).",
                        short="-m", section=MODEL)
    weights: str | None = option(None, "Darknet .weights to start from (tensors whose shapes fit; heads "
                                 "re-initialised for the new classes); for fasterrcnn_* a torchvision "
                                 "state_dict (.pth: the detector's or its ImageNet backbone's).", short="-w",
                                 section=MODEL)
    width_mult: float = option(1.0, "Channel multiplier of the native architectures.", section=MODEL)
    anchors: list[list[float]] | str | None = option("check", "'check' (the cfg's unless their best possible "
                                                     "recall on the data is < 0.98 and the head starts fresh, "
                                                     "then k-means), 'auto' (always k-means), [[w,h],...] or "
                                                     "'cfg'/null (the cfg's).", section=MODEL)
    imgsz: int = option(416, "Network input size, a multiple of 32.", section=MODEL)
    freeze: int = option(0, "Keep the first N layers fixed (transfer learning).", section=MODEL)
    # loss and targets
    box_loss: str = option("ciou", "mse (YOLOv3's), iou, giou, diou, ciou.", section=LOSS)
    box_gain: float = option(0.05, "Weight of the box loss.", section=LOSS)
    obj_gain: float = option(1.0, "Weight of the objectness loss.", section=LOSS)
    cls_gain: float = option(0.5, "Weight of the class loss.", section=LOSS)
    iou_thresh: float = option(0.213, "Extra anchors whose IoU with a box exceeds this also learn it.",
                               section=LOSS)
    ignore_thresh: float = option(0.7, "Predictions overlapping a box above this are not negatives.",
                                  section=LOSS)
    # augmentation
    augment: bool = option(True, "Training augmentations.", section=AUG)
    mosaic: float = option(1.0, "Probability of a 4-image mosaic.", section=AUG)
    close_mosaic: int | None = option(None, "No mosaic in the last N epochs (null: 10% of the epochs, at least "
                                      "1 and at most 10 when epochs > 1).", section=AUG)
    degrees: float = option(0.0, "Random rotation (+/- degrees).", section=AUG)
    translate: float = option(0.1, "Random translation (+/- fraction).", section=AUG)
    scale: float = option(0.5, "Random scale gain (+/- fraction).", section=AUG)
    shear: float = option(0.0, "Random shear (+/- degrees).", section=AUG)
    fliplr: float = option(0.5, "Probability of a horizontal flip.", section=AUG)
    hsv_h: float = option(0.015, "Hue jitter (fraction).", section=AUG)
    hsv_s: float = option(0.7, "Saturation jitter (fraction).", section=AUG)
    hsv_v: float = option(0.4, "Value jitter (fraction).", section=AUG)
    multi_scale: bool = option(False, "Random input size in [0.5, 1.5] x imgsz (multiples of 32).", section=AUG)
    # validation
    conf: float = option(0.001, "Validation confidence threshold (low, as mAP needs the whole curve).",
                         section=VAL)
    iou: float = option(0.6, "Validation NMS IoU threshold.", section=VAL)
    val_period: int = option(1, "Validate every N epochs (and always after the last).", section=VAL)
    # shared options whose detection defaults differ (Ultralytics' recipe)
    epochs: int = option(30, "Training epochs.", short="-e", section=OPT)
    batch: int = option(16, "Images per batch (the global batch when distributed).", short="-b", section=OPT)
    optimizer: str = option("auto", "auto (SGD lr 0.01 for runs over 10000 iterations, else AdamW with lr "
                            "0.002*5/(4+classes); --lr/--momentum then ignored), sgd, adam, adamw, nadam, "
                            "rmsprop.", section=OPT)
    momentum: float = option(0.937, "SGD momentum.", section=OPT)
    nesterov: bool = option(True, "Nesterov momentum (SGD).", section=OPT)
    betas: list[float] = option(factory=lambda: [0.937, 0.999], help="Adam-family betas.", section=OPT)
    weight_decay: float = option(5e-4, "Weight decay of the weight tensors.", section=OPT)
    schedule: str = option("cosine", "constant, piecewise, step, cosine, onecycle, plateau.", section=SCHED)
    warmup_epochs: float = option(3.0, "Linear warm-up length in epochs (Ultralytics' 3).", section=SCHED)
    warmup_min_steps: int = option(100, "The warm-up lasts at least this many steps (Ultralytics' 100: a small "
                                   "fine-tune is all warm-up).", section=SCHED)
    warmup_start: float = option(0.1, "Warm-up starts at lr x this.", section=SCHED)
    warmup_bias_lr: float | None = option(0.1, "Biases start the warm-up at this lr and fall to the schedule's "
                                          "(YOLOv5; optimizer auto's AdamW: 0; null: as the weights).",
                                          section=SCHED)
    min_lr: float | None = option(None, "cosine: final learning rate (default lr x 0.01).", section=SCHED)
    ema: float | None = option(0.999, "EMA decay of the weights (null: off).", section=NUM)
    ema_warmup: int = option(200, "EMA decay ramps up over this many steps.", section=NUM)
    grad_clip: float | None = option(10.0, "Max global gradient norm (null: off).", section=NUM)
    monitor: str = option("fitness", "Best checkpoint / early stopping measure: fitness (0.1 mAP50 + 0.9 "
                          "mAP50-95), mAP50, mAP50_95 or val_loss.", section=CB)

    TASK: ClassVar[str] = "detect"
    ALIASES: ClassVar[dict[str, str]] = {"img_size": "imgsz", "image_size": "imgsz", "lr0": "lr",
                                         "batch_size": "batch", "dataset": "data", "arch": "model",
                                         "learning_rate": "lr", "epoch": "epochs"}

    def default_min_lr(self) -> float:
        return self.lr * 0.01

    def close_mosaic_epochs(self) -> int:
        """Epochs at the end trained without mosaic: ``close_mosaic``, or 10% of the epochs (at least 1,
        at most Ultralytics' 10) when it is null and there is more than one epoch."""
        if self.close_mosaic is not None:
            return int(self.close_mosaic)
        return 0 if self.epochs <= 1 else min(10, max(1, round(self.epochs * 0.1)))

    def validate(self) -> None:
        super().validate()
        self.anchors = parse_anchors(self.anchors)
        if not self.data:
            raise UserError("no dataset given (a data.yaml, YOLO folder, COCO json or VOC folder)")
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
        if not self.width_mult > 0:
            raise UserError(f"width_mult must be > 0, got {self.width_mult}")
        if self.close_mosaic is not None and self.close_mosaic < 0:
            raise UserError(f"close_mosaic must be >= 0 or null, got {self.close_mosaic}")
        if self.warmup_min_steps < 0:
            raise UserError(f"warmup_min_steps must be >= 0, got {self.warmup_min_steps}")
        if self.warmup_bias_lr is not None and self.warmup_bias_lr < 0:
            raise UserError(f"warmup_bias_lr must be >= 0 or null, got {self.warmup_bias_lr}")
        if self.freeze < 0:
            raise UserError(f"freeze must be >= 0, got {self.freeze}")


def parse_anchors(value: list[list[float]] | str | None) -> list[list[float]] | str | None:
    """``auto``, ``check``, ``None`` (also ``cfg``), ``[[w, h], ...]`` or the Darknet cfg spelling ``w,h, w,h, ...`` -> pairs."""
    if value is None or isinstance(value, list):
        return value
    text = value.strip()
    if text.lower() in ("auto", "check"):
        return text.lower()
    if text.lower() in ("cfg", "null", "none"):
        return None
    try:
        flat = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UserError(f"anchors {value!r}: expected 'auto', [[w,h],...] or w,h,w,h,...") from None
    if not flat or len(flat) % 2:
        raise UserError(f"anchors {value!r}: expected an even number of values (w,h pairs)")
    if any(not (v > 0 and v < 1e5) for v in flat):
        raise UserError(f"anchors {value!r}: sizes must be positive pixel sizes")
    return [[flat[i], flat[i + 1]] for i in range(0, len(flat), 2)]
