"""cnnlab.train / evaluate / predict / load on the bundled digits (tiny, fast runs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.api import load
from cnnlab.engine.callbacks import Callback
from cnnlab.engine.checkpoint import load_checkpoint
from cnnlab.errors import CnnlabWarning, UserError
from cnnlab.io import read_yaml

FAST = {"dataset": "digits", "model": "lenet5", "batch": 64, "optimizer": "adam", "lr": 3e-3, "verbose": 0,
        "threads": 1}


def test_train_writes_the_run_folder(tmp_path):
    run = cnnlab.train(FAST, epochs=2, project=tmp_path, name="exp", schedule="cosine")
    d = run.run_dir
    assert d == tmp_path / "classify" / "exp"
    for f in ("config.yaml", "history.csv", "history.json", "metrics.json", "weights/best.pt",
              "weights/last.pt", "curves.png", "confusion.png"):
        assert (d / f).is_file(), f
    assert (d / "curves.png").read_bytes()[:4] == b"\x89PNG"
    cfg = read_yaml(d / "config.yaml")
    assert cfg["model"] == "lenet5" and cfg["epochs"] == 2 and cfg["seed"] == 0
    m = run.metrics
    assert m["epochs"] == 2 and 0.3 < m["test_accuracy"] <= 1 and m["test_top5_accuracy"] >= m["test_accuracy"]
    assert m["params_trainable"] == sum(p.numel() for p in run.model.parameters())
    assert set(m["test"]["per_class_accuracy"]) == {str(i) for i in range(10)}
    assert np.array(m["test"]["confusion_matrix"]).sum() == 360
    ckpt = load_checkpoint(d / "weights" / "last.pt")  # weights_only
    for key in ("model_spec", "model", "ema", "optimizer", "scheduler", "epoch", "rng", "config", "classes",
                "preprocess", "metrics"):
        assert key in ckpt
    assert ckpt["epoch"] == 2 and ckpt["preprocess"]["img_size"] == 8 and ckpt["preprocess"]["in_chans"] == 1
    assert (d / "history.csv").read_text().splitlines()[0].startswith("epoch,loss,accuracy,top5_accuracy")

    # evaluate the same weights again: same figures
    ev = cnnlab.evaluate(run, json=tmp_path / "ev.json")
    assert ev["accuracy"] == pytest.approx(m["test_accuracy"]) and ev["images"] == 360
    assert (tmp_path / "ev.json").is_file()
    val = cnnlab.evaluate(d, split="val")  # the run's own validation split, rebuilt from its config
    assert val["images"] == 144 and val["accuracy"] == pytest.approx(m["val_accuracy"])
    with pytest.warns(CnnlabWarning, match="never trained with flips"):  # digits: no flips, so no TTA
        tta = cnnlab.evaluate(d / "weights" / "best.pt", tta=True)
    assert tta["tta"] == [] and tta["accuracy"] == pytest.approx(ev["accuracy"])

    # load + predict on HxWxC uint8 images
    lm = load(d)
    assert (lm.in_chans, lm.img_size, lm.classes[:2]) == (1, 8, ["0", "1"]) and not lm.model.training
    imgs = [np.full((8, 8, 3), 40 * i, np.uint8) for i in range(3)]
    assert lm.preprocess(imgs).shape == (3, 1, 8, 8)
    preds = cnnlab.predict(d, imgs, topk=3)
    assert len(preds) == 3 and all(len(p) == 3 for p in preds)
    assert all(p[0][1] >= p[1][1] >= p[2][1] for p in preds) and sum(q for _, q in preds[0]) <= 1.0 + 1e-6


class InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_after_interrupt_gives_identical_weights(tmp_path):
    opts = dict(FAST, model="mnist_cnn", epochs=3, schedule="cosine", warmup_epochs=1, ema=0.99, ema_warmup=10,
                label_smoothing=0.1, augment={"horizontal_flip": True, "width_shift_range": 0.1},
                project=tmp_path, plots=False)
    full = cnnlab.train(opts, name="full")
    with pytest.raises(KeyboardInterrupt):
        cnnlab.train(opts, name="cut", callbacks=[InterruptAt(1)])
    assert load_checkpoint(tmp_path / "classify" / "cut" / "weights" / "last.pt")["epoch"] == 1
    torch.manual_seed(1234)  # a new process would start from another RNG state
    resumed = cnnlab.train(resume=tmp_path / "classify" / "cut")
    assert resumed.run_dir == tmp_path / "classify" / "cut"
    a = load_checkpoint(full.run_dir / "weights" / "last.pt")
    b = load_checkpoint(resumed.run_dir / "weights" / "last.pt")
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert resumed.metrics["test_accuracy"] == full.metrics["test_accuracy"]
    assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]
    with pytest.raises(UserError, match="already completed 3 of 3 epochs"):
        cnnlab.train(resume=resumed.run_dir)
    with pytest.raises(UserError, match="cannot change lr when resuming"):
        cnnlab.train(resume=resumed.run_dir, lr=0.1, epochs=4)


def test_kfold_validation_and_warm_start(tmp_path):
    run = cnnlab.train(FAST, epochs=1, folds=3, fold=1, project=tmp_path, name="k", plots=False)
    hist = load_checkpoint(run.run_dir / "weights" / "last.pt")["history"]
    assert "val_accuracy" in hist[0]
    from cnnlab.data import kfold_splits, load_dataset

    labels = load_dataset("digits").labels
    n_val = len(kfold_splits(labels, 3, seed=0)[1][1])
    assert abs(n_val - len(labels) / 3) < 3
    warm = cnnlab.train(FAST, epochs=1, validation_split=0.0, project=tmp_path, name="w", plots=False,
                        weights=str(run.run_dir / "weights" / "best.pt"))
    assert warm.metrics["test_accuracy"] > 0 and "val_accuracy" not in warm.metrics


def test_subset_max_params_and_early_stopping(tmp_path):
    with pytest.raises(UserError, match="over the budget"):
        cnnlab.train(FAST, model="mnist_cnn", max_params="10k", project=tmp_path)
    run = cnnlab.train(FAST, epochs=30, subset=200, lr=1e-7, patience=2, min_delta=0.5, project=tmp_path,
                       plots=False, name="es")
    assert run.metrics["epochs"] == 3  # no improvement of 0.5 in val_accuracy: stopped after patience


def test_folder_dataset_and_onnx_dispatch(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 3)):
        for c, colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
            d = tmp_path / "imgs" / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                img = np.clip(np.array(colour) + rng.integers(-40, 40, (12, 12, 3)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(d / f"{i}.png"), img)
    run = cnnlab.train(FAST, dataset="folder", data_dir=str(tmp_path / "imgs"), img_size=8, model="mnist_cnn",
                       epochs=6, validation_split=0.0, project=tmp_path, plots=False)
    assert run.metrics["test"]["images"] == 9 and run.metrics["test_accuracy"] >= 2 / 3
    ev = cnnlab.evaluate(run, split="test")
    assert ev["accuracy"] == pytest.approx(run.metrics["test_accuracy"])
    top = cnnlab.predict(run, [str(tmp_path / "imgs/test/class2/0.png")], topk=1)
    assert top[0][0][0] in ("class0", "class1", "class2")

    from cnnlab.deploy.export import export

    onnx = export(run.run_dir, "onnx", tmp_path / "m.onnx").path
    ev_onnx = cnnlab.evaluate(onnx, dataset="folder", data_dir=str(tmp_path / "imgs"), runtime="onnxruntime",
                              dataset_options={"img_size": 8})
    assert ev_onnx["runtime"] == "onnxruntime" and ev_onnx["accuracy"] == pytest.approx(ev["accuracy"])
    assert cnnlab.load(onnx).classes == ["class0", "class1", "class2"]
    with pytest.raises(UserError, match="which dataset"):
        cnnlab.evaluate(onnx)


def test_tensorboard_missing_is_a_clear_error(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install tensorboard"):
            cnnlab.train(FAST, epochs=1, tensorboard=True, project=tmp_path, plots=False)
        assert not (tmp_path / "classify").exists()  # refused before anything was written
    else:
        run = cnnlab.train(FAST, epochs=1, tensorboard=True, project=tmp_path, plots=False)
        assert any((run.run_dir / "tensorboard").iterdir())
