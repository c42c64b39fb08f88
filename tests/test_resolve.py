"""cnnlab.sources: every source kind is identified and loaded by one resolver; bad sources are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.errors import ModelError, UserError
from cnnlab.sources import Resolved, identify, resolve


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One tiny model of every kind: classify run, detect run, Darknet files, ONNX (both tasks), TorchScript."""
    from cnnlab.darknet.model import load_darknet
    from cnnlab.deploy.export import export
    from cnnlab.detect.checkpoint import save_detector_checkpoint
    from cnnlab.detect.export import export_detector
    from cnnlab.detect.synthetic import random_yolo_files
    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.models import create_model
    from cnnlab.runs import write_run_config

    root = tmp_path_factory.mktemp("sources")
    crun = root / "runs" / "classify" / "exp"
    (crun / "weights").mkdir(parents=True)
    torch.manual_seed(0)
    clf = create_model("mnist_cnn", num_classes=3, in_chans=1, img_size=8)
    write_run_config(crun, {"dataset": "digits", "model": "mnist_cnn"})
    save_checkpoint(crun / "weights" / "best.pt", {
        "model_spec": clf.cnnlab_spec, "model": clf.state_dict(), "ema": None, "epoch": 1,
        "config": {"dataset": "digits", "model": "mnist_cnn"}, "classes": ["a", "b", "c"],
        "preprocess": {"mean": [0.3], "std": [0.4], "img_size": 8, "in_chans": 1}, "metrics": {"val_accuracy": 0.5}})

    darknet = root / "darknet"
    darknet.mkdir()
    cfg, weights, names = random_yolo_files(darknet, "yolov3-tiny", num_classes=2, img_size=64, width_mult=0.125)
    drun = root / "runs" / "detect" / "exp"
    save_detector_checkpoint(drun / "weights" / "best.pt", load_darknet(cfg, weights), names=["cat", "dog"],
                             imgsz=(96, 64), letterbox=False)
    write_run_config(drun, {"task": "detect-train", "imgsz": 64})

    conn = export(crun, output=root / "clf.onnx").path
    ts = export(crun, format="torchscript", output=root / "clf.torchscript").path
    donnx = export_detector(cfg, weights, output=root / "det.onnx", names=["x", "y"], letterbox=False).path
    return {"crun": crun, "drun": drun, "cfg": cfg, "weights": weights, "names": names, "darknet": darknet,
            "conn": conn, "ts": ts, "donnx": donnx, "root": root}


@pytest.mark.parametrize("key, kind, task", [
    ("crun", "classify-run", "classify"), ("drun", "detect-run", "detect"), ("conn", "onnx", "classify"),
    ("donnx", "onnx", "detect"), ("cfg", "darknet", "detect"), ("darknet", "darknet", "detect"),
    ("ts", "torchscript", "classify")])
def test_identify_paths(sources, key, kind, task):
    loc = identify(sources[key])
    assert (loc.kind, loc.task) == (kind, task)


def test_identify_checkpoints_names_and_modules(sources):
    from cnnlab.darknet.yolo import yolov3_tiny

    c = identify(sources["crun"] / "weights" / "best.pt")
    assert (c.kind, c.task, c.run_dir) == ("classify-checkpoint", "classify", sources["crun"])
    d = identify(sources["drun"] / "weights" / "best.pt")
    assert (d.kind, d.task, d.run_dir) == ("detect-checkpoint", "detect", sources["drun"])
    pair = identify(cfg=sources["cfg"], weights=sources["weights"])
    assert pair.kind == "darknet" and pair.weights == sources["weights"] and pair.names_file is None
    assert identify(sources["cfg"]).names_file == sources["names"]        # names found beside the cfg
    assert (identify("lenet5").kind, identify("timm/resnet10t").kind) == ("model-name", "model-name")
    assert identify(nn.Conv2d(1, 2, 3)).task == "classify"
    assert identify(yolov3_tiny(num_classes=2, img_size=64, width_mult=0.125)).task == "detect"


