"""Train a YOLO detector on labelled boxes; write a run folder every detection command can use.

    result = train_detector("data.yaml", model="yolov3-tiny", epochs=30, imgsz=320)
    result.run_dir   # runs/detect/train: weights/{best,last}.pt (+ Darknet .cfg/.weights), curves...

The loop reuses the classification trainer's parts (optimisers, schedules, EMA, RNG state, atomic
checkpoints) with YOLO targets and losses; validation is ``evaluate_detections`` (COCO mAP) on
letterboxed images, preprocessed exactly as ``Detector`` does.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.config import DetectTrainConfig
from cnnlab.darknet.model import DarknetModel
from cnnlab.detect.train.dataset import AugmentOptions, DetectionLoader, DetectionTrainSet, to_targets
from cnnlab.detect.train.loss import YoloLoss
from cnnlab.detect.types import Detections, DetectionSample
from cnnlab.errors import DataError, UserError

LAST_FORMAT_KEY = "train"  # key of the resumable training state inside last.pt


@dataclass
class DetectTrainResult:
    """What ``train_detector`` returns."""

    run_dir: Path
    metrics: dict[str, Any]
    model: DarknetModel
    history: list[dict[str, Any]] = field(default_factory=list)


def fitness(logs: dict[str, Any]) -> float:
    """Which epoch is best: 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95 (as Ultralytics)."""
    return 0.1 * float(logs.get("mAP50", 0.0)) + 0.9 * float(logs.get("mAP50_95", 0.0))


def _load_split(spec: str, split: str, names: list[str] | None = None):
    from cnnlab.detect.data import load_detection_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_detection_data(spec, split=split, names=names, warn=False)


def load_train_val(cfg: DetectTrainConfig, log=print):
    """The training and validation datasets of ``cfg.data`` (validation falls back to training)."""
    train = _load_split(cfg.data, "train")
    if train.num_boxes == 0:
        raise DataError(f"{cfg.data}: the training split has no labelled boxes")
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
        import cv2

        if i in self._images:
            return self._images[i]
        img = cv2.imread(str(self.samples[i].image_path), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"unreadable image: {self.samples[i].image_path}")
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


class DetectionTrainer:
    """One detector training run: model, data, optimiser, schedule, EMA, history and its run folder."""

    def __init__(self, cfg: DetectTrainConfig, model: DarknetModel, train_set, val_set, names: list[str],
                 run_dir: Path, callbacks: Iterable[Any] = (), log=print, init_info: dict | None = None) -> None:
        from cnnlab.config import TrainConfig
        from cnnlab.engine.ema import ModelEMA
        from cnnlab.engine.optim import Schedule, create_optimizer

        self.cfg, self.model, self.names, self.run_dir = cfg, model, list(names), run_dir
        self.device = torch.device(cfg.device)
        self.model.to(self.device)
        self.callbacks = list(callbacks)
        self.log = log
        self.init_info = init_info or {}
        self.stop_training = False
        aug = None
        if cfg.augment:
            aug = AugmentOptions.from_config(cfg)
        self.train_data = DetectionTrainSet(train_set.samples, cfg.imgsz, aug, cfg.seed, cfg.cache)
        self.loader = DetectionLoader(self.train_data, cfg.batch, shuffle=True, seed=cfg.seed,
                                      multi_scale=cfg.multi_scale)
        self.val_data = ValidationSet(val_set.samples, cfg.imgsz, cfg.cache)
        self.criterion = YoloLoss(model, cfg.box_loss, cfg.box_gain, cfg.obj_gain, cfg.cls_gain,
                                  cfg.iou_thresh, cfg.ignore_thresh, imgsz=cfg.imgsz)
        if cfg.freeze:
            from cnnlab.detect.train.model import freeze_layers

            freeze_layers(model, cfg.freeze)
        opt_cfg = TrainConfig.from_dict({
            "optimizer": cfg.optimizer, "lr": cfg.lr, "momentum": cfg.momentum, "nesterov": cfg.nesterov,
            "betas": list(cfg.betas), "weight_decay": cfg.weight_decay, "schedule": cfg.schedule,
            "warmup_epochs": cfg.warmup_epochs, "warmup_start": cfg.warmup_start, "epochs": cfg.epochs,
            "min_lr": cfg.lr * 0.01 if cfg.min_lr is None else cfg.min_lr, "monitor": "val_loss"},
            source="detect-train options")
        self.optimizer = create_optimizer(model, opt_cfg)
        self.schedule = Schedule(self.optimizer, opt_cfg, len(self.loader))
        self.ema = ModelEMA(model, cfg.ema, cfg.ema_warmup) if cfg.ema else None
        self.history: list[dict[str, Any]] = []
        self.best_fitness: float | None = None
        self.start_epoch = 0
        self.last_eval: dict[str, Any] = {}

    # -- model views ------------------------------------------------------------------------------
    @property
    def eval_model(self) -> DarknetModel:
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    def _set_train_mode(self) -> None:
        self.model.train()
        for i, layer in enumerate(self.model.layers):  # frozen layers keep their BN statistics
            if i < self.cfg.freeze:
                layer.eval()

    # -- one epoch --------------------------------------------------------------------------------
    def train_one_epoch(self, epoch: int, bar=None) -> dict[str, float]:
        cfg = self.cfg
        self.loader.set_epoch(epoch)
        self.train_data.mosaic_off = epoch >= cfg.epochs - cfg.close_mosaic
        self._set_train_mode()
        sums = {"box": 0.0, "obj": 0.0, "cls": 0.0, "loss": 0.0}
        n = 0
        seen = 0
        task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=len(self.loader)) if bar else None
        for b, (x, t) in enumerate(self.loader):
            if epoch == 0 and b == 0 and cfg.plots and self.start_epoch == 0:
                from cnnlab.detect.train.plots import save_train_batch

                save_train_batch(self.run_dir / "train_batch0.jpg", x, t, self.names)
            x = x.to(self.device)
            raw = self.model.forward_raw(x)
            loss, parts = self.criterion(raw, t, (x.shape[2], x.shape[3]))
            if not torch.isfinite(loss):
                raise UserError(f"the loss became {float(loss)} at epoch {epoch + 1}, batch {b + 1}: lower --lr")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.schedule.step_batch()
            if self.ema is not None:
                self.ema.update(self.model)
            for k, v in parts.items():
                sums[k] += v
            sums["loss"] += float(loss.detach()) / x.shape[0]
            n += 1
            seen += x.shape[0]
            if bar is not None:
                bar.update(task, advance=1, description=f"epoch {epoch + 1}/{cfg.epochs} loss {sums['loss'] / n:.3f}")
        if bar is not None:
            bar.remove_task(task)
        return {f"{k}_loss" if k != "loss" else "loss": v / max(n, 1) for k, v in sums.items()} | {"images": seen}

    @torch.no_grad()
    def validate(self, sample_plot: Path | None = None) -> dict[str, Any]:
        """Validation losses and COCO mAP of the (EMA) model on the validation images."""
        from cnnlab.detect.evaluate import evaluate_detections
        from cnnlab.detect.processing import postprocess_output

        model = self.eval_model
        model.eval()
        cfg = self.cfg
        preds: dict[int, Detections] = {}
        sums = {"box": 0.0, "obj": 0.0, "cls": 0.0}
        nb = 0
        t0 = time.perf_counter()
        for idx, x, t, metas in self.val_data.batches(max(1, cfg.batch)):
            x = x.to(self.device)
            raw = model.forward_raw(x)
            _, parts = self.criterion(raw, t, (x.shape[2], x.shape[3]))
            for k, v in parts.items():
                sums[k] += v
            nb += 1
            decoded = [d.cpu().numpy() for d in model.decode(raw, (x.shape[2], x.shape[3]))]
            for k, i in enumerate(idx):
                preds[i] = postprocess_output([d[k] for d in decoded], "darknet", metas[k], self.names,
                                              cfg.conf, cfg.iou, 300)
        seconds = time.perf_counter() - t0
        result = evaluate_detections(self.val_data.samples, preds, self.names)
        self.last_eval = result
        if sample_plot is not None:
            from cnnlab.detect.train.plots import save_val_samples

            k = min(4, len(self.val_data.samples))
            save_val_samples(sample_plot, [self.val_data.image(i) for i in range(k)],
                             [(self.val_data.samples[i].boxes, self.val_data.samples[i].class_ids) for i in range(k)],
                             [preds[i] for i in range(k)], self.names)
        return {"val_box_loss": sums["box"] / max(nb, 1), "val_obj_loss": sums["obj"] / max(nb, 1),
                "val_cls_loss": sums["cls"] / max(nb, 1),
                "val_loss": (self.criterion.box_gain * sums["box"] + self.criterion.obj_gain * sums["obj"]
                             + self.criterion.cls_gain * sums["cls"]) / max(nb, 1),
                "mAP50": float(result["mAP50"]), "mAP50_95": float(result["mAP50_95"]),
                "precision": float(result["precision"]), "recall": float(result["recall"]),
                "val_seconds": seconds}

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self, which: str, epoch: int, logs: dict[str, Any]) -> Path:
        """``weights/<which>.pt`` (a ``cnnlab.detect`` checkpoint; last.pt also holds the training
        state) plus ``weights/<which>.cfg`` + ``.weights`` in Darknet format."""
        from cnnlab.darknet.weights import save_darknet_weights
        from cnnlab.detect.checkpoint import save_detector_checkpoint
        from cnnlab.engine.checkpoint import rng_state
        from cnnlab.io import atomic_write_text

        wdir = self.run_dir / "weights"
        model = self.eval_model
        extra: dict[str, Any] = {"epoch": epoch, "metrics": _plain(logs), "config": self.cfg.to_dict(),
                                 "init": _plain(self.init_info)}
        if which == "last":
            extra[LAST_FORMAT_KEY] = {
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "ema_updates": self.ema.updates if self.ema is not None else 0,
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "rng": rng_state(), "history": _plain(self.history), "best_fitness": self.best_fitness,
            }
        path = save_detector_checkpoint(wdir / f"{which}.pt", model, self.names,
                                        (self.cfg.imgsz, self.cfg.imgsz), True, extra)
        atomic_write_text(wdir / f"{which}.cfg", model.to_cfg())
        save_darknet_weights(model, wdir / f"{which}.weights")
        return path

    def load_training_state(self, ckpt: dict[str, Any]) -> None:
        """Continue from ``last.pt``: weights, EMA, optimiser, schedule, RNG, history and best fitness."""
        from cnnlab.engine.checkpoint import set_rng_state

        state = ckpt.get(LAST_FORMAT_KEY)
        if not isinstance(state, dict):
            raise UserError("the checkpoint holds no training state (only last.pt can be resumed)")
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"], int(state.get("ema_updates", 0)))
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        set_rng_state(state["rng"])
        self.history = list(state.get("history") or [])
        self.best_fitness = state.get("best_fitness")
        self.start_epoch = int(ckpt.get("epoch", 0))

    # -- the run ----------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from cnnlab.engine.callbacks import write_history
        from cnnlab.runs import write_run_metrics

        cfg = self.cfg
        for cb in self.callbacks:
            cb.on_train_begin(self)
        logs: dict[str, Any] = {}
        show_bar = cfg.verbose == 1
        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*cols, disable=not show_bar, transient=True) as bar:
            for epoch in range(self.start_epoch, cfg.epochs):
                t0, c0 = time.perf_counter(), time.process_time()
                logs = {"epoch": epoch + 1, "lr": self.schedule.lr}
                logs.update(self.train_one_epoch(epoch, bar if show_bar else None))
                train_s = time.perf_counter() - t0
                last = epoch + 1 == cfg.epochs
                if (epoch + 1) % cfg.val_period == 0 or last:
                    plot = self.run_dir / "val_samples.jpg" if cfg.plots else None
                    logs.update(self.validate(plot))
                logs["epoch_time"] = time.perf_counter() - t0
                logs["epoch_cpu_time"] = time.process_time() - c0   # CPU seconds of this process (all threads)
                logs["images_per_s"] = logs.pop("images") / max(train_s, 1e-9)
                self.schedule.step_epoch(logs)
                self.history.append(_plain(logs))
                improved = "mAP50" in logs and (self.best_fitness is None or fitness(logs) > self.best_fitness)
                if improved:
                    self.best_fitness = fitness(logs)
                    self.save("best", epoch + 1, logs)
                self.save("last", epoch + 1, logs)
                write_history(self.run_dir, self.history)
                if cfg.plots:
                    from cnnlab.detect.train.plots import plot_detect_curves

                    plot_detect_curves(self.history, self.run_dir / "results.png")
                if cfg.verbose:
                    self.log(_epoch_line(logs, cfg.epochs, improved))
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                if self.stop_training:
                    break
        best = max((h for h in self.history if "mAP50" in h), key=fitness, default=logs)
        metrics = {"best_epoch": best.get("epoch"), "mAP50": best.get("mAP50"), "mAP50_95": best.get("mAP50_95"),
                   "precision": best.get("precision"), "recall": best.get("recall"),
                   "epochs_done": len(self.history), "last": _plain(logs),
                   "train_seconds": float(sum(h.get("epoch_time", 0.0) for h in self.history)),
                   "train_cpu_seconds": float(sum(h.get("epoch_cpu_time", 0.0) for h in self.history)),
                   "per_class": self.last_eval.get("per_class", {})}
        write_run_metrics(self.run_dir, metrics)
        for cb in self.callbacks:
            cb.on_train_end(self, logs)
        return metrics


def _epoch_line(logs: dict[str, Any], epochs: int, improved: bool) -> str:
    parts = [f"epoch {logs['epoch']}/{epochs}", f"loss {logs['loss']:.4f} (box {logs['box_loss']:.3f} "
             f"obj {logs['obj_loss']:.3f} cls {logs['cls_loss']:.3f})"]
    if "mAP50" in logs:
        parts.append(f"val mAP50 {logs['mAP50']:.4f} mAP50-95 {logs['mAP50_95']:.4f}" + (" *" if improved else ""))
    parts.append(f"{logs['epoch_time']:.1f}s")
    return " - ".join(parts)


def _plain(obj: Any) -> Any:
    """Plain Python data (numpy scalars to floats) so checkpoints load with weights_only."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _resolve_anchors(cfg: DetectTrainConfig, train_samples: list[DetectionSample], log) -> list[list[float]] | None:
    if cfg.anchors is None:
        return None
    if isinstance(cfg.anchors, str):
        if cfg.anchors != "auto":
            raise UserError(f"anchors must be a list of [w, h] pairs or 'auto', got {cfg.anchors!r}")
        from cnnlab.detect.train.anchors import anchor_fitness, dataset_wh, kmeans_anchors
        from cnnlab.detect.train.model import is_native

        n = _anchor_count(cfg.model) if not is_native(cfg.model) else (6 if "tiny" in cfg.model.lower() else 9)
        wh = dataset_wh(train_samples, cfg.imgsz)
        anchors = kmeans_anchors(wh, n, cfg.seed)
        fit = anchor_fitness(wh, anchors)
        log(f"anchors (k-means, {n}): {np.round(anchors).astype(int).tolist()} mean IoU {fit['mean_iou']:.3f}")
        return [[float(w), float(h)] for w, h in anchors]
    return [[float(v) for v in a] for a in cfg.anchors]


