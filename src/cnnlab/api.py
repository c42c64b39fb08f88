"""The classification entry points: ``train``, ``evaluate``, ``predict``, ``load`` and ``demo``.

    import cnnlab
    run = cnnlab.train(dataset="mnist", model="lenet5", epochs=10, optimizer="adam", lr=1e-3)
    cnnlab.evaluate(run, tta=True)
    cnnlab.predict(run, ["digit.png"], topk=3)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.config import TrainConfig, check_keys
from cnnlab.engine.callbacks import (
    Callback,
    EarlyStopping,
    HistoryLogger,
    ModelCheckpoint,
    ProgressLogger,
    TensorBoard,
)
from cnnlab.engine.checkpoint import load_checkpoint, load_weights, model_from_checkpoint
from cnnlab.engine.metrics import confusion_report, plot_confusion, plot_curves
from cnnlab.engine.optim import check_config
from cnnlab.engine.trainer import Trainer, _interactive, evaluate_model, resolve_device, seed_everything
from cnnlab.errors import UserError
from cnnlab.io import read_yaml, write_json
from cnnlab.runs import CONFIG, checkpoint_path, new_run_dir, resolve_run, write_run_metrics

# options that may change when resuming a run (anything else must match the original run)
RESUME_OVERRIDES = ("epochs", "device", "threads", "workers", "verbose", "plots", "tensorboard", "patience")


# -----------------------------------------------------------------------------------------------
# results


@dataclass
class TrainResult:
    """What ``cnnlab.train`` returns; usable wherever a run folder path is expected."""

    run_dir: Path
    metrics: dict[str, Any]
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.run_dir)

    def __str__(self) -> str:
        return str(self.run_dir)


@dataclass
class LoadedModel:
    """A trained classifier ready for inference: model in eval mode plus its preprocessing and classes."""

    model: Any                      # nn.Module, or an OnnxClassifier for .onnx sources
    spec: dict[str, Any] | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    img_size: int | None
    in_chans: int
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    runtime: str = "torch"

    def preprocess(self, images: Sequence[np.ndarray | str | os.PathLike]) -> torch.Tensor:
        """HxWxC uint8 RGB arrays (or image paths) -> a normalised float32 NCHW batch."""
        from cnnlab.deploy.preprocess import preprocess_batch

        return torch.from_numpy(preprocess_batch(list(images), self._preprocess_spec()))

    def _preprocess_spec(self) -> Any:
        from cnnlab.deploy.metadata import Preprocess

        if self.runtime == "onnxruntime":
            return self.model.preprocess_spec
        return Preprocess.from_dict({"mean": list(self.mean), "std": list(self.std), "img_size": self.img_size,
                                     "in_chans": self.in_chans})

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a preprocessed batch."""
        if self.runtime == "onnxruntime":
            return torch.from_numpy(self.model(x.numpy()))
        device = next(self.model.parameters()).device
        return self.model(x.to(device)).float().cpu()

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities of a preprocessed batch (an ONNX model may output them already)."""
        if self.runtime == "onnxruntime":
            return torch.from_numpy(self.model.probabilities(x.numpy()))
        return self.logits(x).softmax(1)

    def predict(self, images: Sequence[np.ndarray | str | os.PathLike], topk: int = 5,
                batch: int = 64) -> list[list[tuple[str, float]]]:
        """Top-k ``(class, probability)`` for each image."""
        out: list[list[tuple[str, float]]] = []
        images = list(images)
        for i in range(0, len(images), batch):
            probs = self.probabilities(self.preprocess(images[i:i + batch]))
            k = min(topk, probs.shape[1])
            p, idx = probs.topk(k, dim=1)
            for prow, irow in zip(p.tolist(), idx.tolist(), strict=True):
                out.append([(self.classes[j] if j < len(self.classes) else str(j), float(q))
                            for q, j in zip(prow, irow, strict=True)])
        return out


# -----------------------------------------------------------------------------------------------
# configuration


def resolve_config(config: TrainConfig | dict | str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """A TrainConfig from a config object, dict or YAML file, with keyword overrides on top."""
    if config is None:
        cfg = TrainConfig()
    elif isinstance(config, TrainConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = TrainConfig.from_dict(config)
    elif isinstance(config, (str, os.PathLike)):
        cfg = TrainConfig.from_yaml(config)
    else:
        raise UserError(f"config must be a TrainConfig, a dict or a YAML path, not {type(config).__name__}")
    cfg = cfg.replace(**overrides) if overrides else cfg
    cfg.validate()
    return cfg


# -----------------------------------------------------------------------------------------------
# data


@dataclass
class DataBundle:
    train: Any
    val: Any | None
    test: Any | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_chans: int
    img_size: int
    num_train: int
    num_val: int


def _labels(ds: Any) -> np.ndarray:
    for attr in ("labels", "targets"):
        if hasattr(ds, attr):
            return np.asarray(torch.as_tensor(getattr(ds, attr)))
    raise UserError(f"dataset {getattr(ds, 'name', ds)!r} has no labels")


def _dataset_options(cfg: TrainConfig) -> dict[str, Any]:
    opts = dict(cfg.dataset_options)
    is_folder = cfg.dataset == "folder" or Path(str(cfg.dataset)).expanduser().is_dir()
    if cfg.img_size and is_folder:
        opts.setdefault("img_size", cfg.img_size)
    return opts


def _shape(ds: Any) -> tuple[int, int]:
    """(in_chans, img_size) of a dataset."""
    if hasattr(ds, "images"):
        return int(ds.images.shape[1]), int(ds.images.shape[-1])
    return int(getattr(ds, "in_chans", 3)), int(getattr(ds, "img_size", 0))


def load_split(name: str, split: str, data_dir: str | None, options: dict[str, Any]) -> Any:
    from cnnlab.data import load_dataset

    return load_dataset(name, split=split, data_dir=data_dir, **options)


def build_data(cfg: TrainConfig, device: torch.device | str = "cpu",
               norm: dict[str, float] | None = None) -> DataBundle:
    """Datasets and loaders of a run: train (minus validation), validation and test.

    ``norm`` ({"mean": m, "std": s}) replaces the dataset's own statistics, for models that normalise
    their input themselves (a transfer model takes [0, 1] pixels).
    """
    from cnnlab.data import kfold_splits, make_loader, validation_split

    opts = _dataset_options(cfg)
    full = load_split(cfg.dataset, "train", cfg.data_dir, opts)
    if cfg.subset is not None and cfg.subset < len(full):
        # the labelled pool: a stratified, seeded subset; validation is then split from it
        pool = _stratified_subset(_labels(full), cfg.subset, cfg.seed)
        full = full.subset(pool)
    labels = _labels(full)
    if cfg.folds:
        train_idx, val_idx = kfold_splits(labels, cfg.folds, seed=cfg.seed)[cfg.fold]
    elif cfg.validation_split > 0:
        train_idx, val_idx = validation_split(labels, cfg.validation_split, seed=cfg.seed)
    else:
        train_idx, val_idx = np.arange(len(labels)), None
    val_ds = full.subset(val_idx) if val_idx is not None and len(val_idx) else None
    if val_ds is None and cfg.dataset == "folder":
        val_ds = _optional_split(cfg, "val", opts)
    train_ds = full.subset(np.asarray(train_idx))
    test_ds = _optional_split(cfg, "test", opts)
    classes = list(full.classes)
    mean, std = tuple(full.mean), tuple(full.std)
    if norm is not None:
        mean, std = (float(norm["mean"]),) * len(mean), (float(norm["std"]),) * len(std)
    augment = cfg.augment or None
    common = {"device": str(device), "num_classes": len(classes), "mean": mean, "std": std,
              "num_workers": cfg.workers}
    train = make_loader(train_ds, cfg.batch, shuffle=True, augment=augment, seed=cfg.seed, **common)
    eval_batch = max(cfg.batch, 256)
    val = make_loader(val_ds, eval_batch, shuffle=False, **common) if val_ds is not None else None
    test = make_loader(test_ds, eval_batch, shuffle=False, **common) if test_ds is not None else None
    in_chans, img_size = _shape(full)
    if cfg.img_size and img_size and cfg.img_size != img_size:
        raise UserError(f"{cfg.dataset} images are {img_size} px; img_size resizes image folders only "
                        f"(got img_size {cfg.img_size})")
    return DataBundle(train, val, test, classes, mean, std, in_chans, cfg.img_size or img_size,
                      len(train_ds), len(val_ds) if val_ds is not None else 0)


def _stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices with the class proportions of ``labels`` (seeded, sorted)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if n >= len(counts) and counts.min() >= 2 else None
    keep, _ = train_test_split(idx, train_size=n, random_state=seed, stratify=stratify)
    return np.sort(keep)


def _optional_split(cfg: TrainConfig, split: str, opts: dict[str, Any]) -> Any | None:
    """The ``split`` of the run's dataset, or None when the dataset has no such split."""
    from cnnlab.data.registry import get_entry

    name = cfg.dataset
    root = opts.get("root") or cfg.data_dir
    if Path(str(name)).is_dir() and "/" in str(name):
        name, root = "folder", name
    entry = get_entry(name)
    if split not in entry.splits:
        return None
    if entry.name == "folder":
        from cnnlab.data.folder import split_dirs

        if not root or split not in split_dirs(Path(root).expanduser()):
            return None
    return load_split(cfg.dataset, split, cfg.data_dir, opts)


