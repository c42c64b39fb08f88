"""``LocalizeConfig``: a classification + localisation run = the shared run options + its own section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cnnlab.config.run import CB, OPT, SCHED, RunConfig
from cnnlab.config.schema import option
from cnnlab.errors import UserError

DATA, MODEL, LOSS = "Data", "Model", "Loss"
OBJECT_MODES = ("largest", "single")


@dataclass
class LocalizeConfig(RunConfig):
    """Options of ``train_localizer`` / ``cnnlab localize-train``: one class and one box per image."""

    data: str = option("synthetic", "synthetic (shapes drawn on textures, exact boxes) | data.yaml | YOLO "
                       "folder | COCO json | VOC folder.", section=DATA)
    objects: str = option("largest", "Detection data -> one object per image: largest (the largest box of "
                          "each image) or single (only images with exactly one box).", section=DATA)
    val: str | None = option(None, "Validation split of the data (default val; without one, val_fraction "
                             "of the training images).", section=DATA)
    val_fraction: float = option(0.2, "Held-out fraction when the data has no validation split.", section=DATA)
    imgsz: int = option(64, "Images are resized to imgsz x imgsz (boxes are fractions of the image).",
                        section=DATA)
    synthetic_train: int = option(2000, "synthetic: training images.", section=DATA)
    synthetic_val: int = option(400, "synthetic: validation images.", section=DATA)
    fliplr: float = option(0.5, "Probability of a horizontal flip (box flipped with it).", section=DATA)
    model: str = option("locnet", "Backbone: locnet (small CNN from scratch), a registered classifier "
                        "(e.g. resnet18_cifar, mobilenet_v1_025) or timm/<name>.", short="-m", section=MODEL)
    features: int = option(256, "Backbone output features shared by the class and box heads.", section=MODEL)
    cls_gain: float = option(1.0, "Weight of the cross-entropy class loss.", section=LOSS)
    box_gain: float = option(5.0, "Weight of the smooth-L1 loss on (cx, cy, w, h).", section=LOSS)
    giou_gain: float = option(2.0, "Weight of the GIoU loss.", section=LOSS)
    # shared options with the defaults of this task
    epochs: int = option(20, "Training epochs.", short="-e", section=OPT)
    batch: int = option(64, "Images per batch.", short="-b", section=OPT)
    optimizer: str = option("adamw", "sgd, adam, adamw, nadam, rmsprop.", section=OPT)
    lr: float = option(2e-3, "Initial learning rate.", section=OPT)
    weight_decay: float = option(1e-4, "Weight decay of the weight tensors.", section=OPT)
    schedule: str = option("cosine", "constant, piecewise, step, cosine, onecycle, plateau.", section=SCHED)
    monitor: str = option("fitness", "Best checkpoint / early stopping measure: fitness (val_correct, ties "
                          "broken by val_iou), val_correct, val_iou, val_accuracy or val_loss.", section=CB)

    TASK: ClassVar[str] = "localize"
    ALIASES: ClassVar[dict[str, str]] = {"dataset": "data", "img_size": "imgsz", "batch_size": "batch",
                                         "learning_rate": "lr", "epoch": "epochs", "backbone": "model"}

    def validate(self) -> None:
        super().validate()
        if self.objects not in OBJECT_MODES:
            raise UserError(f"objects must be one of {', '.join(OBJECT_MODES)}, got {self.objects!r}")
        if not 16 <= self.imgsz <= 1024:
            raise UserError(f"imgsz must be in [16, 1024], got {self.imgsz}")
        for name in ("val_fraction", "fliplr"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.synthetic_train < 1 or self.synthetic_val < 1:
            raise UserError("synthetic_train and synthetic_val must be >= 1")
        if self.features < 1:
            raise UserError(f"features must be >= 1, got {self.features}")
        if min(self.cls_gain, self.box_gain, self.giou_gain) < 0:
            raise UserError("cls_gain, box_gain and giou_gain must be >= 0")