def _anchor_count(spec: str) -> int:
    from cnnlab.darknet.cfg import parse_cfg_text, read_cfg

    p = Path(spec)
    if p.suffix.lower() == ".cfg":
        secs = read_cfg(p)
    else:
        from cnnlab.detect.checkpoint import load_detector_checkpoint
        from cnnlab.detect.source import resolve_model_source

        src = resolve_model_source(model=p)
        secs = parse_cfg_text(load_detector_checkpoint(src.checkpoint)[0].to_cfg())
    yolo = [s for s in secs if s.type == "yolo"]
    return len(yolo[0].get_floats("anchors", [])) // 2 if yolo else 9


def _find_last(resume: str | os.PathLike) -> Path:
    p = Path(resume)
    if p.is_file():
        return p
    if (p / "weights" / "last.pt").is_file():
        return p / "weights" / "last.pt"
    raise UserError(f"nothing to resume at {p}: expected a detection run folder with weights/last.pt")


def train_detector(data: str | os.PathLike | None = None, config: DetectTrainConfig | dict | None = None,
                   resume: str | os.PathLike | None = None, callbacks: Iterable[Any] = (), log=None,
                   **overrides: Any) -> DetectTrainResult:
    """Train a YOLO detector; returns the run folder, best metrics and the best (EMA) model, eval mode.

    data: a data.yaml / YOLO folder / COCO json / VOC folder. ``overrides`` are `DetectTrainConfig`
    fields (model, weights, epochs, batch, imgsz, lr, optimizer, box_loss, mosaic, ...).
    resume: a run folder (or its last.pt): continue it to ``epochs`` with the saved options.
    callbacks: objects with ``on_train_begin(trainer)``, ``on_epoch_end(trainer, epoch, logs)``,
    ``on_train_end(trainer, logs)`` (Keras vocabulary); ``trainer.stop_training = True`` stops early.
    """
    from cnnlab.darknet.cfg import parse_cfg_text
    from cnnlab.engine.loop import seed_everything
    from cnnlab.io import torch_load_safe
    from cnnlab.runs import new_run_dir, write_run_config

    if log is None:
        from rich.console import Console

        console = Console(highlight=False)

        def log(msg: str) -> None:
            console.print(msg, soft_wrap=True, markup=False)

    ckpt = None
    if resume is not None:
        last = _find_last(resume)
        ckpt = torch_load_safe(last)
        if not isinstance(ckpt, dict) or ckpt.get("format") != "cnnlab.detect" or LAST_FORMAT_KEY not in ckpt:
            raise UserError(f"{last}: not a resumable detection checkpoint (weights/last.pt of a detect-train run)")
        saved = dict(ckpt.get("config") or {})
        allowed = {"epochs", "device", "threads", "verbose", "plots"}
        bad = sorted(set(overrides) - allowed)
        if bad or data is not None or config is not None:
            raise UserError("a resumed run keeps its options; only epochs, device, threads, verbose and plots "
                            f"can change (got {', '.join(bad) or 'data/config'})")
        saved.update(overrides)
        cfg = DetectTrainConfig.from_dict(saved, source=str(last))
        if int(ckpt.get("epoch", 0)) >= cfg.epochs:
            raise UserError(f"{last}: the run already finished {ckpt.get('epoch')} of {cfg.epochs} epochs; "
                            "pass --epochs N to train longer")
        run_dir = last.parent.parent
    else:
        base = config.to_dict() if isinstance(config, DetectTrainConfig) else dict(config or {})
        if data is not None:
            base["data"] = str(data)
        base.update(overrides)
        cfg = DetectTrainConfig.from_dict(base)
        run_dir = None

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    seed_everything(cfg.seed)
    train_set, val_set = load_train_val(cfg, log)
    names = list(train_set.names)
    if ckpt is not None:
        model = DarknetModel(parse_cfg_text(ckpt["cfg"], source="last.pt"), source=str(run_dir))
        info = dict(ckpt.get("init") or {})
    else:
        from cnnlab.detect.train.model import build_training_model

        anchors = _resolve_anchors(cfg, train_set.samples, log)
        model, info = build_training_model(cfg.model, len(names), cfg.imgsz, cfg.width_mult, anchors,
                                           cfg.weights, cfg.seed)
        if anchors is not None:
            cfg.anchors = anchors
        run_dir = new_run_dir(cfg.project, "detect", cfg.name, exist_ok=cfg.exist_ok)
    assert run_dir is not None
    trainer = DetectionTrainer(cfg, model, train_set, val_set, names, run_dir, callbacks, log, info)
    if ckpt is not None:
        trainer.load_training_state(ckpt)
        log(f"resuming {run_dir} from epoch {trainer.start_epoch + 1}/{cfg.epochs}")
    else:
        write_run_config(run_dir, {"task": "detect-train", **cfg.to_dict(), "names": names, "init": _plain(info)})
        from cnnlab.io import atomic_write_text

        atomic_write_text(run_dir / "weights" / "classes.names", "".join(f"{n}\n" for n in names))
        if cfg.verbose:
            n_params = sum(p.numel() for p in model.parameters())
            log(f"detect-train: {cfg.model} ({n_params / 1e6:.2f}M parameters, {len(names)} classes"
                + (f", transferred {info['transferred']} tensors" if "transferred" in info else "")
                + f") on {len(train_set)} train / {len(val_set)} val images at {cfg.imgsz}px -> {run_dir}")
    metrics = trainer.fit()
    best = run_dir / "weights" / "best.pt"
    if best.is_file():
        from cnnlab.detect.checkpoint import load_detector_checkpoint

        model = load_detector_checkpoint(best)[0]
    else:
        model = copy.deepcopy(trainer.eval_model).eval()
    return DetectTrainResult(run_dir, metrics, model, trainer.history)
