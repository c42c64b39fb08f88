"""Semantic segmentation on the engine: exact synthetic masks, a tiny run and its run folder, exact resume
after a mid-epoch kill, the mask-folder and VOC layouts, the metrics, every model by name, evaluate /
predict / ONNX export, and the run in ``cnnlab report`` and ``compare``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from _kill import KillMidEpoch
from cnnlab.errors import UserError
from cnnlab.io import torch_load_safe
from cnnlab.tasks.segment.infer import evaluate_segmenter, export_segmenter, predict_segmenter
from cnnlab.tasks.segment.run import train_segmenter

TINY = {"data": "synthetic", "synthetic_train": 32, "synthetic_val": 8, "imgsz": 32, "batch": 16, "epochs": 2,
        "verbose": 0, "threads": 1, "width": 4}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_segmenter(TINY, project=str(tmp_path_factory.mktemp("seg") / "runs"))


def test_synthetic_masks_are_exact():
    """The mask is the drawn pixels: where it says 'shape', the image differs from the background."""
    from cnnlab.tasks.segment.data import synthetic_data

    d = synthetic_data(4, 64, seed=1)
    assert d.classes == ["background", "circle", "square", "triangle"]
    assert d.masks.shape == (4, 64, 64) and set(d.masks.unique().tolist()) <= {0, 1, 2, 3}
    assert all((m > 0).any() for m in d.masks)
    from cnnlab.detect.train.scenes import make_scene, textured_background

    label = np.zeros((64, 64), np.int64)
    img, _, cls = make_scene(np.random.default_rng(5), 64, 64, objects=(2, 3), label_map=label)
    background = textured_background(np.random.default_rng(5), 64, 64)   # the same draws, no shapes
    drawn = (img != background).any(-1)
    assert not (drawn & (label == 0)).any()       # nothing drawn outside the mask
    assert drawn[label > 0].mean() > 0.95         # and the mask is what was drawn
    assert set(np.unique(label[label > 0])) <= set((cls + 1).tolist())
    again = synthetic_data(4, 64, seed=1)
    assert torch.equal(d.masks, again.masks) and torch.equal(d.images, again.images)


def test_metrics_from_the_confusion_matrix():
    from cnnlab.tasks.segment.metrics import confusion, scores

    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    m = confusion(pred, target, 3)
    assert m.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]   # the 255 pixel is left out
    s = scores(m, ["bg", "a", "b"])
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)
    assert s["iou"] == pytest.approx({"bg": 1 / 3, "a": 3 / 4, "b": 1 / 2})
    assert s["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)


def test_tiny_synthetic_run_writes_a_complete_run_folder(run):
    d = run.run_dir
    assert d.parent.name == "segment"
    for f in ("config.yaml", "metrics.json", "curves.png", "val_masks.png", "confusion.png", "weights/best.pt"):
        assert (d / f).is_file(), f
    m = json.loads((d / "metrics.json").read_text())
    assert 0 <= m["val_miou"] <= 1 and 0 <= m["val_pixel_accuracy"] <= 1 and m["epochs"] == 2
    assert sum(map(sum, m["confusion_matrix"])) == 8 * 32 * 32
    assert torch_load_safe(d / "weights/last.pt")["format"] == "cnnlab.segment"


def test_evaluate_reproduces_the_runs_validation_metrics(run):
    r = evaluate_segmenter(run.run_dir)
    assert r["images"] == 8
    assert r["miou"] == pytest.approx(run.metrics["val_miou"], abs=1e-9)
    assert r["pixel_accuracy"] == pytest.approx(run.metrics["val_pixel_accuracy"], abs=1e-9)


def test_resume_after_a_mid_epoch_kill_is_bit_exact(tmp_path):
    opts = {**TINY, "epochs": 3, "ema": 0.9, "ema_warmup": 2, "plots": False, "project": str(tmp_path / "runs")}
    full = train_segmenter(opts, name="full")
    with pytest.raises(KeyboardInterrupt):
        train_segmenter(opts, name="cut", callbacks=[KillMidEpoch(2, 1)])
    resumed = train_segmenter(resume=tmp_path / "runs/segment/cut")
    a = torch_load_safe(full.run_dir / "weights/last.pt")
    b = torch_load_safe(resumed.run_dir / "weights/last.pt")
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert full.metrics["val_miou"] == resumed.metrics["val_miou"]


def _mask_folder(root, n=6, values=(0, 255)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i}.png"), rng.integers(0, 255, (40, 40), np.uint8))
        m = np.full((40, 40), values[0], np.uint8)
        m[10:30, 5:20] = values[1]
        cv2.imwrite(str(root / "masks" / f"{i}.png"), m)
    return root


def test_mask_folder_values_become_classes(tmp_path):
    """Grey images and {0, 255} masks (the membrane layout) -> 2 classes; 0..K-1 masks keep their ids."""
    from cnnlab.tasks.segment.data import from_folder

    d = from_folder(_mask_folder(tmp_path / "a"), 32, None)
    assert d.classes == ["0", "255"] and set(d.masks.unique().tolist()) == {0, 1} and d.images.shape[1] == 3
    d = from_folder(_mask_folder(tmp_path / "b", values=(0, 2)), 32, ["bg", "x", "y"])
    assert d.classes == ["bg", "x", "y"] and set(d.masks.unique().tolist()) == {0, 2}
    with pytest.raises(UserError, match="expected images/ and masks/"):
        from_folder(tmp_path, 32, None)


def test_voc_layout_reads_palette_indices_and_ignores_void(tmp_path):
    from PIL import Image

    from cnnlab.tasks.segment.data import IGNORE, from_voc

    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    m = np.zeros((20, 20), np.uint8)
    m[5:15, 5:15] = 15          # person
    m[4, :] = IGNORE            # the void border VOC draws
    img = Image.fromarray(m, mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0] * 128)
    img.save(tmp_path / "SegmentationClass" / "a.png")
    cv2.imwrite(str(tmp_path / "JPEGImages" / "a.jpg"), np.zeros((20, 20, 3), np.uint8))
    d = from_voc(tmp_path, 20, "train", None)
    assert len(d.classes) == 21 and d.classes[15] == "person"
    assert set(d.masks.unique().tolist()) == {0, 15, IGNORE}


@pytest.mark.parametrize("name", ["unet", "fcn8s", "fcn32s", "lraspp_mobilenet_v3_large",
                                  "deeplabv3_mobilenet_v3_large", "fcn_resnet50"])
def test_every_model_maps_images_to_per_pixel_scores(name):
    from cnnlab.tasks.segment.model import build_segmenter

    torch.manual_seed(0)
    model = build_segmenter({"name": name, "num_classes": 3, "in_chans": 3, "width": 4, "img_size": 64}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 3, 64, 64)


def test_local_torchvision_weights_load_where_they_fit(tmp_path):
    from cnnlab.tasks.segment.model import build_segmenter, load_local_weights

    src = build_segmenter({"name": "lraspp_mobilenet_v3_large", "num_classes": 21, "in_chans": 3, "width": 1,
                           "img_size": 64})
    torch.save(src.net.state_dict(), tmp_path / "w.pth")
    dst = build_segmenter({"name": "lraspp_mobilenet_v3_large", "num_classes": 3, "in_chans": 3, "width": 1,
                           "img_size": 64})
    info = load_local_weights(dst, str(tmp_path / "w.pth"))
    n, total = (int(v) for v in info.split()[0].split("/"))
    assert 0 < n < total  # backbone in, the 21-class classifier left out
    k = "backbone.0.0.weight"
    assert torch.equal(dst.net.state_dict()[k], src.net.state_dict()[k])


def test_predict_writes_masks_and_overlays(run, tmp_path):
    from cnnlab.tasks.segment.data import synthetic_data

    d = synthetic_data(1, 48, seed=3)
    p = tmp_path / "s.png"
    cv2.imwrite(str(p), np.ascontiguousarray(d.images[0].numpy().transpose(1, 2, 0)[:, :, ::-1]))
    (mask,) = predict_segmenter(run.run_dir, [p], output=tmp_path / "out")
    assert mask.shape == (48, 48) and mask.max() < 4
    assert (cv2.imread(str(tmp_path / "out/s_mask.png"), cv2.IMREAD_UNCHANGED) == mask).all()
    assert (tmp_path / "out/s_overlay.jpg").is_file()


def test_onnx_export_matches_pytorch(run, tmp_path):
    r = export_segmenter(run.run_dir, tmp_path / "seg.onnx")
    assert r["max_abs_diff"] < 1e-4 and r["classes"][0] == "background"


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="unknown segmentation model 'segformer'"):
        train_segmenter({**TINY, "model": "segformer"})
    with pytest.raises(UserError, match="imgsz must be a multiple of 32 for unet"):
        train_segmenter({**TINY, "imgsz": 40})
    with pytest.raises(UserError, match="dataset not found"):
        train_segmenter({**TINY, "data": str(tmp_path / "none")})


def test_run_appears_in_report_and_compare(run, tmp_path):
    from cnnlab.experiments.compare import compare
    from cnnlab.experiments.report import report

    md = report([run.run_dir], output=tmp_path / "rep", samples=0).markdown.read_text()
    assert "segmentation: unet on synthetic" in md and "| val_miou |" in md and "per-class IoU" in md
    spec = {"task": "segment", "shared": {**TINY, "epochs": 1, "plots": False},
            "entries": ["unet", "fcn8s"]}
    res = compare(spec, project=str(tmp_path / "runs"), name="seg", log=None)
    assert [r["status"] for r in res.rows] == ["done", "done"]
    assert all(0 <= r["val_miou"] <= 1 for r in res.rows)
    assert "* = highest val_miou" in (res.run_dir / "comparison.md").read_text()


@pytest.mark.realdata
def test_membrane_folder_trains(shared_data, tmp_path):
    """The ISBI membrane images (grey, 0/255 masks): two classes, a held-out split, a finished run."""
    root = shared_data("membrane")
    r = train_segmenter({**TINY, "data": str(root), "epochs": 1, "imgsz": 64, "val_fraction": 0.2},
                        project=str(tmp_path / "runs"))
    assert torch_load_safe(r.run_dir / "weights/best.pt")["classes"] == ["0", "255"]
    assert 0 <= r.metrics["val_miou"] <= 1 and len(r.metrics["confusion_matrix"]) == 2
