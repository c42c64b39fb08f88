"""detect-train end to end on tiny synthetic scenes: run folder, resume equality, plugging into Detector,
detect-eval and export, label formats and broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _kill import KillMidEpoch

TINY = {"model": "yolov3-tiny", "width_mult": 0.125, "imgsz": 64, "epochs": 2, "batch": 4, "optimizer": "adam",
        "lr": 1e-3, "verbose": 0, "mosaic": 0.5, "ema_warmup": 5}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from cnnlab.detect.train.scenes import write_scene_dataset

    return write_scene_dataset(tmp_path_factory.mktemp("shapes") / "data", n_train=8, n_val=4, size=64, seed=0)


class StopAfter:
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_begin(self, trainer) -> None:
        pass

    def on_epoch_end(self, trainer, epoch, logs) -> None:  # epochs count from 1, as in classification
        if epoch >= self.epochs:
            trainer.stop_training = True

    def on_train_end(self, trainer, logs) -> None:
        pass


def test_run_folder_and_resume_equality(shapes, tmp_path):
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.detect.train import train_detector
    from cnnlab.io import torch_load_safe

    full = train_detector(shapes, project=tmp_path, name="full", **TINY)
    run = full.run_dir
    for f in ("config.yaml", "history.csv", "metrics.json", "results.png", "val_samples.jpg", "train_batch0.jpg",
              "weights/best.pt", "weights/last.pt", "weights/best.cfg", "weights/best.weights",
              "weights/last.weights", "weights/classes.names"):
        assert (run / f).is_file(), f
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and 0.0 <= metrics["mAP50"] <= 1.0
    model, names, imgsz, letterbox = load_detector_checkpoint(run / "weights" / "best.pt")   # weights_only
    assert names == ["circle", "square", "triangle"] and tuple(imgsz) == (64, 64) and letterbox

    part = train_detector(shapes, project=tmp_path, name="part", callbacks=[StopAfter(1)], **TINY)
    assert torch_load_safe(part.run_dir / "weights" / "last.pt")["epoch"] == 1
    resumed = train_detector(resume=part.run_dir, verbose=0)
    assert resumed.run_dir == part.run_dir and len(resumed.history) == 2
    a = torch_load_safe(run / "weights" / "last.pt")
    b = torch_load_safe(part.run_dir / "weights" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key in ("model", "ema"):                        # training weights and the EMA weights used for inference
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
    assert a["history"][1]["loss"] == b["history"][1]["loss"]


def test_detection_resume_after_a_mid_epoch_kill_is_bit_exact(shapes, tmp_path):
    from cnnlab.detect.train import train_detector
    from cnnlab.io import torch_load_safe

    opts = {**TINY, "epochs": 3, "ema_warmup": 3, "plots": False}
    full = train_detector(shapes, project=tmp_path, name="full", **opts)
    with pytest.raises(KeyboardInterrupt):
        train_detector(shapes, project=tmp_path, name="cut", callbacks=[KillMidEpoch(2, 1)], **opts)
    cut = tmp_path / "detect" / "cut"
    assert torch_load_safe(cut / "weights" / "last.pt")["epoch"] == 1
    resumed = train_detector(resume=cut, verbose=0)
    a = torch_load_safe(full.run_dir / "weights" / "last.pt")
    b = torch_load_safe(resumed.run_dir / "weights" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (key, k)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_resume_rewrites_darknet_files_a_kill_left_stale(shapes, tmp_path):
    """Killed after best.pt and before best.cfg/best.weights: the resume writes them from the same epoch."""
    from cnnlab.detect.train import train_detector

    res = train_detector(shapes, project=tmp_path, name="stale", **{**TINY, "epochs": 1, "plots": False})
    w = res.run_dir / "weights"
    good = {n: (w / n).read_bytes() for n in ("best.cfg", "best.weights", "last.cfg", "last.weights")}
    (w / "best.weights").write_bytes(good["best.weights"][:100])     # torn, as a kill mid-write leaves it
    (w / "last.weights").unlink()
    (w / "best.cfg").write_text("[net]\n")
    with pytest.raises(KeyboardInterrupt):      # stop before epoch 2 changes anything: epoch 1's state only
        train_detector(resume=res.run_dir, epochs=2, verbose=0, callbacks=[KillMidEpoch(2, 0)])
    for name, data in good.items():
        assert (w / name).read_bytes() == data, name


def test_trained_run_plugs_into_detector_eval_and_export(shapes, tmp_path):
    import cv2

    from cnnlab.detect.detector import Detector
    from cnnlab.detect.evaluate import detect_eval
    from cnnlab.detect.export import export_detector
    from cnnlab.detect.train import train_detector

    res = train_detector(shapes, project=tmp_path, name="plug", **{**TINY, "epochs": 1})
    img = cv2.imread(str(next((shapes.parent / "images" / "val").glob("*.png"))))
    a = Detector(model=res.run_dir, imgsz=64, conf=0.0001)(img)
    w = res.run_dir / "weights"
    b = Detector(cfg=w / "best.cfg", weights=w / "best.weights", names=w / "classes.names", imgsz=64,
                 conf=0.0001)(img)
    assert a.names == b.names == ["circle", "square", "triangle"]
    assert len(a) == len(b) and len(a) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    ev = detect_eval(shapes, model=str(res.run_dir), imgsz=64, project=tmp_path, verbose=False, plots=False)
    # the trainer's own validation used the same preprocessing and thresholds
    assert ev["mAP50"] == pytest.approx(res.metrics["mAP50"], abs=1e-6)
    out = export_detector(w / "best.cfg", w / "best.weights", output=tmp_path / "m.onnx", imgsz=64,
                          names=a.names)
    assert out.path.is_file()


def test_label_formats_coco_and_voc_train_the_same_boxes(shapes, tmp_path):
    from cnnlab.config import DetectTrainConfig
    from cnnlab.detect.data import load_detection_data, to_coco_json
    from cnnlab.io import write_json
    from cnnlab.tasks.detect.data import load_train_val

    yolo = load_detection_data(shapes, split="train", warn=False)
    (tmp_path / "coco" / "images").mkdir(parents=True)
    for s in yolo.samples:
        (tmp_path / "coco" / "images" / s.image_path.name).write_bytes(s.image_path.read_bytes())
    coco = tmp_path / "coco" / "train.json"
    write_json(coco, to_coco_json(yolo))
    cfg = DetectTrainConfig.from_dict({"data": str(coco)})
    train, val = load_train_val(cfg, log=lambda m: None)
    assert len(train) == len(yolo) and len(val) == len(train)
    for s, t in zip(sorted(train.samples, key=lambda s: s.image_path.name),
                    sorted(yolo.samples, key=lambda s: s.image_path.name), strict=True):
        np.testing.assert_allclose(s.boxes, t.boxes, atol=1e-3)
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    for s in yolo.samples:
        (voc / "JPEGImages" / s.image_path.name).write_bytes(s.image_path.read_bytes())
        objs = "".join(
            f"<object><name>{yolo.names[c]}</name><difficult>0</difficult><bndbox><xmin>{b[0]:.0f}</xmin>"
            f"<ymin>{b[1]:.0f}</ymin><xmax>{b[2]:.0f}</xmax><ymax>{b[3]:.0f}</ymax></bndbox></object>"
            for b, c in zip(s.boxes, s.class_ids, strict=True))
        (voc / "Annotations" / f"{s.image_path.stem}.xml").write_text(
            f"<annotation><filename>{s.image_path.name}</filename><size><width>64</width><height>64</height>"
            f"<depth>3</depth></size>{objs}</annotation>")
    train, _ = load_train_val(DetectTrainConfig.from_dict({"data": str(voc)}), log=lambda m: None)
    assert train.num_boxes == yolo.num_boxes

    from cnnlab.errors import DataError

    bad = json.loads(coco.read_text())
    bad["annotations"][0]["bbox"] = [1, 2, 3]                            # 3 numbers instead of 4
    coco.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="train.json"):
        load_train_val(DetectTrainConfig.from_dict({"data": str(coco)}), log=lambda m: None)
    xml = sorted((voc / "Annotations").glob("*.xml"))[0]
    xml.write_text("<annotation><object><name>circle</name><bndbox><xmin>1</xmin>")   # truncated XML
    with pytest.raises(DataError, match=xml.name):
        load_train_val(DetectTrainConfig.from_dict({"data": str(voc)}), log=lambda m: None)


def test_cli_detect_train_and_broken_labels(shapes, tmp_path, cli):
    code, out, err = cli("detect-train", str(shapes), "--model", "yolov3-tiny", "--width-mult", "0.125",
                         "--imgsz", "64", "--epochs", "1", "--batch", "4", "--project", str(tmp_path),
                         "--name", "cli", "--quiet", "--no-plots")
    assert code == 0, err
    assert "mAP50" in out and (tmp_path / "detect" / "cli" / "weights" / "best.pt").is_file()
    code, _, err = cli("detect-train", "--resume", str(tmp_path / "detect" / "cli"))
    assert code == 2 and "already completed 1 of 1 epochs" in err
    code, _, err = cli("detect-train", "--resume", str(tmp_path / "detect" / "cli"), "--epochs", "2",
                       "--quiet")
    assert code == 0, err

    broken = shapes.parent.parent / "broken"
    import shutil

    shutil.copytree(shapes.parent, broken)
    label = sorted((broken / "labels" / "train").glob("*.txt"))[0]
    label.write_text("0 0.5 0.5 0.2\n")                                  # 4 values instead of 5
    code, _, err = cli("detect-train", str(broken / "data.yaml"), "--imgsz", "64", "--epochs", "1",
                       "--project", str(tmp_path))
    assert code == 2 and "error:" in err and label.name in err and "Traceback" not in err
    label.write_text("7 0.5 0.5 0.2 0.2\n")                              # class id beyond the names
    code, _, err = cli("detect-train", str(broken / "data.yaml"), "--imgsz", "64", "--epochs", "1",
                       "--project", str(tmp_path))
    assert code == 2 and label.name in err
    code, _, err = cli("detect-train", str(shapes), "--imgsz", "100", "--project", str(tmp_path))
    assert code == 2 and "multiple of 32" in err
    code, _, err = cli("detect-train", str(shapes), "--model", "yolov9000", "--project", str(tmp_path))
    assert code == 2 and "yolov9000" in err


def test_transfer_from_darknet_weights_keeps_backbone(tmp_path):
    from cnnlab.darknet.model import DarknetModel
    from cnnlab.darknet.weights import save_darknet_weights
    from cnnlab.darknet.yolo import yolov3_tiny_sections
    from cnnlab.detect.train.model import build_training_model

    torch.manual_seed(1)
    src = DarknetModel(yolov3_tiny_sections(80, 64, width_mult=0.125))
    save_darknet_weights(src, tmp_path / "coco.weights")
    model, info = build_training_model("yolov3-tiny", 3, 64, width_mult=0.125, weights=tmp_path / "coco.weights")
    assert model.num_classes == 3
    s, d = src.state_dict(), model.state_dict()
    heads = {f"layers.{i - 1}.conv.weight" for i in model.yolo_indices}
    for k in d:
        if k in heads:
            assert d[k].shape != s[k].shape
        elif d[k].shape == s[k].shape and d[k].is_floating_point():
            assert torch.equal(d[k], s[k]), k
    n, total = (int(v) for v in info["transferred"].split("/"))
    assert n == total - 2 * len(model.yolo_indices)                    # all but head weights and biases
    # a truncated backbone file (darknet53.conv.74 style) loads into its first layers
    data = (tmp_path / "coco.weights").read_bytes()
    from cnnlab.darknet.weights import expected_count

    cut = 20 + 4 * expected_count(src, 8)
    (tmp_path / "backbone.weights").write_bytes(data[:cut])
    model2, info2 = build_training_model("yolov3-tiny", 3, 64, width_mult=0.125, weights=tmp_path / "backbone.weights")
    assert info2["weights_cutoff"] == 8
    assert torch.equal(model2.state_dict()["layers.0.conv.weight"], s["layers.0.conv.weight"])


@pytest.mark.slow
def test_detection_demo_small(tmp_path):
    from cnnlab.detect.train.demo import detection_demo

    lines = []
    out = detection_demo(tmp_path, lines.append, n_train=16, n_val=8, epochs=1, frames=10)
    assert out["frames"] == 10 and out["fps"] > 0 and 0.0 <= out["mAP50"] <= 1.0
    assert any("FPS" in line for line in lines)


@pytest.mark.realdata
def test_yolo_fastest_weights_transfer_to_new_classes(shared_data):
    from cnnlab.darknet.model import load_darknet
    from cnnlab.detect.train.model import build_training_model

    cfg, weights = shared_data("yolo/yolo-fastest-1.1.cfg"), shared_data("yolo/yolo-fastest-1.1.weights")
    coco = load_darknet(cfg, weights)
    model, info = build_training_model(str(cfg), 3, 320, weights=weights)
    assert model.num_classes == 3 and all(y.classes == 3 for y in model.yolo_layers)
    n, total = (int(v) for v in info["transferred"].split("/"))
    assert n == total - 2 * len(model.yolo_indices)            # everything but the two heads' weight + bias
    s = coco.state_dict()
    for k, v in model.state_dict().items():
        if v.shape == s[k].shape and v.is_floating_point():
            assert torch.equal(v, s[k]), k