def test_classify_run_and_checkpoint(sources):
    r = resolve(sources["crun"])
    assert isinstance(r, Resolved) and (r.task, r.kind, r.runtime) == ("classify", "classify-run", "torch")
    assert not r.model.training and r.classes == ["a", "b", "c"] and r.name == "mnist_cnn"
    assert (r.mean, r.std, r.img_size, r.in_chans, r.input_shape) == ((0.3,), (0.4,), 8, 1, (1, 8, 8))
    assert r.run_dir == sources["crun"] and r.source == str(sources["crun"] / "weights" / "best.pt")
    assert r.config["dataset"] == "digits" and r.metrics == {"val_accuracy": 0.5}
    ck = resolve(sources["crun"] / "weights" / "best.pt", classes=["x", "y", "z"])
    assert ck.kind == "classify-checkpoint" and ck.classes == ["x", "y", "z"] and ck.run_dir == sources["crun"]
    assert resolve(r) is r                                          # a Resolved passes through


def test_classify_onnx_and_torchscript(sources):
    r = resolve(sources["conn"])
    assert (r.task, r.runtime, r.classes, r.img_size, r.in_chans) == ("classify", "onnxruntime", ["a", "b", "c"], 8, 1)
    assert r.mean == pytest.approx((0.3,)) and r.spec["name"] == "mnist_cnn"
    x = np.zeros((2, 1, 8, 8), np.float32)
    with torch.no_grad():
        ref = resolve(sources["crun"]).model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(r.model(x), ref, atol=1e-4)
    ts = resolve(sources["ts"])
    assert (ts.kind, ts.runtime, ts.classes, ts.input_shape) == ("torchscript", "torchscript", ["a", "b", "c"],
                                                                  (1, 8, 8))
    with torch.no_grad():
        np.testing.assert_allclose(ts.model(torch.from_numpy(x)).numpy(), ref, atol=1e-4)


def test_model_name_is_seeded_and_module_is_untouched():
    a, b = resolve("lenet5"), resolve("lenet5", num_classes=4)
    assert (a.kind, a.defaults_assumed, a.classes, a.input_shape) == ("model-name", True, [], (1, 28, 28))
    assert a.mean == (0.5,) and not a.model.training and b.spec["num_classes"] == 4
    assert torch.equal(next(a.model.parameters()), next(resolve("lenet5").model.parameters()))
    state = torch.get_rng_state()
    resolve("lenet5", seed=3)
    assert torch.equal(state, torch.get_rng_state())                # the global RNG is left alone
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()).train()
    r = resolve(m, img_size=12, classes=["p", "q"])
    assert r.model is m and m.training and r.kind == "module"
    assert (r.in_chans, r.img_size, r.classes, r.name) == (1, 12, ["p", "q"], "Sequential")


def test_detect_run_darknet_and_onnx(sources):
    from cnnlab.darknet.model import DarknetModel
    from cnnlab.detect.types import ImageSize

    r = resolve(sources["drun"])
    assert (r.task, r.kind, r.runtime) == ("detect", "detect-run", "torch") and isinstance(r.model, DarknetModel)
    assert r.classes == ["cat", "dog"] and r.imgsz == ImageSize(96, 64) and r.letterbox is False
    assert r.num_classes == 2 and r.config["task"] == "detect-train" and r.run_dir == sources["drun"]
    d = resolve(cfg=sources["cfg"], weights=sources["weights"])
    assert d.classes == ["0", "1"] and d.imgsz == (64, 64) and d.letterbox is None
    assert d.describe() == f"{sources['cfg']} + {sources['weights']}"
    assert resolve(sources["darknet"]).classes == ["class0", "class1"]    # the .names beside the pair
    o = resolve(sources["donnx"])
    assert (o.kind, o.runtime, o.model, o.path) == ("onnx", "onnx", None, sources["donnx"])
    assert o.classes == ["x", "y"] and o.imgsz == (64, 64) and o.fixed_imgsz and o.letterbox is False
    assert o.output_format == "yolov5" and o.num_classes == 2
    assert resolve(sources["donnx"], classes=["u", "v"]).classes == ["u", "v"]


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


