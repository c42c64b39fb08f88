"""Export round-trips (ONNX, TorchScript), metadata, INT8 accuracy bound, run-folder exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.errors import ModelError, UserError


def tiny_cnn(in_chans: int = 3, num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_chans, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes),
    ).eval()


def _randomise_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


def test_onnx_roundtrip_matches_torch_and_carries_metadata(tmp_path):
    import onnx
    import onnxruntime as ort

    from cnnlab.deploy.export import export

    model = tiny_cnn()
    _randomise_bn(model)
    out = tmp_path / "m.onnx"
    res = export(model, output=out, classes=["a", "b", "c", "d"], mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3),
                 img_size=16)
    assert res.path == out and out.is_file()
    assert res.max_abs_diff <= res.tolerance
    m = onnx.load(str(out))
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = json.loads({p.key: p.value for p in m.metadata_props}["cnnlab"])
    assert meta["classes"] == ["a", "b", "c", "d"]
    pre = meta["preprocess"]
    assert pre["mean"] == [0.4, 0.5, 0.6] and pre["std"] == [0.2, 0.25, 0.3]
    assert (pre["img_size"], pre["in_chans"], pre["channel_order"]) == (16, 3, "RGB")
    # dynamic batch axis: a batch size never seen during export runs and matches PyTorch
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert isinstance(sess.get_inputs()[0].shape[0], str)
    x = np.random.default_rng(1).standard_normal((5, 3, 16, 16)).astype(np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_torchscript_roundtrip(tmp_path):
    from cnnlab.deploy.export import export, load_torchscript

    model = tiny_cnn(in_chans=1)
    res = export(model, format="torchscript", output=tmp_path / "m.torchscript", img_size=12,
                 classes=list("wxyz"))
    assert res.format == "torchscript" and res.max_abs_diff <= res.tolerance
    module, meta = load_torchscript(res.path)
    assert meta["classes"] == list("wxyz") and meta["preprocess"]["in_chans"] == 1
    x = torch.randn(7, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x), atol=1e-5, rtol=1e-5)


def test_failed_check_writes_nothing(tmp_path, monkeypatch):
    from cnnlab.deploy import export as exp

    real = exp._ort_logits
    monkeypatch.setattr(exp, "_ort_logits", lambda path, x: real(path, x) + 1.0)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match="disagrees with PyTorch"):
        exp.export(tiny_cnn(), output=out, img_size=8)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_export_rejects_bad_options(tmp_path):
    from cnnlab.deploy.export import export

    m = tiny_cnn()
    with pytest.raises(UserError, match="unknown export format"):
        export(m, format="tflite", img_size=8)
    with pytest.raises(UserError, match="either --int8 or --fp16"):
        export(m, int8="dynamic", fp16=True, img_size=8)
    with pytest.raises(UserError, match="apply to ONNX"):
        export(m, format="torchscript", int8="dynamic", img_size=8)
    with pytest.raises(UserError, match="static INT8 needs calibration"):
        export(m, output=tmp_path / "q.onnx", int8="static", img_size=8)
    with pytest.raises(UserError, match="opset"):
        export(m, opset=9, img_size=8)


def test_export_cli_errors_exit_2(cli):
    code, _, err = cli("export", "mnist_cnn", "--format", "nope")
    assert code == 2 and "unknown export format" in err
    code, _, err = cli("export", "does/not/exist.pt")
    assert code == 2 and "not found" in err


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    x = x[:, None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    tr, te = idx[:1400], idx[1400:]
    return x[tr], y[tr], x[te], y[te]


def _train_digits_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    xtr, ytr, _, _ = _digits()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for _ in range(4):
        for i in range(0, len(xt), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i:i + 64]), yt[i:i + 64]).backward()
            opt.step()
    return model.eval()


def test_int8_accuracy_within_bound_of_fp32(tmp_path):
    from cnnlab.deploy.export import export
    from cnnlab.deploy.runtime import load_onnx_classifier

    model = _train_digits_cnn()
    xtr, _, xte, yte = _digits()
    with torch.no_grad():
        acc_torch = float((model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
    assert acc_torch > 0.85  # the model learned something, so the bound below means something
    opts = dict(classes=[str(i) for i in range(10)], mean=(0.5,), std=(0.5,), img_size=8)
    accs = {}
    for name, kw in {"fp32": {}, "static": {"int8": "static", "calib_data": xtr[:128]},
                     "dynamic": {"int8": "dynamic"}}.items():
        res = export(model, output=tmp_path / f"{name}.onnx", **opts, **kw)
        clf = load_onnx_classifier(res.path)
        accs[name] = float((clf(xte).argmax(1) == yte).mean())
        if name != "fp32":
            assert res.tolerance is None and 0.9 <= res.checks["top1_agreement"] <= 1.0
            assert clf.metadata["precision"] == f"int8-{name}"
    assert abs(accs["fp32"] - acc_torch) <= 0.001  # same accuracy as PyTorch within 0.1 %
    assert accs["static"] >= accs["fp32"] - 0.03
    assert accs["dynamic"] >= accs["fp32"] - 0.03
    assert (tmp_path / "static.onnx").stat().st_size < (tmp_path / "fp32.onnx").stat().st_size / 2


def test_fp16_export(tmp_path):
    from cnnlab.deploy.export import export
    from cnnlab.deploy.runtime import load_onnx_classifier

    res = export(tiny_cnn(), output=tmp_path / "h.onnx", fp16=True, img_size=8)
    assert res.precision == "fp16" and res.max_abs_diff <= res.tolerance
    clf = load_onnx_classifier(res.path)
    assert clf(np.zeros((2, 3, 8, 8), np.float32)).dtype == np.float32


def _make_run(tmp_path):
    """A run folder per the checkpoint contract (untrained mnist_cnn on digits)."""
    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.models import create_model
    from cnnlab.runs import write_run_config

    run = tmp_path / "runs" / "classify" / "exp"
    (run / "weights").mkdir(parents=True)
    torch.manual_seed(0)
    model = create_model("mnist_cnn", num_classes=10, in_chans=1, img_size=8)
    write_run_config(run, {"dataset": "digits", "model": "mnist_cnn", "seed": 0})
    save_checkpoint(run / "weights" / "best.pt", {
        "model_spec": model.cnnlab_spec, "model": model.state_dict(), "ema": None, "epoch": 1,
        "config": {"dataset": "digits", "model": "mnist_cnn"}, "classes": [str(i) for i in range(10)],
        "preprocess": {"mean": [0.3], "std": [0.4], "img_size": 8, "in_chans": 1}, "metrics": {}})
    return run


def test_export_run_folder_static_int8_uses_run_data(tmp_path):
    from cnnlab.deploy.export import export
    from cnnlab.deploy.runtime import load_onnx_classifier

    run = _make_run(tmp_path)
    res = export(run, int8="static", calib_samples=32, check_samples=100)
    assert res.path == run / "weights" / "best.int8.onnx"
    assert "digits" in res.checks["calibration"]
    assert res.checks["accuracy_samples"] == 100 and "accuracy_loss" in res.checks
    clf = load_onnx_classifier(res.path)
    assert clf.mean == (0.3,) and clf.std == (0.4,) and clf.img_size == 8 and clf.in_chans == 1
    assert clf.spec["name"] == "mnist_cnn"


def test_onnx_evaluates_like_pytorch_through_the_api(tmp_path):
    import cnnlab

    run = _make_run(tmp_path)
    onnx_path = cnnlab.export(run).path
    m_torch = cnnlab.evaluate(run, dataset="digits")
    m_onnx = cnnlab.evaluate(onnx_path, dataset="digits")
    assert m_onnx["runtime"] == "onnxruntime"
    assert abs(m_onnx["accuracy"] - m_torch["accuracy"]) <= 0.001
