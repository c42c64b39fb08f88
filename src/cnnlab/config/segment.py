"""``SegmentConfig``: a semantic segmentation run = the shared run options + its own section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cnnlab.config.run import CB, OPT, SCHED, RunConfig
from cnnlab.config.schema import option
from cnnlab.errors import UserError

DATA, MODEL = "Data", "Model"
MODELS = ("unet", "fcn8s", "fcn32s", "fcn_resnet50", "fcn_resnet101", "deeplabv3_mobilenet_v3_large",
          "deeplabv3_resnet50", "lraspp_mobilenet_v3_large")


@dataclass
class SegmentConfig(RunConfig):
    """Options of ``train_segmenter`` / ``cnnlab segment-train``: a class for every pixel."""

    data: str = option("synthetic", "synthetic (shapes with exact masks) | a folder with images/ and masks/ "
                       "(same file stems) | a Pascal VOC folder (JPEGImages + SegmentationClass).", section=DATA)
    classes: list[str] | None = option(None, "Class names (default: synthetic/VOC names; a mask folder: "
                                       "one per mask value).", section=DATA)
    val_fraction: float = option(0.2, "Held-out fraction (VOC: its val list when present).", section=DATA)
    imgsz: int = option(64, "Images and masks are resized to imgsz x imgsz (masks: nearest).", section=DATA)
    synthetic_train: int = option(1000, "synthetic: training images.", section=DATA)
    synthetic_val: int = option(200, "synthetic: validation images.", section=DATA)
    fliplr: float = option(0.5, "Probability of a horizontal flip.", section=DATA)
    model: str = option("unet", f"{', '.join(MODELS)} (torchvision's with random weights unless --weights).",
                        short="-m", section=MODEL)
    width: int = option(16, "unet / fcn: channels of the first stage (doubled at every stage).", section=MODEL)
    weights: str | None = option(None, "A local torchvision state-dict file for the torchvision models "
                                 "(its classifier is re-initialised when the class count differs).",
                                 short="-w", section=MODEL)
    epochs: int = option(15, "Training epochs.", short="-e", section=OPT)
    batch: int = option(16, "Images per batch.", short="-b", section=OPT)
    optimizer: str = option("adamw", "sgd, adam, adamw, nadam, rmsprop.", section=OPT)
    lr: float = option(3e-3, "Initial learning rate.", section=OPT)
    weight_decay: float = option(1e-4, "Weight decay of the weight tensors.", section=OPT)
    schedule: str = option("cosine", "constant, piecewise, step, cosine, onecycle, plateau.", section=SCHED)
    monitor: str = option("fitness", "Best checkpoint / early stopping measure: fitness (val_miou), "
                          "val_pixel_accuracy or val_loss.", section=CB)

    TASK: ClassVar[str] = "segment"
    ALIASES: ClassVar[dict[str, str]] = {"dataset": "data", "img_size": "imgsz", "batch_size": "batch",
                                         "learning_rate": "lr", "epoch": "epochs", "arch": "model"}

    def validate(self) -> None:
        super().validate()
        if self.model not in MODELS:
            raise UserError(f"unknown segmentation model {self.model!r} (choose {', '.join(MODELS)})")
        if not 16 <= self.imgsz <= 2048:
            raise UserError(f"imgsz must be in [16, 2048], got {self.imgsz}")
        if self.model in ("unet", "fcn8s", "fcn32s") and self.imgsz % 32:
            raise UserError(f"imgsz must be a multiple of 32 for {self.model}, got {self.imgsz}")
        for name in ("val_fraction", "fliplr"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.synthetic_train < 1 or self.synthetic_val < 1 or self.width < 1:
            raise UserError("synthetic_train, synthetic_val and width must be >= 1")
        if self.classes is not None and (len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)):
            raise UserError("classes must be at least two distinct names")