def test_one_line_errors(sources, tmp_path):
    cases = [
        (dict(source=tmp_path / "nope"), "model not found"),
        (dict(source="runs/classify/missing"), "model not found"),
        (dict(source=sources["crun"], task="detect"), "is a classifier, not a detector"),
        (dict(source=sources["drun"], task="classify"), "is a detector, not a classifier"),
        (dict(source=sources["donnx"], task="classify"), "is a detector"),
        (dict(source=sources["conn"], task="detect"), "is a classifier"),
        (dict(source=sources["crun"], runtime="onnxruntime"), "runtime onnxruntime needs an .onnx model"),
        (dict(source=sources["conn"], runtime="torch"), "runs with --runtime onnxruntime, not 'torch'"),
        (dict(cfg=sources["cfg"]), "needs both --cfg and --weights"),
        (dict(source=sources["drun"], cfg=sources["cfg"], weights=sources["weights"]), "not both"),
        (dict(source=None), "no model given"),
        (dict(source=sources["drun"], classes=["one"]), "1 class names given but the model predicts 2 classes"),
        (dict(source=sources["crun"], task="segment"), "unknown task"),
        (dict(source=3.5), "expected a run folder"),
    ]
    for kwargs, text in cases:
        with pytest.raises(UserError) as e:
            resolve(**kwargs)
        assert text in _one_line(e), (kwargs, str(e.value))


def test_one_line_errors_for_broken_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "lone.cfg").write_text("[net]\n")
    (tmp_path / "empty").mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: lenet5\n")
    two = tmp_path / "two"
    two.mkdir()
    (two / "a.onnx").write_bytes(b"x")
    (two / "b.onnx").write_bytes(b"x")
    cases = [(tmp_path / "foreign.pt", "not a cnnlab checkpoint (format None"),
             (tmp_path / "junk.onnx", "not a readable ONNX model"),
             (tmp_path / "lone.cfg", "no .weights beside"),
             (tmp_path / "empty", "holds no model"),
             (run, "run folder without a checkpoint"),
             (two, "several .onnx files")]
    for source, text in cases:
        with pytest.raises(UserError) as e:
            identify(source)
        assert text in _one_line(e), (source, str(e.value))


def test_unknown_model_name_suggests_close_matches():
    with pytest.raises(ModelError) as e:
        resolve("lenet6")
    msg = _one_line(e)
    assert "model not found: no file or folder 'lenet6'" in msg and "did you mean lenet5" in msg


def test_callers_share_the_resolver(sources):
    """load (evaluate/predict), inspect, export/benchmark and Detector all take the same sources."""
    import cnnlab
    from cnnlab.deploy.source import torch_source
    from cnnlab.detect.detector import Detector
    from cnnlab.inspect import summary

    lm = cnnlab.load(sources["crun"])
    assert isinstance(lm, Resolved) and lm.preprocess([np.zeros((8, 8, 3), np.uint8)]).shape == (1, 1, 8, 8)
    assert summary(lm).input_size == (1, 8, 8) and summary(sources["drun"]).input_size == (3, 64, 96)
    assert torch_source(sources["crun"]).run_dir == sources["crun"]
    with pytest.raises(UserError, match="already an ONNX model"):
        torch_source(sources["conn"])
    det = Detector(model=sources["drun"], imgsz=None, letterbox=None)
    assert det.names == ["cat", "dog"] and det.imgsz == (96, 64) and det.letterbox is False
    assert det.source.kind == "detect-run" and "best.pt" in repr(det)
