"""Keras .h5 import: layouts converted exactly (checked against a NumPy forward pass), run folders, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cnnlab.errors import UserError
from cnnlab.models.keras_import import import_keras, import_keras_model, load_keras_weights

RNG = np.random.default_rng(0)


def _write_keras2_h5(path: Path, config: dict, weights: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write a file laid out as Keras 2's ``model.save('x.h5')`` does."""
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        g = f.create_group("model_weights")
        names = [ly["config"]["name"] for ly in config["config"]["layers"]]
        g.attrs["layer_names"] = [n.encode() for n in names]
        for n in names:
            lg = g.create_group(n)
            arrays = weights.get(n, {})
            lg.attrs["weight_names"] = [f"{n}/{k}:0".encode() for k in arrays]
            for k, v in arrays.items():
                lg.create_dataset(f"{n}/{k}:0", data=v)
    return path


def _conv_nhwc(x, k, b, stride, pads):
    """Reference convolution in NHWC with explicit (top, bottom, left, right) zero padding."""
    t, bo, le, r = pads
    x = np.pad(x, ((0, 0), (t, bo), (le, r), (0, 0)))
    kh, kw, _, cout = k.shape
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, cout), np.float32)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(patch, k, axes=([1, 2, 3], [0, 1, 2])) + b
    return out


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _sequential_case(tmp_path):
    cfg = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "Conv2D", "config": {"name": "conv", "filters": 4, "kernel_size": [3, 3],
                                            "strides": [2, 2], "padding": "same", "activation": "relu",
                                            "use_bias": True, "batch_input_shape": [None, 7, 6, 2]}},
        {"class_name": "BatchNormalization", "config": {"name": "bn", "axis": -1, "epsilon": 0.001}},
        {"class_name": "MaxPooling2D", "config": {"name": "pool", "pool_size": [2, 2], "padding": "valid"}},
        {"class_name": "Flatten", "config": {"name": "flat"}},
        {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.5}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 3, "activation": "softmax"}},
    ]}}
    w = {
        "conv": {"kernel": RNG.normal(size=(3, 3, 2, 4)).astype("f4"), "bias": RNG.normal(size=4).astype("f4")},
        "bn": {"gamma": RNG.uniform(.5, 1.5, 4).astype("f4"), "beta": RNG.normal(size=4).astype("f4"),
               "moving_mean": RNG.normal(size=4).astype("f4"), "moving_variance": RNG.uniform(.5, 2, 4).astype("f4")},
        "dense": {"kernel": RNG.normal(size=(8, 3)).astype("f4"), "bias": RNG.normal(size=3).astype("f4")},
    }
    return _write_keras2_h5(tmp_path / "seq.h5", cfg, w), w


def test_sequential_matches_numpy_reference(tmp_path):
    path, w = _sequential_case(tmp_path)
    x = RNG.uniform(0, 1, (5, 7, 6, 2)).astype("f4")
    # TF 'same', stride 2: H 7 -> 4 needs 2 rows of padding (1 top, 1 bottom);
    # W 6 -> 3 needs 1 column, and TF puts the odd one on the right.
    y = np.maximum(_conv_nhwc(x, w["conv"]["kernel"], w["conv"]["bias"], 2, (1, 1, 0, 1)), 0)
    bn = w["bn"]
    y = (y - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"] + bn["beta"]
    y = y[:, :, :2].reshape(5, 2, 2, 1, 2, 4).max(axis=(2, 4))  # 2x2 valid max pool: 4x3 -> 2x1
    y = y.reshape(5, -1) @ w["dense"]["kernel"] + w["dense"]["bias"]  # Keras flattens H, W, C
    expected = _softmax(y)

    model = import_keras_model(path)
    with torch.no_grad():
        logits = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    assert logits.shape == (5, 3)
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), expected, atol=1e-5)
    assert model.cnnlab_spec["name"] == "keras_graph" and model.cnnlab_spec["in_chans"] == 2


