"""``TrainConfig``: a classification run = the shared run options + the classification section.

A run folder's ``config.yaml`` is enough to re-run it: ``cnnlab train --config runs/classify/exp/config.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cnnlab.config.knobs import KNOBS, check_knobs
from cnnlab.config.run import RunConfig
from cnnlab.config.schema import option
from cnnlab.errors import UserError

DATA, MODEL, TRANSFER, REG = "Data", "Model", "Transfer learning", "Regularisation and numerics"


@dataclass
class TrainConfig(RunConfig):
    """Every option of a classification training run."""

    # data
    dataset: str = option("digits", "mnist, fashion_mnist, cifar10, cifar100, digits, folder (or a folder path).",
                          short="-d", section=DATA)
    data_dir: str | None = option(None, "Data root (default $CNNLAB_DATA, then ~/.cache/cnnlab/data).",
                                  section=DATA)
    dataset_options: dict[str, Any] = option(factory=dict, help="Dataset options as YAML, e.g. "
                                             "'{label_mode: coarse}' or '{root: DIR}'.", section=DATA)
    img_size: int | None = option(None, "Resize image folders to this size (others keep theirs).", section=DATA)
    validation_split: float = option(0.1, "Fraction of the training set held out (stratified, seeded).",
                                     section=DATA)
    folds: int = option(0, "k > 1: validation is fold --fold of k stratified folds.", section=DATA)
    fold: int = option(0, "Which of the k folds validates.", section=DATA)
    subset: int | None = option(None, "Labelled pool: this many training images (stratified).", section=DATA)
    test_eval: bool = option(True, "After training, score the best weights on the test split (else "
                             "validation), with a progress bar; --no-test-eval skips it.", section=DATA)
    test_limit: int | None = option(None, "Score at most this many test images after training "
                                    "(stratified, seeded; default all).", section=DATA)
    augment: dict[str, Any] | str = option(factory=dict, help="Augmentation fields as YAML or a preset name, "
                                           "e.g. '{horizontal_flip: true, crop_padding: 4}'.", section=DATA)
    whiten: str = option("standardize", "Input scaling: standardize (per-channel mean/std) or zca (ZCA "
                         "whitening fitted on the training split, saved with the model).", section=DATA)
    zca_epsilon: float = option(0.1, "ZCA: added to the covariance eigenvalues (larger: milder whitening).",
                                section=DATA)
    # model
    model: str = option("lenet5", "Model name (cnnlab models), a known backbone (ResNet50V2...) or "
                        "timm/<name>.", short="-m", section=MODEL)
    model_kwargs: dict[str, Any] = option(factory=dict, help="Model options as YAML, e.g. '{width: 2}'.",
                                          section=MODEL)
    max_params: str | int | None = option(None, "Refuse models over this size, e.g. 30M.", section=MODEL)
    weights: str | None = option(None, "Initialise from a cnnlab checkpoint (same architecture).", section=MODEL)
    activation: str | None = option(None, "Activation of every layer of a from-scratch model: relu, leaky_relu, "
                                    "prelu, elu, selu, gelu, silu, sigmoid, tanh, maxout (null: the model's own).",
                                    section=MODEL)
    norm: str | None = option(None, "Normalisation after each conv of a from-scratch model: batch, layer, "
                              "instance, group, none (null: the model's own).", section=MODEL)
    norm_groups: int = option(32, "norm group: groups per layer (the largest divisor of the channels up to "
                              "this).", section=MODEL)
    init: str = option("default", "Weight init: default (the model's own), xavier_uniform, xavier_normal, "
                       "he_uniform, he_normal, lecun_normal, orthogonal.", section=MODEL)
    init_gain: float = option(1.0, "Multiply the initial conv/linear weights by this (e.g. 0.1: too small).",
                              section=MODEL)
    # transfer learning
    pretrained: str | None = option(None, "hub | weights file (.safetensors/.pt/.h5) | a run to re-head.",
                                    section=TRANSFER)
    freeze: str | None = option(None, "none | all | 0.5 | N layers | last | <stage name>.", section=TRANSFER)
    freeze_bn: bool = option(True, "Frozen BatchNorm layers keep their statistics.", section=TRANSFER)
    backbone_lr: float | None = option(None, "Learning rate of the backbone (default: lr).", section=TRANSFER)
    unfreeze: str | None = option(None, "Phase-2 freeze spec (none: everything trains; last, 0.5...).",
                                  section=TRANSFER)
    unfreeze_epochs: int = option(0, "Phase-2 length in epochs (0: one phase).", section=TRANSFER)
    unfreeze_lr: float | None = option(None, "Phase-2 learning rate (default lr / 10).", section=TRANSFER)
    # classification losses
    label_smoothing: float = option(0.0, "Label smoothing of the cross-entropy.", section=REG)
    l1: float = option(0.0, "L1 penalty on weights (added to the loss).", section=REG)
    # fast recipes (issue 13)
    recipe: str | None = option(None, "Start from a named recipe (cnnlab recipes); other options override it.",
                                section="Run")
    whiten_init: bool = option(False, "Patch-whitening init of the first conv from training images (airbench); "
                               "its weights then stay fixed.", section=MODEL)
    tta: bool = option(False, "Flip test-time augmentation in validation and the final test evaluation.",
                       section=REG)
    tta_translate: int = option(0, "With tta: also average over the images shifted this many pixels up-left "
                                "and down-right (reflected edges; airbench's translate TTA); 0: off.", section=REG)
    # shared options whose classification defaults differ
    monitor: str = option("val_accuracy", "Metric for the best checkpoint, early stopping and plateau.",
                          section="Callbacks and logging")

    ALIASES: ClassVar[dict[str, str]] = {
        "learning_rate": "lr", "lr0": "lr", "batch_size": "batch", "epoch": "epochs", "opt": "optimizer",
        "scheduler": "schedule", "lr_schedule": "schedule", "sched": "schedule", "wd": "weight_decay",
        "smoothing": "label_smoothing", "clip_grad": "grad_clip", "clip_grad_norm": "grad_clip",
        "imgsz": "img_size", "image_size": "img_size", "input_size": "img_size", "arch": "model",
        "data": "dataset", "model_ema": "ema", "model_ema_decay": "ema", "mixed_precision": "amp",
        "num_workers": "workers", "early_stopping": "patience", "checkpoint_period": "save_period",
        "period": "save_period",
    }
    TASK: ClassVar[str] = "classify"
    RESUMABLE: ClassVar[tuple[str, ...]] = (*RunConfig.RESUMABLE, "test_eval", "test_limit")

    @property
    def total_epochs(self) -> int:
        """Epochs of both phases: ``epochs`` (phase 1) + ``unfreeze_epochs`` (phase 2)."""
        return self.epochs + self.unfreeze_epochs

    def model_options(self) -> dict[str, Any]:
        """``model_kwargs`` plus the architecture knobs and whitening that differ from the defaults
        (what ``create_model`` receives and the model spec records)."""
        opts = dict(self.model_kwargs)
        given = {k: getattr(self, k) for k in KNOBS if getattr(self, k) != self.default_of(k)}
        if self.whiten != "standardize":
            given["whiten"] = self.whiten
        for k, v in given.items():
            if k in opts and opts[k] != v:
                raise UserError(f"{k} is given twice, as an option ({v!r}) and in model_kwargs ({opts[k]!r})")
        return {**opts, **given}

    def phase2(self) -> TrainConfig:
        """The settings of the fine-tuning phase: its own length, learning rate and freeze spec."""
        lr = self.unfreeze_lr if self.unfreeze_lr is not None else self.lr / 10
        scale = lr / self.lr
        return self.replace(epochs=max(self.unfreeze_epochs, 1), lr=lr, freeze=self.unfreeze,
                            backbone_lr=self.backbone_lr * scale if self.backbone_lr else None,
                            max_lr=self.max_lr * scale if self.max_lr else None, warmup_epochs=0.0,
                            unfreeze=None, unfreeze_epochs=0, unfreeze_lr=None)

    def validate(self) -> None:
        super().validate()
        for name in ("dataset", "model"):
            if not str(getattr(self, name)).strip():
                raise UserError(f"{name} must not be empty")
        if self.max_params is not None:
            from cnnlab.models.counting import parse_count

            parse_count(self.max_params)  # "30M", 3e7...: a bad spelling fails here, not after the data loads
        if self.test_limit is not None and self.test_limit < 1:
            raise UserError(f"test_limit must be >= 1 (or test_eval false to skip), got {self.test_limit}")
        if not 0.0 <= self.validation_split < 1.0:
            raise UserError(f"validation_split must be in [0, 1), got {self.validation_split}")
        if self.folds == 1 or self.folds < 0:
            raise UserError(f"folds must be 0 (off) or >= 2, got {self.folds}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise UserError(f"fold must be in [0, {self.folds - 1}], got {self.fold}")
        check_knobs(self.activation, self.norm, self.norm_groups, self.init, self.init_gain)
        if self.whiten not in ("standardize", "zca"):
            raise UserError(f"whiten must be standardize or zca, got {self.whiten!r}")
        if self.whiten == "zca" and (self.pretrained or self.freeze is not None):
            raise UserError("ZCA whitening is for models trained from scratch (drop pretrained/freeze or whiten)")
        if not self.zca_epsilon > 0:
            raise UserError(f"zca_epsilon must be > 0, got {self.zca_epsilon}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.tta_translate <= 8:
            raise UserError(f"tta_translate must be 0 (off) to 8 pixels, got {self.tta_translate}")
        if self.unfreeze_epochs < 0:
            raise UserError(f"unfreeze_epochs must be >= 0, got {self.unfreeze_epochs}")
        for name in ("backbone_lr", "unfreeze_lr"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"{name} must be > 0, got {value}")
