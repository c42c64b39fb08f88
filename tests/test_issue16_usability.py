"""Issue 16 regressions (part A): named files resolve the same way everywhere, the test evaluation after
training can be limited or skipped, metrics.json is written every epoch, TTA uses only the flips a run
trained with, one meaning of train/ val/ test/ for image folders, a clean terminal."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import CnnlabWarning, UserError
from cnnlab.paths import find_file

FAST = {"dataset": "digits", "model": "lenet5", "batch": 64, "optimizer": "adam", "lr": 3e-3, "verbose": 0,
        "threads": 1}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One tiny run without augmentation (1 epoch on the bundled 8x8 digits)."""
    return cnnlab.train(FAST, epochs=1, project=tmp_path_factory.mktemp("runs"), name="plain").run_dir


# ------------------------------------------------------------------------------ one resolver for named files
def test_bundled_sample_photos_and_data_root_files_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "data"))
    china = find_file("china.jpg", "image")
    assert china.is_file() and china.name == "china.jpg" and "sklearn" in str(china)
    assert find_file("flower", "image").name == "flower.jpg"
    (tmp_path / "data" / "weights").mkdir(parents=True)
    (tmp_path / "data" / "weights" / "w.h5").write_bytes(b"x")
    assert find_file("w.h5", "weights") == tmp_path / "data" / "weights" / "w.h5"
    (tmp_path / "local.h5").write_bytes(b"y")
    monkeypatch.chdir(tmp_path)
    assert find_file("local.h5", "weights") == Path("local.h5")  # the path as given wins
    with pytest.raises(UserError) as e:
        find_file("nothere.h5", "weights", what="pretrained weights")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("pretrained weights not found: nothere.h5")
    assert str(tmp_path / "data" / "weights") in msg
    with pytest.raises(UserError, match="bundled samples: china.jpg, flower.jpg"):
        find_file("nothere.jpg", "image")


def test_predict_and_visualize_take_the_bundled_sample_names(cli, digits_run):
    """Issue 16: `cnnlab predict MODEL china.jpg flower.jpg` (docs/deploy.md) said "image not found"."""
    code, out, err = cli("predict", digits_run, "china.jpg", "flower.jpg", "--topk", "2")
    assert code == 0, err
    assert "china.jpg" in out and "flower.jpg" in out
    code, out, err = cli("visualize", "features", digits_run, "flower.jpg", "-o", "f.png")
    assert code == 0, err


def test_pretrained_file_under_the_data_root_and_fail_fast(cli, tmp_path, monkeypatch):
    """Issue 16: `--pretrained mobilenet_2_5_224_tf_no_top.h5` was not looked up under the data root's
    weights/, and the error came only after the dataset had loaded."""
    from cnnlab.tasks.classify.run import check_run, resolve_config

    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "data"))
    start = time.perf_counter()
    code, _, err = cli("train", "--dataset", "cifar10", "--model", "mobilenet_025", "--pretrained",
                       "mobilenet_2_5_224_tf_no_top.h5", "--freeze", "all")
    assert code == 2 and time.perf_counter() - start < 10
    assert err.count("\n") == 1 and "pretrained weights not found: mobilenet_2_5_224_tf_no_top.h5" in err
    assert "weights" in err and "cifar" not in err.lower().split("not found")[0]
    (tmp_path / "data" / "weights").mkdir(parents=True)
    (tmp_path / "data" / "weights" / "mobilenet_2_5_224_tf_no_top.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    check_run(resolve_config(dataset="digits", model="mobilenet_025",
                             pretrained="mobilenet_2_5_224_tf_no_top.h5"))  # found: no error


