"""Inspect commands on a saved run folder (checkpoint written by the test, per the checkpoint contract)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.inspect import grad_cam, save_kernels, summary
from cnnlab.models import create_model


@pytest.fixture
def run_dir(tmp_path):
    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.runs import new_run_dir, write_run_config

    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=3, in_chans=1, img_size=28)
    run = new_run_dir(tmp_path / "runs", "classify", "exp")
    write_run_config(run, {"model": "lenet5", "dataset": "synthetic"})
    save_checkpoint(run / "weights" / "best.pt", {
        "model_spec": model.cnnlab_spec, "model": model.state_dict(), "ema": None, "epoch": 1,
        "classes": ["cat", "dog", "bird"], "config": {}, "metrics": {},
        "preprocess": {"mean": [0.1307], "std": [0.3081], "img_size": 28, "in_chans": 1},
    })
    return run, model


def test_summary_of_run(run_dir):
    run, _ = run_dir
    res = summary(str(run), batch=50)
    assert res.input_size == (1, 28, 28) and res.output_shape == [3]
    assert res.trainable == 61_706 - 7 * 84 - 7  # 3 classes instead of 10


def test_kernels_are_the_trained_weights(run_dir, tmp_path):
    run, model = run_dir
    out = save_kernels(str(run / "weights" / "best.pt"), tmp_path / "k.png")
    with Image.open(out) as im:
        assert im.size[0] > 0
    from cnnlab.inspect import kernel_image
    from cnnlab.inspect.source import load_source

    loaded = load_source(str(run))
    assert loaded.classes == ["cat", "dog", "bird"] and loaded.run_dir == run
    a, _ = kernel_image(loaded.model)
    b, _ = kernel_image(model)
    np.testing.assert_allclose(a, b)


def test_gradcam_of_run_names_the_class(run_dir, cli):
    run, _ = run_dir
    res = grad_cam(str(run), "flower.jpg", class_idx=1)
    assert res.class_name == "dog" and res.cam.shape == (427, 640)
    code, out, err = cli("visualize", "gradcam", str(run), "--class", "2")
    assert code == 0, err
    assert "bird" in out and (run / "visualize" / "gradcam.png").is_file()


def test_gradcam_of_a_run_explains_its_own_test_image(tmp_path):
    """An MNIST-like run without an image explains one of its own test digits, not a photo."""
    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.inspect import save_features, save_gradcam
    from cnnlab.runs import new_run_dir, write_run_config

    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    run = new_run_dir(tmp_path / "runs", "classify", "exp")
    write_run_config(run, {"model": "lenet5", "dataset": "digits", "seed": 0})
    save_checkpoint(run / "weights" / "best.pt", {
        "model_spec": model.cnnlab_spec, "model": model.state_dict(), "ema": None, "epoch": 1,
        "classes": [str(i) for i in range(10)], "config": {}, "metrics": {},
        "preprocess": {"mean": [0.5], "std": [0.5], "img_size": 8, "in_chans": 1},
    })
    path, res = save_gradcam(str(run), tmp_path / "g.png")
    assert res.image.shape == (8, 8, 3) and res.cam.shape == (8, 8)
    assert res.caption.startswith("digits test image, true class ")
    assert save_features(str(run), tmp_path / "f.png").is_file()


def test_loaded_model_object_is_accepted(run_dir):
    import cnnlab

    run, _ = run_dir
    loaded = cnnlab.load(run)
    res = summary(loaded)
    assert res.input_size == (1, 28, 28) and res.total_params == 61_706 - 7 * 85
    assert grad_cam(loaded, "china.jpg").class_name in ("cat", "dog", "bird")
