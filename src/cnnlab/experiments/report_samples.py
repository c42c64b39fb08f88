"""Sample predictions of a trained run: a grid of held-out images with predicted vs true labels.

The model comes from the run folder through ``cnnlab.api.load`` and the images from the run's own
dataset: its test split when it has one, else the validation images the run held out.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import UserError
from cnnlab.plots import pyplot, save_figure


def held_out_images(config: dict[str, Any], n: int, seed: int = 0) -> tuple[list[np.ndarray], list[int],
                                                                           list[str], str]:
    """``n`` seeded picks of the run's test images (HxWxC uint8), their labels, the classes, the split."""
    from cnnlab.data import kfold_splits, validation_split
    from cnnlab.tasks.classify.data import load_split

    name = config.get("dataset")
    if not name:
        raise UserError("the run's config names no dataset")
    opts = dict(config.get("dataset_options") or {})
    if name == "folder" and config.get("img_size"):
        opts.setdefault("img_size", config["img_size"])
    data_dir = config.get("data_dir")
    try:
        ds, split = load_split(name, "test", data_dir, opts), "test"
        idx = np.arange(len(ds))
    except UserError:
        ds, split = load_split(name, "train", data_dir, opts), "validation"
        labels = np.asarray(ds.labels)
        fraction = float(config.get("validation_split") or 0.0)
        seed_ = int(config.get("seed", 0))
        if int(config.get("folds") or 0) > 1:
            idx = kfold_splits(labels, int(config["folds"]), seed=seed_)[int(config.get("fold") or 0)][1]
        elif fraction > 0:
            _, idx = validation_split(labels, fraction, seed=seed_)
        else:
            idx, split = np.arange(len(labels)), "train"
    if len(idx) == 0:
        raise UserError(f"{name} has no {split} images to show")
    pick = np.sort(np.random.default_rng(seed).choice(np.asarray(idx), min(n, len(idx)), replace=False))
    images, labels_out = [], []
    for i in pick.tolist():
        img, label = ds[int(i)]
        images.append(np.ascontiguousarray(np.asarray(img).transpose(1, 2, 0)))
        labels_out.append(int(label))
    return images, labels_out, list(ds.classes), split


def sample_predictions(run: str | Path, path: str | Path, n: int = 16, seed: int = 0
                       ) -> tuple[Path, list[dict[str, Any]], str]:
    """Predict ``n`` held-out images of ``run``; save the grid to ``path``; return it, the rows, the split."""
    from cnnlab.api import load
    from cnnlab.runs import read_run_config

    loaded = load(run)
    config = dict(loaded.config or read_run_config(run))
    images, labels, classes, split = held_out_images(config, n, seed)
    preds = loaded.predict(images, topk=1)
    rows = []
    for k, (label, pred) in enumerate(zip(labels, preds, strict=True)):
        name, prob = pred[0]
        true = classes[label] if label < len(classes) else str(label)
        rows.append({"image": k + 1, "true": true, "predicted": name, "probability": round(prob, 4),
                     "correct": "yes" if name == true else "no"})
    return plot_grid(images, rows, path), rows, split


def plot_grid(images: list[np.ndarray], rows: list[dict[str, Any]], path: str | Path) -> Path:
    """A grid of images titled ``predicted (probability) / true``, green when right, red when wrong."""
    n = len(images)
    cols = max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / cols))
    fig, axes = pyplot().subplots(nrows, cols, figsize=(1.9 * cols, 2.1 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, row in zip(axes.ravel(), images, rows, strict=False):
        gray = img.shape[2] == 1
        ax.imshow(img[:, :, 0] if gray else img, cmap="gray" if gray else None, interpolation="nearest",
                  vmin=0, vmax=255)
        ok = row["correct"] == "yes"
        ax.set_title(f"{_short(row['predicted'])} {row['probability']:.0%}\ntrue: {_short(row['true'])}",
                     fontsize=8, color="#2a9d55" if ok else "#c0392b")
    right = sum(r["correct"] == "yes" for r in rows)
    fig.suptitle(f"sample predictions: {right} of {n} right", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