@pytest.mark.realdata
def test_real_keras_weights_and_onnx_by_bare_name(cli, shared_data, monkeypatch):
    root = shared_data("weights/mobilenet_2_5_224_tf_no_top.h5").parent.parent
    shared_data("weights/mobilenetv2-12-int8.onnx")
    monkeypatch.setenv("CNNLAB_DATA", str(root))
    from cnnlab.models import create_model
    from cnnlab.models.transfer import load_pretrained

    model = create_model("transfer", num_classes=10, backbone="mobilenet_025")
    assert "54 tensors from" in load_pretrained(model, "mobilenet_2_5_224_tf_no_top.h5")
    code, out, err = cli("predict", root / "weights" / "mobilenetv2-12-int8.onnx", "china.jpg", "flower.jpg")
    assert code == 0, err
    assert "china.jpg: palace" in out and "flower.jpg:" in out


# ------------------------------------------------------------------------------ after training
def test_test_limit_no_test_eval_and_metrics_every_epoch(tmp_path):
    seen = []

    class Peek(cnnlab.engine.callbacks.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append(json.loads((trainer.run_dir / "metrics.json").read_text()))

    run = cnnlab.train(FAST, epochs=2, project=tmp_path, name="limit", test_limit=50, callbacks=[Peek()])
    assert [s["epoch"] for s in seen] == [1, 2] and all(s["status"] == "training" for s in seen)
    assert seen[-1]["best_epoch"] in (1, 2) and "val_accuracy" in seen[-1]
    assert run.metrics["test"]["images"] == 50 and "status" not in run.metrics
    final = json.loads((run.run_dir / "metrics.json").read_text())
    assert final["test_accuracy"] == run.metrics["test_accuracy"]
    skipped = cnnlab.train(FAST, epochs=1, project=tmp_path, name="skip", test_eval=False)
    assert "test_accuracy" not in skipped.metrics and "test" not in skipped.metrics
    with pytest.raises(UserError, match="test_limit must be >= 1"):
        cnnlab.train(FAST, epochs=1, project=tmp_path, test_limit=0)


def test_test_evaluation_shows_progress_when_piped(cli, monkeypatch):
    import cnnlab.engine.progress as progress

    monkeypatch.setattr(progress.Progress, "__init__", _every_zero(progress.Progress.__init__))
    code, out, err = cli("train", "--dataset", "digits", "--epochs", "1", "--threads", "1", "--test-limit", "300",
                         "--batch", "64")
    assert code == 0, err
    assert "test evaluation of the best weights" in out
    assert "test evaluation: 1/2 batches" in out  # the eval batch is 256: two batches for 300 images


def _every_zero(init):
    def patched(self, label, total, enabled=True, every=30.0):
        init(self, label, total, enabled, 0.0)
    return patched


# ------------------------------------------------------------------------------ TTA
def test_tta_uses_only_the_flips_the_run_trained_with(digits_run, tmp_path):
    """Issue 16: --tta flipped MNIST digits horizontally although the run never trained with flips."""
    plain = cnnlab.evaluate(digits_run, device="cpu")
    with pytest.warns(CnnlabWarning, match="never trained with flips"):
        tta = cnnlab.evaluate(digits_run, tta=True, device="cpu")
    assert tta["tta"] == [] and tta["accuracy"] == plain["accuracy"]
    flipped = cnnlab.train(FAST, epochs=1, project=tmp_path, name="flip", augment={"horizontal_flip": True})
    with warnings.catch_warnings():
        warnings.simplefilter("error", CnnlabWarning)
        r = cnnlab.evaluate(flipped.run_dir, tta=True, device="cpu")
    assert r["tta"] == ["hflip"]
    from cnnlab.tasks.classify.evaluate import tta_from_augment

    assert tta_from_augment("standard") == ("hflip",)
    assert tta_from_augment({"vertical_flip": True, "horizontal_flip": True}) == ("hflip", "vflip")
    assert tta_from_augment({"rotation_range": 10}) == ()


def test_tta_warning_is_one_line_on_the_command_line(cli, digits_run):
    code, out, err = cli("evaluate", digits_run, "--tta", "--device", "cpu")
    assert code == 0, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines == [lines[0]] and lines[0].startswith("warning: --tta: the run never trained with flips")
    assert "CnnlabWarning" not in err and "warn(" not in err
    assert out.index("│ accuracy") < out.index("│ images_per_s")  # accuracy first, throughput last


# ------------------------------------------------------------------------------ image-folder splits
def _folder(root: Path, splits: dict[str, int]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in splits.items():
        for c in ("cat", "dog"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                base = 40 if c == "cat" else 200
                Image.fromarray((rng.integers(0, 50, (12, 12, 3)) + base).astype(np.uint8)).save(d / f"{i}.png")
    return root


def test_folder_val_means_one_thing_in_train_and_evaluate(cli, tmp_path):
    """Issue 16: with train/ and val/, train held out 10 % of train/ ("test accuracy nan"), evaluate failed
    with "no test/ folder", and evaluate --split val scored something else than the run's validation."""
    root = _folder(tmp_path / "pets", {"train": 10, "val": 4})
    code, out, err = cli("train", "--dataset", root, "--model", "lenet5", "--epochs", "1", "--threads", "1",
                         "--img-size", "12", "--project", tmp_path / "runs")
    assert code == 0, err
    assert "(20 train / 8 validation images" in out
    assert "nan" not in out and "validation accuracy" in out
    run = tmp_path / "runs" / "classify" / "exp"
    code, out, err = cli("evaluate", run, "--device", "cpu", "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "warning: pets has no test split" in err.replace(str(root), "pets") or "no test split" in err
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["split"] == "val" and result["images"] == 8
    code, out, err = cli("evaluate", run, "--split", "val", "--device", "cpu", "--json", tmp_path / "v.json")
    assert code == 0, err
    assert json.loads((tmp_path / "v.json").read_text())["images"] == 8


def test_folder_without_val_scores_the_held_out_split(tmp_path):
    root = _folder(tmp_path / "pets", {"train": 10, "test": 3})
    run = cnnlab.train(FAST, dataset=str(root), img_size=12, epochs=1, project=tmp_path / "runs",
                       validation_split=0.2)
    val = cnnlab.evaluate(run.run_dir, split="val", device="cpu")
    assert val["images"] == 4 and val["split"] == "val"  # 20 % of the 20 training images, as trained
    assert val["accuracy"] == pytest.approx(run.metrics["val_accuracy"])
    test = cnnlab.evaluate(run.run_dir, device="cpu")
    assert test["split"] == "test" and test["images"] == 6


# ------------------------------------------------------------------------------ a clean terminal
def test_library_warnings_hidden_unless_verbose(capsys, monkeypatch):
    from cnnlab import noise

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    noise.setup(verbose=False)
    noise.show_warning(UserWarning("CUDA initialization: no driver\nsecond line"), UserWarning,
                       "/x/site-packages/torch/cuda/__init__.py", 10)
    noise.show_warning(CnnlabWarning("ours\nmore"), CnnlabWarning, "/x/cnnlab/inference.py", 3)
    assert capsys.readouterr().err == "warning: ours\n"
    noise.setup(verbose=True)
    noise.show_warning(UserWarning("CUDA initialization: no driver"), UserWarning, "/x/torch/cuda/__init__.py", 10)
    assert capsys.readouterr().err == "warning: (UserWarning, __init__:10) CUDA initialization: no driver\n"
    noise.setup(verbose=False)
    assert noise.wants_verbose(["--verbose", "detect", "x"]) and not noise.wants_verbose(["train", "--verbose", "2"])


def test_opencv_log_lines_silenced(tmp_path):
    """OpenCV's `[ WARN:0@...]` lines (e.g. reading a missing video) are off unless --verbose."""
    import os
    import subprocess
    import sys

    code = ("from cnnlab import noise; noise.setup(False); import cv2; "
            "cv2.VideoCapture('/nonexistent/video.avi').read()")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    env["PYTHONPATH"] = str(Path(cnnlab.__file__).parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "WARN" not in out.stderr, out.stderr


def test_piped_console_does_not_wrap():
    from cnnlab.cli.common import make_console

    c = make_console()
    assert not c.is_terminal and c.width >= 1000
    with c.capture() as cap:
        c.print("x" * 300)
    assert cap.get().count("\n") == 1