def test_functional_graph_with_merges(tmp_path):
    def conv(name, inbound):
        return {"class_name": "Conv2D", "name": name, "inbound_nodes": [[[inbound, 0, 0, {}]]],
                "config": {"name": name, "filters": 3, "kernel_size": [1, 1], "padding": "valid",
                           "activation": "linear"}}

    cfg = {"class_name": "Functional", "config": {
        "name": "fun", "input_layers": [["in", 0, 0]], "output_layers": [["out", 0, 0]],
        "layers": [
            {"class_name": "InputLayer", "name": "in", "inbound_nodes": [],
             "config": {"name": "in", "batch_input_shape": [None, 4, 4, 2]}},
            conv("c1", "in"), conv("c2", "in"),
            {"class_name": "Add", "name": "add", "config": {"name": "add"},
             "inbound_nodes": [[["c1", 0, 0, {}], ["c2", 0, 0, {}]]]},
            {"class_name": "Concatenate", "name": "cat", "config": {"name": "cat", "axis": -1},
             "inbound_nodes": [[["add", 0, 0, {}], ["c1", 0, 0, {}]]]},
            {"class_name": "GlobalAveragePooling2D", "name": "gap", "config": {"name": "gap"},
             "inbound_nodes": [[["cat", 0, 0, {}]]]},
            {"class_name": "Dense", "name": "out", "config": {"name": "out", "units": 2, "activation": "linear"},
             "inbound_nodes": [[["gap", 0, 0, {}]]]},
        ]}}
    w = {n: {"kernel": RNG.normal(size=(1, 1, 2, 3)).astype("f4"), "bias": RNG.normal(size=3).astype("f4")}
         for n in ("c1", "c2")}
    w["out"] = {"kernel": RNG.normal(size=(6, 2)).astype("f4"), "bias": RNG.normal(size=2).astype("f4")}
    path = _write_keras2_h5(tmp_path / "fun.h5", cfg, w)
    x = RNG.uniform(0, 1, (3, 4, 4, 2)).astype("f4")
    c1 = x @ w["c1"]["kernel"][0, 0] + w["c1"]["bias"]
    c2 = x @ w["c2"]["kernel"][0, 0] + w["c2"]["bias"]
    feat = np.concatenate([c1 + c2, c1], axis=-1).mean(axis=(1, 2))
    expected = feat @ w["out"]["kernel"] + w["out"]["bias"]
    model = import_keras_model(path)
    with torch.no_grad():
        got = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_import_writes_a_usable_run(tmp_path, cli):
    path, _ = _sequential_case(tmp_path)
    run = import_keras(path, project=tmp_path / "runs", name="k", classes=["a", "b", "c"])
    from cnnlab.engine.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(run / "weights" / "best.pt")
    assert ckpt["classes"] == ["a", "b", "c"] and ckpt["preprocess"]["img_size"] == 7
    rebuilt = model_from_checkpoint(ckpt).eval()
    direct = import_keras_model(path)
    x = torch.rand(2, 2, 7, 6)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), direct(x))
    code, out, _ = cli("import-keras", str(path), "--project", str(tmp_path / "r2"), "--classes", "x,y,z")
    assert code == 0 and "imported" in out
    code, _, err = cli("import-keras", str(path), "--project", str(tmp_path / "r3"), "--classes", "x,y")
    assert code == 2 and "2 class names given but the Keras model has 3 outputs" in err


def test_bad_keras_files_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(UserError, match="not a readable HDF5"):
        import_keras_model(junk)
    cfg = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "LSTM", "config": {"name": "lstm", "units": 4, "batch_input_shape": [None, 5, 5, 1]}}]}}
    with pytest.raises(UserError, match="'lstm' of type LSTM is not supported"):
        import_keras_model(_write_keras2_h5(tmp_path / "lstm.h5", cfg, {}))
    weights_only = tmp_path / "w.h5"
    with h5py.File(weights_only, "w") as f:
        f.attrs["layer_names"] = []
    with pytest.raises(UserError, match="holds weights only"):
        import_keras_model(weights_only)


@pytest.mark.realdata
def test_keras_imagenet_mobilenet_weights_load(shared_data):
    from cnnlab.models import create_model

    h5 = shared_data("weights/mobilenet_2_5_224_tf_no_top.h5")
    model = create_model("mobilenet_v1", num_classes=10, alpha=0.25).eval()
    loaded = load_keras_weights(model, h5)
    assert len(loaded) == 54  # conv1 + 13 x (depthwise, pointwise), each with its BatchNorm
    assert torch.equal(model.features.conv1_bn.running_var,
                       torch.from_numpy(np.asarray(h5py.File(h5)["conv1_bn/conv1_bn/moving_variance:0"])))
    with torch.no_grad():
        feats = model.features(torch.rand(1, 3, 224, 224) * 2 - 1)
    assert feats.shape == (1, 256, 7, 7) and torch.isfinite(feats).all() and feats.max() <= 6
    wider = create_model("mobilenet_v1", num_classes=10, alpha=0.5)
    with pytest.raises(UserError, match="shape mismatch.*width multiplier"):
        load_keras_weights(wider, h5)


@pytest.mark.slow
def test_outputs_equal_keras_itself(tmp_path):
    """Optional: builds Keras 3 + TensorFlow in its own venv (benchmarks/_keras_env.py), slow."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from keras_import_check import check_against_keras

    rows = check_against_keras(tmp_path)
    for row in rows:
        assert row["max abs diff"] < 1e-4, row