# -----------------------------------------------------------------------------------------------
# train


def train(config: TrainConfig | dict | str | os.PathLike | None = None, callbacks: Sequence[Callback] = (),
          resume: str | os.PathLike | None = None, **overrides: Any) -> TrainResult:
    """Train a classifier; returns the run folder, final metrics and the best model.

    ``config`` is a TrainConfig, a dict or a YAML file; keyword ``overrides`` win over it.
    ``resume`` (a run folder or its ``last.pt``) continues an interrupted run from its last epoch.
    """
    ckpt, run_dir = None, None
    if resume is not None:
        run_dir, cfg, ckpt = _resume_state(resume, overrides)
    else:
        cfg = resolve_config(config, **overrides)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, ckpt, run_dir, callbacks)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(cfg: TrainConfig, ckpt: dict | None, run_dir: Path | None, callbacks: Sequence[Callback]) -> TrainResult:
    device = resolve_device(cfg.device)
    check_config(cfg)
    if cfg.tensorboard:
        TensorBoard.check_available()
    seed_everything(cfg.seed, cfg.deterministic)
    if device.type == "cuda" and not cfg.deterministic:
        torch.backends.cudnn.benchmark = True
    say = _printer(cfg.verbose)

    data = build_data(cfg, device, norm=_input_norm(cfg))
    model = _create_model(cfg, data)
    from cnnlab.models import count_params
    from cnnlab.models.transfer import freeze, freeze_cut, load_pretrained

    if cfg.weights and ckpt is None:
        init = load_checkpoint(cfg.weights)
        load_weights(model, init.get("ema") or init["model"], init.get("model_spec"), str(cfg.weights))
        say(f"initialised from {cfg.weights}")
    if cfg.pretrained and ckpt is None:
        say(f"pretrained: {load_pretrained(model, cfg.pretrained)}")
    if cfg.freeze is not None:
        freeze(model, cfg.freeze)
    if cfg.unfreeze is not None:
        freeze_cut(model, cfg.unfreeze)  # a bad phase-2 spec fails now, not after phase 1
    trainable, frozen = count_params(model)
    say(f"model {cfg.model}: {trainable:,} trainable + {frozen:,} non-trainable parameters"
        + (f" (freeze={cfg.freeze})" if cfg.freeze is not None else ""))

    if run_dir is None:
        run_dir = new_run_dir(cfg.project, "classify", cfg.name, exist_ok=cfg.exist_ok)
        cfg.to_yaml(run_dir / CONFIG)
    say(f"run folder {run_dir}  ({data.num_train} train / {data.num_val} validation images, "
        f"{len(data.classes)} classes, device {device})")

    meta = {"model_spec": model.cnnlab_spec, "config": cfg.to_dict(), "classes": data.classes,
            "preprocess": {"mean": list(data.mean), "std": list(data.std), "img_size": data.img_size,
                           "in_chans": data.in_chans}}
    trainer = Trainer(model, cfg, data.train, data.val, num_classes=len(data.classes),
                      callbacks=_callbacks(cfg, run_dir, callbacks), meta=meta, device=device)
    if ckpt is not None:
        trainer.load_checkpoint(ckpt)
        say(f"resuming after epoch {trainer.epoch} of {cfg.total_epochs}")
    try:
        trainer.fit()
    except KeyboardInterrupt:
        say(f"interrupted after epoch {trainer.epoch}; continue with: cnnlab train --resume {run_dir}")
        raise

    metrics = _finish(trainer, data, run_dir, cfg, (trainable, frozen))
    say(f"test accuracy {metrics.get('test_accuracy', float('nan')):.4f}  -> {run_dir}")
    best_model = trainer.eval_model
    best = run_dir / "weights" / "best.pt"
    if best.is_file():
        best_model = model_from_checkpoint(load_checkpoint(best), str(best)).to(device)
    return TrainResult(run_dir, metrics, best_model.eval(), trainer.history)


