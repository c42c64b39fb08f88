"""Two-stage detection (torchvision Faster R-CNN) through detect-train: a tiny run on synthetic scenes, its
run folder, bit-exact resume after a mid-epoch kill, Detector (torch and onnxruntime), detect-eval, the CLI,
local torchvision weights and hostile input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _kill import KillMidEpoch

ARCH = "fasterrcnn_mobilenet_v3_large_320_fpn"
TINY = {"model": ARCH, "imgsz": 64, "epochs": 2, "batch": 4, "verbose": 0, "mosaic": 0.0, "ema_warmup": 3,
        "lr": 0.02}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from cnnlab.detect.train.scenes import write_scene_dataset

    return write_scene_dataset(tmp_path_factory.mktemp("shapes") / "data", n_train=8, n_val=4, size=64, seed=0)


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    from cnnlab.detect.train import train_detector

    torch.set_num_threads(1)   # as the function-scoped tests run (the resume test compares bit for bit)
    return train_detector(shapes, project=tmp_path_factory.mktemp("runs"), name="rcnn", **TINY)


def test_run_folder_checkpoint_and_losses(trained):
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.detect.twostage import TwoStageDetector
    from cnnlab.io import torch_load_safe

    run = trained.run_dir
    assert run.parent.name == "detect"
    for f in ("config.yaml", "history.csv", "metrics.json", "results.png", "val_samples.jpg", "train_batch0.jpg",
              "weights/best.pt", "weights/last.pt", "weights/classes.names"):
        assert (run / f).is_file(), f
    assert not (run / "weights" / "best.cfg").exists()          # no Darknet files for a torchvision model
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and 0.0 <= metrics["mAP50_95"] <= metrics["mAP50"] <= 1.0
    h = trained.history
    for e in h:   # the four torchvision losses add up to the logged total
        parts = e["cls_loss"] + e["box_loss"] + e["rpn_obj_loss"] + e["rpn_box_loss"]
        assert e["loss"] == pytest.approx(parts, rel=1e-5) and e["loss"] > 0
    ckpt = torch_load_safe(run / "weights" / "last.pt")
    assert ckpt["format"] == "cnnlab.detect" and "cfg" not in ckpt
    assert ckpt["torchvision"] == {"arch": ARCH, "num_classes": 3, "imgsz": [64, 64]}
    model, names, imgsz, letterbox = load_detector_checkpoint(run / "weights" / "best.pt")
    assert isinstance(model, TwoStageDetector) and not model.training
    assert names == ["circle", "square", "triangle"] and tuple(imgsz) == (64, 64) and letterbox
    assert model.net.roi_heads.box_predictor.cls_score.out_features == 4     # 3 classes + background


def test_resume_after_a_mid_epoch_kill_is_bit_exact(shapes, trained, tmp_path):
    from cnnlab.detect.train import train_detector
    from cnnlab.io import torch_load_safe

    with pytest.raises(KeyboardInterrupt):
        train_detector(shapes, project=tmp_path, name="cut", callbacks=[KillMidEpoch(2, 1)], **TINY)
    cut = tmp_path / "detect" / "cut"
    assert torch_load_safe(cut / "weights" / "last.pt")["epoch"] == 1
    resumed = train_detector(resume=cut, verbose=0)
    a = torch_load_safe(trained.run_dir / "weights" / "last.pt")
    b = torch_load_safe(resumed.run_dir / "weights" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_detector_torch_and_onnxruntime_and_detect_eval(shapes, trained, tmp_path):
    import cv2

    from cnnlab.detect.detector import Detector
    from cnnlab.detect.evaluate import detect_eval
    from cnnlab.detect.export import export_detector
    from cnnlab.detect.processing import preprocess_image

    img = cv2.imread(str(sorted((shapes.parent / "images" / "val").glob("*.png"))[0]))
    det = Detector(model=trained.run_dir, conf=0.0001, iou=0.6)
    a = det(img)
    assert det.backend_name == "torch" and det.output_format == "boxes" and tuple(det.imgsz) == (64, 64)
    assert a.names == ["circle", "square", "triangle"] and len(a) > 0
    assert set(a.timing) == {"preprocess", "inference", "postprocess"}
    assert (a.boxes[:, 2:] >= a.boxes[:, :2]).all() and a.boxes.max() <= 64 + 1e-3    # original-image pixels
    # the same numbers as the model called directly on the letterboxed blob
    blob, _ = preprocess_image(img, 64, True)
    with torch.no_grad():
        boxes, scores, _ = det.source.model(torch.from_numpy(blob))
    top = scores[0] > 0.0001
    assert float(scores[0][top].max()) == pytest.approx(float(a.scores.max()), abs=1e-6)
    b = Detector(model=trained.run_dir, conf=0.0001, iou=0.6, backend="onnxruntime")(img)  # exported in memory
    assert len(b) == len(a)
    np.testing.assert_allclose(b.boxes, a.boxes, atol=0.1)   # pixels of a 64 px image
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    out = export_detector(model=trained.run_dir, output=tmp_path / "rcnn.onnx")    # a file at a fixed size
    assert out.path.is_file() and out.max_abs_diff < 0.1 and out.output_shape[-1] == 4
    c = Detector(model=out.path, conf=0.0001, iou=0.6, backend="onnxruntime")(img)
    assert c.names == a.names and len(c) == len(a) and tuple(Detector(model=out.path, backend="onnxruntime").imgsz) == (64, 64)
    np.testing.assert_allclose(np.sort(c.scores), np.sort(a.scores), atol=1e-4)
    ev = detect_eval(shapes, model=str(trained.run_dir), project=tmp_path, verbose=False, plots=False)
    # the trainer's own validation (batch 4) used the same preprocessing and thresholds as Detector (batch 1)
    assert ev["mAP50"] == pytest.approx(trained.metrics["mAP50"], abs=1e-3)
    assert ev["mAP50_95"] == pytest.approx(trained.metrics["mAP50_95"], abs=1e-3)


def test_cli_detect_train_eval_and_hostile_input(shapes, tmp_path, cli):
    code, out, err = cli("detect-train", str(shapes), "--model", ARCH, "--imgsz", "64", "--epochs", "1",
                         "--batch", "4", "--mosaic", "0", "--project", str(tmp_path), "--name", "cli", "--quiet",
                         "--no-plots")
    assert code == 0, err
    run = tmp_path / "detect" / "cli"
    assert "mAP50" in out and (run / "weights" / "best.pt").is_file()
    code, out, err = cli("detect-eval", str(shapes), "--model", str(run), "--project", str(tmp_path), "--no-plots")
    assert code == 0, err
    assert "mAP" in out
    code, _, err = cli("detect", str(shapes.parent / "images" / "val"), "--model", str(run), "--backend", "opencv")
    assert code == 2 and "two-stage" in err and "Traceback" not in err
    code, _, err = cli("detect-train", str(shapes), "--model", "fasterrcnn_mobilenet_v3_large_32_fpn",
                       "--project", str(tmp_path))
    assert code == 2 and "did you mean fasterrcnn_mobilenet_v3_large_320_fpn" in err and len(err.splitlines()) == 1
    code, _, err = cli("detect-train", str(shapes), "--model", "fastercnn", "--project", str(tmp_path))
    assert code == 2 and ARCH in err                        # the known models are listed
    code, _, err = cli("detect-train", str(shapes), "--model", ARCH, "--freeze", "3", "--project", str(tmp_path))
    assert code == 2 and "freeze" in err
    code, _, err = cli("detect-train", str(shapes), "--model", ARCH, "--box-loss", "giou", "--anchors", "auto",
                       "--project", str(tmp_path))
    assert code == 2 and "anchors, box_loss: YOLO options" in err               # not silently ignored
    code, _, err = cli("detect-train", str(shapes), "--model", str(run), "--project", str(tmp_path))
    assert code == 2 and f"--model {ARCH} --weights" in err
    code, _, err = cli("detect-train", str(shapes), "--model", ARCH, "--weights", "nope.pth",
                       "--project", str(tmp_path))
    assert code == 2 and "nope.pth" in err


def test_local_torchvision_weights_detector_and_backbone(tmp_path):
    """A COCO-style detector state_dict fills everything but the re-initialised class head; an ImageNet
    backbone state_dict fills backbone.body; a foreign file is one line."""
    import torchvision

    from cnnlab.detect.twostage import build_two_stage
    from cnnlab.errors import UserError

    coco, _ = build_two_stage(ARCH, 90, 64, seed=1)              # stands in for the 91-way COCO file
    torch.save(coco.net.state_dict(), tmp_path / "coco.pth")
    model, info = build_two_stage(ARCH, 3, 64, weights=str(tmp_path / "coco.pth"), seed=2)
    assert info["part"] == "detector" and info["skipped"] == 4   # cls_score, bbox_pred (weight, bias) of 91 classes
    got, ref = model.net.state_dict(), coco.net.state_dict()
    assert torch.equal(got["backbone.body.0.0.weight"], ref["backbone.body.0.0.weight"])
    assert torch.equal(got["rpn.head.conv.0.0.weight"], ref["rpn.head.conv.0.0.weight"])
    assert got["roi_heads.box_predictor.cls_score.weight"].shape[0] == 4

    torch.manual_seed(3)
    mnv3 = torchvision.models.mobilenet_v3_large(weights=None)
    torch.save(mnv3.state_dict(), tmp_path / "imagenet.pth")
    model, info = build_two_stage(ARCH, 3, 64, weights=str(tmp_path / "imagenet.pth"))
    assert info["part"] == "backbone" and info["transferred"] > 100
    assert torch.equal(model.net.state_dict()["backbone.body.1.block.0.0.weight"],
                       mnv3.state_dict()["features.1.block.0.0.weight"])
    torch.save({"x": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(UserError, match="no tensor fits"):
        build_two_stage(ARCH, 3, 64, weights=str(tmp_path / "foreign.pth"))


def test_start_from_a_two_stage_run(trained):
    """--weights <run>/weights/best.pt: every tensor of its EMA weights, for the same classes."""
    from cnnlab.detect.twostage import build_two_stage
    from cnnlab.io import torch_load_safe

    best = trained.run_dir / "weights" / "best.pt"
    model, info = build_two_stage(ARCH, 3, 64, weights=str(best), seed=5)
    ema = torch_load_safe(best)["ema"]
    assert info["part"] == "detector" and info["skipped"] == 0 and info["transferred"] == len(ema)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema[k]), k


def test_bad_checkpoint_spec_is_one_line(trained, tmp_path):
    from cnnlab.detect.detector import Detector
    from cnnlab.errors import UserError
    from cnnlab.io import torch_load_safe

    ckpt = torch_load_safe(trained.run_dir / "weights" / "best.pt")
    ckpt["torchvision"] = {"arch": "fasterrcnn_vgg", "num_classes": 3, "imgsz": [64, 64]}
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="malformed checkpoint"):
        Detector(model=tmp_path / "bad.pt")


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.text(max_size=8),
                 st.dictionaries(st.sampled_from(["arch", "num_classes", "imgsz", "x"]),
                                 st.one_of(st.integers(-5, 10 ** 6), st.text(max_size=40), st.booleans(),
                                           st.lists(st.integers(-5, 10 ** 5), max_size=3),
                                           st.sampled_from([ARCH, "fasterrcnn_resnet50_fpn"])))))
def test_checkpoint_spec_fuzz(spec):
    """Any ``torchvision`` field of a checkpoint passes the check (then it builds) or is a UserError."""
    from cnnlab.detect.checkpoint import _check_two_stage_spec
    from cnnlab.errors import UserError

    try:
        _check_two_stage_spec(spec, "x.pt")
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert spec["arch"] in ("fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_resnet50_fpn")
    assert 1 <= spec["num_classes"] <= 100_000 and all(32 <= v <= 8192 for v in spec["imgsz"])


@pytest.mark.slow
@pytest.mark.realdata
def test_benchmark_two_stage_smoke(shared_data, monkeypatch):
    """benchmarks/two_stage.py --smoke: the four detectors in one table (docs/benchmarks.md untouched)."""
    import importlib.util
    from pathlib import Path

    root = shared_data("coco128").parent
    shared_data("yolo/yolo-fastest-1.1-xl.weights")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "two_stage.py"
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location("two_stage_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    doc = path.parents[1] / "docs" / "benchmarks.md"
    before = doc.read_text() if doc.is_file() else None
    rows = bench.main(["--smoke", "--data-dir", str(root), "--threads", "1"])
    assert [r["model"] for r in rows] == [ARCH, "yolov3-tiny", "yolo-fastest-1.1", "yolo-fastest-1.1-xl"]
    assert [r["stages"] for r in rows] == [2, 1, 1, 1]
    for r in rows:
        assert 0.0 <= r["mAP50_95"] <= r["mAP50"] <= 1.0 and r["FPS"] > 0 and r["params_M"] > 0
        assert r["FPS"] == pytest.approx(1000.0 / r["ms_per_image"])
    assert rows[0]["params_M"] > rows[2]["params_M"]           # Faster R-CNN is the bigger model
    assert (doc.read_text() if doc.is_file() else None) == before
