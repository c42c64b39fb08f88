"""Trainer loop on synthetic tensors: learning, callbacks, checkpoints and exact resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.config import TrainConfig
from cnnlab.engine.callbacks import Callback, EarlyStopping, HistoryLogger, ModelCheckpoint
from cnnlab.engine.checkpoint import load_checkpoint
from cnnlab.tasks.classify.task import Trainer


class TensorLoader:
    """Minimal loader with the data contract: shuffling is a pure function of (seed, epoch)."""

    def __init__(self, x, y, batch, shuffle=True, seed=0, soft=False):
        self.x, self.y, self.batch, self.shuffle, self.seed, self.soft = x, y, batch, shuffle, seed, soft
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return (len(self.x) + self.batch - 1) // self.batch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.x), generator=g) if self.shuffle else torch.arange(len(self.x))
        for i in range(0, len(order), self.batch):
            idx = order[i:i + self.batch]
            y = self.y[idx]
            if self.soft:
                y = nn.functional.one_hot(y, 3).float() * 0.9 + 0.1 / 3
            yield self.x[idx], y


def blobs(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centers = torch.tensor([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    x = centers[y] + 0.5 * torch.randn(n, 4, generator=g)
    return x.view(n, 1, 2, 2), y


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def make(cfg, callbacks=(), soft=False):
    x, y = blobs()
    xv, yv = blobs(48, seed=1)
    return Trainer(tiny_model(cfg.seed), cfg, TensorLoader(x, y, cfg.batch, soft=soft),
                   TensorLoader(xv, yv, 32, shuffle=False), num_classes=3, callbacks=callbacks,
                   meta={"model_spec": {"name": "tiny", "num_classes": 3, "in_chans": 1}, "classes": list("abc")})


def test_fit_learns_and_logs_contract_keys():
    cfg = TrainConfig(epochs=6, batch=16, optimizer="adam", lr=0.02, verbose=0, validation_split=0.1)
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append((epoch, dict(logs)))

    tr = make(cfg, [Spy()])
    history = tr.fit()
    assert len(history) == 6 and [e for e, _ in seen] == list(range(1, 7))
    keys = {"loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy", "lr",
            "epoch_time", "images_per_s"}
    assert keys <= set(seen[-1][1])
    assert history[-1]["val_accuracy"] > 0.9
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["top5_accuracy"] == 1.0  # 3 classes: top-5 is capped at top-3


@pytest.mark.parametrize("opts", [
    {"optimizer": "sgd", "nesterov": True, "schedule": "cosine", "warmup_epochs": 1, "ema": 0.9},
    {"optimizer": "rmsprop", "lr": 0.005, "schedule": "onecycle", "grad_clip": 1.0, "l1": 1e-4},
    {"optimizer": "adamw", "schedule": "plateau", "plateau_patience": 0, "weight_decay": 0.05,
     "label_smoothing": 0.1},
    {"optimizer": "nadam", "schedule": "piecewise", "boundaries": [2, 3], "factors": [0.5, 0.1]},
])
def test_options_train(opts):
    cfg = TrainConfig(epochs=4, batch=16, verbose=0, **{"lr": 0.05, **opts})
    tr = make(cfg)
    tr.fit()
    assert tr.history[-1]["val_accuracy"] > 0.8


def test_soft_targets_from_mixup_are_accepted():
    cfg = TrainConfig(epochs=3, batch=16, optimizer="adam", lr=0.02, verbose=0)
    tr = make(cfg, soft=True)
    tr.fit()
    assert tr.history[-1]["val_accuracy"] > 0.8


def test_early_stopping_stops():
    cfg = TrainConfig(epochs=20, batch=16, lr=1e-6, verbose=0)  # lr too small to improve
    stop = EarlyStopping("val_loss", patience=2, min_delta=1.0)
    tr = make(cfg, [stop])
    tr.fit()
    assert len(tr.history) == 3 and stop.stopped_epoch == 3


class StopAfter(Callback):
    def __init__(self, k):
        self.k = k

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.k:
            raise KeyboardInterrupt


@pytest.mark.parametrize("opts", [
    {"optimizer": "sgd", "schedule": "cosine", "warmup_epochs": 1, "ema": 0.99},
    {"optimizer": "adam", "schedule": "plateau", "plateau_patience": 0, "patience": 3},
])
def test_resume_is_exact(tmp_path, opts):
    cfg = TrainConfig(epochs=5, batch=16, lr=0.05, verbose=0, **opts)

    def callbacks(d):
        cbs = [HistoryLogger(d), ModelCheckpoint(d / "weights", cfg.monitor)]
        if cfg.patience:
            cbs.insert(0, EarlyStopping(cfg.monitor, cfg.patience))
        return cbs

    full = make(cfg, callbacks(tmp_path / "a"))
    full.fit()

    part = make(cfg, [*callbacks(tmp_path / "b"), StopAfter(2)])
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    ckpt = load_checkpoint(tmp_path / "b" / "weights" / "last.pt")  # weights_only load
    assert ckpt["epoch"] == 2
    torch.manual_seed(123)  # the resumed process starts from a different RNG state
    resumed = make(cfg, callbacks(tmp_path / "b"))
    resumed.load_checkpoint(ckpt)
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    if full.ema is not None:
        ea, eb = full.ema.state_dict(), resumed.ema.state_dict()
        assert all(torch.equal(ea[k], eb[k]) for k in ea)
    assert [h["val_loss"] for h in full.history] == [h["val_loss"] for h in resumed.history]
    assert (tmp_path / "b" / "history.csv").read_text().count("\n") == 6