def _create_model(cfg: TrainConfig, data: DataBundle) -> nn.Module:
    from cnnlab.errors import ModelError
    from cnnlab.models import create_model

    name, kwargs = model_name_and_kwargs(cfg)
    model = create_model(name, num_classes=len(data.classes), in_chans=data.in_chans,
                         img_size=data.img_size, max_params=cfg.max_params, **kwargs)
    # one dry forward pass: a model that cannot take these inputs fails here with one line, not mid-epoch
    shape = (2, data.in_chans, data.img_size, data.img_size)
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model {cfg.model} cannot take {cfg.dataset} inputs of shape "
                         f"{data.in_chans}x{data.img_size}x{data.img_size}: {first[:200]}") from None
    model.train()
    if tuple(out.shape) != (2, len(data.classes)):
        raise ModelError(f"model {cfg.model} returns shape {tuple(out.shape[1:])} per image, "
                         f"expected ({len(data.classes)},) class scores")
    return model


def model_name_and_kwargs(cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The registry name and options behind ``cfg.model``.

    A familiar backbone name (``ResNet50V2``, ``mobilenet``...) that is not a cnnlab model, or a
    ``timm/<name>`` asked for with ``pretrained`` weights, becomes the ``transfer`` model with that
    backbone and a new head.
    """
    from cnnlab.models.registry import is_model_name
    from cnnlab.models.transfer import ALIASES

    key = "".join(ch for ch in cfg.model.lower() if ch.isalnum())
    familiar = key in ALIASES and not is_model_name(cfg.model)
    if familiar or (cfg.model.startswith("timm/") and cfg.pretrained):
        return "transfer", {"backbone": cfg.model, **cfg.model_kwargs}
    return cfg.model, dict(cfg.model_kwargs)


def _input_norm(cfg: TrainConfig) -> dict[str, float] | None:
    """The input scaling a model asks for itself (``cnnlab_input`` on its registry function)."""
    from cnnlab.models.registry import get_entry, is_model_name

    name, _ = model_name_and_kwargs(cfg)
    if name.startswith("timm/") or not is_model_name(name):
        return None
    return getattr(get_entry(name).fn, "cnnlab_input", None)


def _resume_state(resume: str | os.PathLike, overrides: dict[str, Any]) -> tuple[Path, TrainConfig, dict]:
    p = Path(resume)
    run_dir = resolve_run(p)
    last = p if p.is_file() else run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise UserError(f"cannot resume {run_dir}: no weights/last.pt (no epoch was completed)")
    ckpt = load_checkpoint(last)
    check_keys(overrides, "resume")
    fixed = sorted(k for k in overrides if k not in RESUME_OVERRIDES)
    if fixed:
        raise UserError(f"cannot change {', '.join(fixed)} when resuming (allowed: {', '.join(RESUME_OVERRIDES)})")
    base = read_yaml(run_dir / CONFIG) or {}
    cfg = TrainConfig.from_dict({**base, **overrides}, source=str(run_dir / CONFIG))
    if int(ckpt["epoch"]) >= cfg.total_epochs:
        raise UserError(f"{run_dir} already completed {ckpt['epoch']} of {cfg.total_epochs} epochs "
                        "(pass --epochs N to train longer)")
    if cfg.epochs != int(base.get("epochs", cfg.epochs)):
        cfg.to_yaml(run_dir / CONFIG)
    return run_dir, cfg, ckpt


def _callbacks(cfg: TrainConfig, run_dir: Path, user: Sequence[Callback]) -> list[Callback]:
    """Built-in callbacks first (history, early stopping, checkpoints), then the user's."""
    cbs: list[Callback] = [HistoryLogger(run_dir)]
    if cfg.verbose:
        cbs.append(ProgressLogger())
    if cfg.patience:
        cbs.append(EarlyStopping(cfg.monitor, cfg.patience, cfg.min_delta))
    cbs.append(ModelCheckpoint(run_dir / "weights", cfg.monitor, save_period=cfg.save_period))
    if cfg.tensorboard:
        cbs.append(TensorBoard(run_dir / "tensorboard"))
    return cbs + list(user)


def _finish(trainer: Trainer, data: DataBundle, run_dir: Path, cfg: TrainConfig,
            params: tuple[int, int]) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split, write metrics.json and the plots."""
    metrics: dict[str, Any] = {"dataset": cfg.dataset, "model": cfg.model, "epochs": trainer.epoch,
                               "params_trainable": params[0], "params_non_trainable": params[1],
                               "train_time_s": round(trainer.train_time, 3)}
    hist = trainer.history
    if hist:
        metrics["images_per_s"] = float(np.mean([h["images_per_s"] for h in hist]))
        metrics["epoch_time_s"] = float(np.mean([h["epoch_time"] for h in hist]))
        metrics.update({k: v for k, v in hist[-1].items() if k in ("loss", "accuracy", "top5_accuracy")})
    ckpt_cb = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    best_path = run_dir / "weights" / "best.pt"
    model = trainer.eval_model
    if ckpt_cb is not None and ckpt_cb.best_epoch is not None and best_path.is_file():
        best_row = hist[ckpt_cb.best_epoch - 1] if ckpt_cb.best_epoch <= len(hist) else {}
        metrics.update({"best_epoch": ckpt_cb.best_epoch, "monitor": cfg.monitor, "best_" + cfg.monitor: ckpt_cb.best})
        metrics.update({k: v for k, v in best_row.items() if k.startswith("val_")})
        model = model_from_checkpoint(load_checkpoint(best_path), str(best_path)).to(trainer.device)
    eval_loader = data.test if data.test is not None else data.val
    split = "test" if data.test is not None else "val"
    if eval_loader is not None:
        logs, meter = evaluate_model(model, eval_loader, len(data.classes), trainer.device, confusion=True,
                                     amp=trainer.amp, channels_last=cfg.channels_last)
        metrics.update({f"{split}_{k}": v for k, v in logs.items() if k in ("loss", "accuracy", "top5_accuracy")})
        metrics[split] = {**logs, **confusion_report(meter.matrix, data.classes)}
        if cfg.plots:
            plot_confusion(meter.matrix, data.classes, run_dir / "confusion.png",
                           title=f"{cfg.model} on {cfg.dataset} ({split}), accuracy {logs['accuracy']:.4f}")
    if cfg.plots and hist:
        plot_curves(hist, run_dir / "curves.png")
    write_run_metrics(run_dir, metrics)
    return metrics


def _printer(verbose: int) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if verbose:
            from rich.console import Console

            Console(highlight=False).print(msg, soft_wrap=True)

    return say


# -----------------------------------------------------------------------------------------------
# load / evaluate / predict


def load(source: str | os.PathLike, device: str = "cpu", runtime: str | None = None,
         use_ema: bool = True) -> LoadedModel:
    """A run folder, a checkpoint file or an ``.onnx`` model, ready for inference."""
    src = Path(source)
    if src.suffix.lower() == ".onnx" or runtime == "onnxruntime":
        return _load_onnx(src, runtime)
    if runtime not in (None, "torch"):
        raise UserError(f"runtime {runtime!r} needs an .onnx model; use torch for checkpoints and runs")
    if src.is_dir():
        ckpt_file = checkpoint_path(src, "best")
    elif src.is_file():
        ckpt_file = src
    else:
        raise UserError(f"model not found: {src} (give a run folder, a .pt checkpoint or an .onnx file)")
    ckpt = load_checkpoint(ckpt_file)
    model = model_from_checkpoint(ckpt, str(ckpt_file), use_ema=use_ema).to(resolve_device(device))
    spec = ckpt["model_spec"]
    pre = ckpt.get("preprocess") or {}
    classes = list(ckpt.get("classes") or [str(i) for i in range(spec.get("num_classes", 0))])
    in_chans = int(pre.get("in_chans") or spec.get("in_chans", 3))
    return LoadedModel(model=model, spec=spec, classes=classes,
                       mean=tuple(pre.get("mean") or (0.0,) * in_chans),
                       std=tuple(pre.get("std") or (1.0,) * in_chans),
                       img_size=pre.get("img_size") or spec.get("img_size"), in_chans=in_chans,
                       source=str(ckpt_file), config=dict(ckpt.get("config") or {}),
                       metrics=dict(ckpt.get("metrics") or {}))


def _load_onnx(src: Path, runtime: str | None) -> LoadedModel:
    if src.suffix.lower() != ".onnx":
        raise UserError(f"runtime onnxruntime needs an .onnx model, got {src}")
    if runtime not in (None, "onnxruntime", "onnx"):
        raise UserError(f"an .onnx model runs with --runtime onnxruntime, not {runtime!r}")
    from cnnlab.deploy.runtime import load_onnx_classifier

    clf = load_onnx_classifier(src)
    return LoadedModel(model=clf, spec=getattr(clf, "spec", None), classes=list(clf.classes),
                       mean=tuple(clf.mean), std=tuple(clf.std), img_size=clf.img_size, in_chans=clf.in_chans,
                       source=str(src), runtime="onnxruntime")


def _eval_split(name: str, split: str, data_dir: str | None, opts: dict[str, Any], run_cfg: dict[str, Any]) -> Any:
    """A dataset split; ``val`` of a dataset without one is the run's own validation split (same seed)."""
    from cnnlab.data.registry import get_entry

    if split in ("val", "validation") and run_cfg and "val" not in get_entry(name).splits:
        from cnnlab.data import kfold_splits, validation_split

        cfg = TrainConfig.from_dict({k: v for k, v in run_cfg.items() if k in TrainConfig.field_names()})
        full = load_split(name, "train", data_dir, opts)
        if cfg.folds:
            val_idx = kfold_splits(_labels(full), cfg.folds, seed=cfg.seed)[cfg.fold][1]
        elif cfg.validation_split > 0:
            val_idx = validation_split(_labels(full), cfg.validation_split, seed=cfg.seed)[1]
        else:
            raise UserError("the run was trained without a validation split (validation_split 0)")
        return full.subset(val_idx)
    return load_split(name, split, data_dir, opts)


class _OnnxModule:
    """Adapts an OnnxClassifier to the ``model(x) -> logits`` call used by evaluate_model."""

    def __init__(self, clf: Any):
        self.clf = clf

    def eval(self) -> _OnnxModule:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.clf(x.detach().cpu().numpy()))


def evaluate(source: str | os.PathLike, dataset: str | None = None, split: str = "test",
             data_dir: str | None = None, batch: int = 256, tta: bool = False,
             json: str | os.PathLike | None = None, runtime: str | None = None, device: str = "auto",
             dataset_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Loss, top-1/top-5 accuracy, per-class accuracy and confusion matrix of a model on a dataset split.

    ``source`` is a run folder, a checkpoint or an ``.onnx`` file; ``dataset`` defaults to the one the
    model was trained on. ``tta`` averages predictions of each image and its mirror image.
    """
    from cnnlab.data import make_loader

    lm = load(source, device="cpu", runtime=runtime)
    trained_on = lm.config.get("dataset")
    name = dataset or trained_on
    if not name:
        raise UserError(f"{source}: say which dataset to evaluate on (--dataset NAME)")
    data_dir = data_dir or (lm.config.get("data_dir") if name == trained_on else None)
    opts = dict(dataset_options if dataset_options is not None else
                (lm.config.get("dataset_options") or {} if name == trained_on else {}))
    if name == "folder" and lm.img_size:
        opts.setdefault("img_size", lm.img_size)
    ds = _eval_split(name, split, data_dir, opts, lm.config if name == trained_on else {})
    in_chans, img_size = _shape(ds)
    if in_chans != lm.in_chans or (lm.img_size and img_size and img_size != lm.img_size):
        raise UserError(f"{name} images are {in_chans}x{img_size}x{img_size}, but the model expects "
                        f"{lm.in_chans}x{lm.img_size}x{lm.img_size}")
    if len(ds.classes) != len(lm.classes):
        raise UserError(f"{name} has {len(ds.classes)} classes, the model predicts {len(lm.classes)}")
    onnx = lm.runtime == "onnxruntime"
    dev = torch.device("cpu") if onnx else resolve_device(device)
    loader = make_loader(ds, batch, shuffle=False, device=str(dev), num_classes=len(ds.classes),
                         mean=lm.mean, std=lm.std)
    model = _OnnxModule(lm.model) if onnx else lm.model.to(dev)
    start = time.perf_counter()
    logs, meter = evaluate_model(model, loader, len(ds.classes), dev, tta=tta, confusion=True,
                                 progress=_interactive())
    result: dict[str, Any] = {
        "source": str(source), "checkpoint": lm.source, "runtime": lm.runtime, "dataset": name,
        "split": split, "tta": tta, **logs, "seconds": round(time.perf_counter() - start, 3),
        **confusion_report(meter.matrix, list(ds.classes)),
    }
    if json:
        write_json(json, result)
    return result


def predict(source: str | os.PathLike, images: Sequence[str | os.PathLike | np.ndarray], topk: int = 5,
            runtime: str | None = None, device: str = "cpu") -> list[list[tuple[str, float]]]:
    """Top-k ``(class, probability)`` for each image file (or HxWxC uint8 RGB array)."""
    if not images:
        raise UserError("no images given")
    if topk < 1:
        raise UserError(f"topk must be >= 1, got {topk}")
    return load(source, device=device, runtime=runtime).predict(list(images), topk=topk)


# -----------------------------------------------------------------------------------------------
# demo

DemoPart = Callable[[Path, Callable[[str], None]], dict[str, Any]]
DEMO_PARTS: list[tuple[str, DemoPart]] = []


def register_demo_part(title: str) -> Callable[[DemoPart], DemoPart]:
    """Add a part to ``cnnlab demo`` (later features append theirs: detection, export...)."""

    def deco(fn: DemoPart) -> DemoPart:
        DEMO_PARTS.append((title, fn))
        return fn

    return deco


@register_demo_part("Classification: train a small CNN on the bundled digits")
def _demo_classify(project: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from cnnlab.data import load_dataset

    run = train(dataset="digits", model="mnist_cnn", epochs=20, batch=32, optimizer="adam", lr=1e-3,
                schedule="cosine", seed=0, project=str(project), name="demo", verbose=2, threads=1)
    ev = evaluate(run.run_dir, json=run.run_dir / "evaluate.json")
    say(f"evaluate: test accuracy {ev['accuracy']:.4f}, top-5 {ev['top5_accuracy']:.4f} on {ev['images']} "
        f"digits ({ev['images_per_s']:.0f} images/s)")
    test = load_dataset("digits", split="test")
    images = [test.images[i].permute(1, 2, 0).numpy() for i in range(4)]
    for i, top in enumerate(predict(run.run_dir, images, topk=3)):
        say(f"predict: test image {i} (a {test.classes[int(test.labels[i])]}): "
            + ", ".join(f"{c} {p:.2f}" for c, p in top))
    say("the run folder:")
    for f in ("config.yaml", "history.csv", "metrics.json", "evaluate.json", "weights/best.pt",
              "weights/last.pt", "curves.png", "confusion.png"):
        say(f"  {run.run_dir / f}")
    say(f"next: cnnlab evaluate {run.run_dir} --per-class | cnnlab predict {run.run_dir} IMAGE.png | "
        f"cnnlab train --config {run.run_dir / 'config.yaml'} --epochs 30")
    return {"run_dir": str(run.run_dir), "test_accuracy": ev["accuracy"]}


@register_demo_part("Detection: train a small YOLO on synthetic shapes, then stream a generated clip")
def _demo_detect(project: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from cnnlab.detect.train.demo import detection_demo

    return detection_demo(project, say)


def demo(project: str | os.PathLike = "runs", parts: Sequence[str] | None = None) -> dict[str, Any]:
    """The embedded tour: needs nothing downloaded; each registered part reports where its results are."""
    from rich.console import Console

    console = Console(highlight=False)
    project = Path(project)
    results: dict[str, Any] = {}
    selected = [(t, fn) for t, fn in DEMO_PARTS if parts is None or any(p.lower() in t.lower() for p in parts)]
    if not selected:
        raise UserError(f"no demo part matches {', '.join(parts or [])}")
    for title, fn in selected:
        console.rule(f"[bold]{title}")
        start = time.perf_counter()
        results[title] = fn(project, lambda m: console.print(m, soft_wrap=True))
        console.print(f"[dim]{title}: {time.perf_counter() - start:.1f}s[/]")
    return results
