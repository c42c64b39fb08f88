"""cnnlab-nano, the anchor-free detector: shapes, FLOP budget, its loss, detect-train (API and CLI), exact
resume, ONNX export and every Detector backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _kill import KillMidEpoch

TINY = {"model": "cnnlab-nano", "width_mult": 0.25, "imgsz": 64, "epochs": 2, "batch": 4, "optimizer": "adam",
        "lr": 3e-3, "verbose": 0, "mosaic": 0.5, "ema_warmup": 5, "plots": False}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from cnnlab.detect.train.scenes import write_scene_dataset

    return write_scene_dataset(tmp_path_factory.mktemp("nano") / "data", n_train=8, n_val=4, size=64, seed=0)


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    from cnnlab.detect.train import train_detector

    return train_detector(shapes, project=tmp_path_factory.mktemp("runs"), name="nano", **TINY)


def test_shapes_and_decode():
    from cnnlab.models import create_model

    model = create_model("cnnlab-nano", num_classes=5, img_size=128).eval()
    x = torch.rand(2, 3, 128, 96)
    with torch.no_grad():
        raw = model.forward_raw(x)
        rows = model(x)
        xyxy, logits = model.boxes(raw)
    assert [tuple(r.shape) for r in raw] == [(2, 9, 16, 12), (2, 9, 8, 6), (2, 9, 4, 3)]
    n = 16 * 12 + 8 * 6 + 4 * 3
    assert len(rows) == 1 and rows[0].shape == (2, n, 10)
    assert xyxy.shape == (2, n, 4) and logits.shape == (2, n, 5)
    assert (xyxy[..., 2:] > xyxy[..., :2]).all()                  # distances are positive (softplus)
    r = rows[0]
    assert torch.allclose(r[..., 4], r[..., 5:].max(-1).values)   # the "objectness" column = best class score
    assert torch.allclose(r[..., 0] * 96, (xyxy[..., 0] + xyxy[..., 2]) / 2, atol=1e-4)
    assert torch.allclose(r[..., 3] * 128, xyxy[..., 3] - xyxy[..., 1], atol=1e-4)


def test_under_one_gflop_at_320_and_fuse_keeps_outputs():
    from cnnlab.inspect.summary import summary
    from cnnlab.models import create_model

    model = create_model("cnnlab-nano", num_classes=80, img_size=320)
    s = summary(model, (3, 320, 320))
    assert 0.3e9 < s.flops < 1.0e9                              # the budget: under ~1 GFLOP at 320 px
    assert 0.3e6 < s.trainable < 1.5e6
    model.eval()
    x = torch.rand(1, 3, 320, 320)
    with torch.no_grad():
        ref = model(x)[0]
        fused = model.fused_copy()
        got = fused(x)[0]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def _scene_batch(n: int = 4, size: int = 64):
    from cnnlab.detect.train.dataset import collate
    from cnnlab.detect.train.scenes import make_scene

    rng = np.random.default_rng(0)
    items = []
    for _ in range(n):
        img, boxes, cls = make_scene(rng, size, size)
        items.append((img, boxes.astype(np.float32), cls.astype(np.int64)))
    return collate(items)


def test_loss_decreases_on_a_tiny_batch():
    from cnnlab.detect.train.af_loss import TaskAlignedLoss
    from cnnlab.models import create_model

    torch.manual_seed(0)
    x, t = _scene_batch()
    assert len(t) > 0
    model = create_model("cnnlab-nano", num_classes=3, img_size=64, width_mult=0.25)
    loss_fn = TaskAlignedLoss(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        total, parts = loss_fn(model.forward_raw(x), t, (64, 64))
        assert set(parts) == {"box", "cls"}
        assert torch.isclose(total, (parts["box"] + parts["cls"]) * len(x))   # the parts add up to the total
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_assigner_gives_every_box_positives_even_tiny_ones():
    from cnnlab.detect.train.af_loss import TaskAlignedLoss
    from cnnlab.models import create_model

    model = create_model("cnnlab-nano", num_classes=2, img_size=64, width_mult=0.25).eval()
    loss_fn = TaskAlignedLoss(model)
    # a 3x3-pixel box (smaller than any cell) and a large one, in image 1 of 2
    t = torch.tensor([[1, 0, 0.5, 0.5, 3 / 64, 3 / 64], [1, 1, 0.3, 0.6, 0.5, 0.6]])
    with torch.no_grad():
        raw = model.forward_raw(torch.rand(2, 3, 64, 64))
        pboxes, logits = model.boxes(raw)
        boxes, cls, mask = loss_fn._pad(t, 2, (64, 64))
        pts, strides = loss_fn._points(raw, model.strides)
        fg, t_boxes, t_scores = loss_fn._assign(logits.sigmoid(), pboxes, pts, strides, boxes, cls, mask)
    assert not fg[0].any() and fg[1].any()                    # image 0 has no boxes
    assigned = {tuple(b.tolist()) for b in t_boxes[1][fg[1]]}
    assert assigned == {tuple(b.tolist()) for b in boxes[1]}  # both boxes got cells
    assert (t_scores[1][fg[1]].sum(-1) > 0).all() and t_scores[0].sum() == 0


def test_train_run_folder_and_checkpoint(trained):
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.io import torch_load_safe

    run = trained.run_dir
    for f in ("config.yaml", "history.csv", "metrics.json", "weights/best.pt", "weights/last.pt",
              "weights/classes.names"):
        assert (run / f).is_file(), f
    assert not (run / "weights" / "best.cfg").exists()          # no Darknet form for an anchor-free model
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and 0.0 <= metrics["mAP50"] <= 1.0
    ckpt = torch_load_safe(run / "weights" / "last.pt")
    assert ckpt["model_spec"]["name"] == "cnnlab-nano" and "cfg" not in ckpt
    h = ckpt["history"][-1]
    assert set(h) >= {"loss", "box_loss", "cls_loss", "mAP50"} and "obj_loss" not in h
    assert h["loss"] == pytest.approx(h["box_loss"] + h["cls_loss"], rel=1e-4)
    model, names, imgsz, letterbox = load_detector_checkpoint(run / "weights" / "best.pt")
    assert getattr(model, "anchor_free", False) and names == ["circle", "square", "triangle"]
    assert tuple(imgsz) == (64, 64) and letterbox


def test_malformed_model_spec_is_one_line(trained, tmp_path):
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.errors import UserError
    from cnnlab.io import torch_load_safe, torch_save_atomic

    ckpt = torch_load_safe(trained.run_dir / "weights" / "best.pt")
    for bad in ({"name": 3}, {"name": "resnet18", "num_classes": 3, "kwargs": {}}, "cnnlab-nano"):
        torch_save_atomic({**ckpt, "model_spec": bad}, tmp_path / "bad.pt")
        with pytest.raises(UserError):
            load_detector_checkpoint(tmp_path / "bad.pt")


def test_backends_agree_and_onnx_export(trained, shapes, tmp_path):
    import cv2

    from cnnlab.detect import Detector
    from cnnlab.detect.export import export_trained_detector

    img = cv2.imread(str(sorted((shapes.parent / "images" / "val").glob("*.*"))[0]))
    found = {}
    for backend in ("torch", "onnxruntime", "opencv"):
        det = Detector(model=trained.run_dir, backend=backend, conf=0.001, device="cpu")
        assert det.imgsz == (64, 64) and det.names == ["circle", "square", "triangle"]
        found[backend] = det(img)
    ref = found["torch"]
    assert len(ref.boxes) > 0
    for backend in ("onnxruntime", "opencv"):
        d = found[backend]
        assert len(d.boxes) == len(ref.boxes), backend
        np.testing.assert_allclose(np.sort(d.scores), np.sort(ref.scores), atol=1e-4)
    res = export_trained_detector(trained.run_dir, tmp_path / "nano.onnx")
    assert res.max_abs_diff < 1e-3 * max(1.0, res.max_abs_output)
    n = 8 * 8 + 4 * 4 + 2 * 2
    assert res.output_shape == (1, n, 8)
    for backend in ("onnxruntime", "opencv"):
        det = Detector(model=res.path, backend=backend, conf=0.001)
        assert det.names == ["circle", "square", "triangle"]
        d = det(img)
        np.testing.assert_allclose(np.sort(d.scores), np.sort(ref.scores), atol=1e-4)


def test_detect_eval_reads_the_run(trained, shapes):
    from cnnlab.detect.evaluate import detect_eval

    out = detect_eval(shapes, model=trained.run_dir, save=False, verbose=False)
    assert out["mAP50"] == pytest.approx(trained.metrics["mAP50"], abs=0.02)


def test_resume_after_a_mid_epoch_kill_is_bit_exact(shapes, tmp_path):
    from cnnlab.detect.train import train_detector
    from cnnlab.io import torch_load_safe

    opts = {**TINY, "epochs": 3, "ema_warmup": 3}
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


def test_cli_trains_and_fine_tunes_from_a_run(shapes, trained, cli, tmp_path):
    code, out, err = cli("detect-train", str(shapes), "--model", "cnnlab-nano", "--width-mult", "0.25",
                         "--imgsz", "64", "--epochs", "1", "--batch", "4", "--project", str(tmp_path),
                         "--name", "cli", "--no-plots", "--anchors", "auto")
    assert code == 0, err
    assert "cnnlab-nano" in out and "anchor-free" in out and "cls" in out
    assert (tmp_path / "detect" / "cli" / "weights" / "best.pt").is_file()
    # fine-tune: a trained run as the starting point (same classes: every tensor transfers)
    code, out, err = cli("detect-train", str(shapes), "--model", str(trained.run_dir), "--imgsz", "64",
                         "--epochs", "1", "--batch", "4", "--project", str(tmp_path), "--name", "ft", "--no-plots")
    assert code == 0, err
    cfg = (tmp_path / "detect" / "ft" / "config.yaml").read_text()
    assert "transferred" in cfg and "init_from" in cfg
    # Darknet weights cannot start it: one line, exit 2
    bad = tmp_path / "x.weights"
    bad.write_bytes(b"\0" * 64)
    code, _, err = cli("detect-train", str(shapes), "--model", "cnnlab-nano", "--weights", str(bad),
                       "--imgsz", "64", "--epochs", "1", "--project", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1


_plain = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
                      | st.text(max_size=12), lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(st.text(max_size=10), c, max_size=3), max_leaves=8)
_spec = st.fixed_dictionaries({}, optional={"name": st.sampled_from(["cnnlab-nano", "nano", "lenet5", "x"]) | _plain,
                                            "num_classes": _plain | st.integers(-5, 10**9),
                                            "in_chans": _plain, "img_size": _plain,
                                            "kwargs": st.fixed_dictionaries({}, optional={
                                                "width_mult": _plain | st.floats(-1, 1e6),
                                                "neck": _plain | st.integers(-5, 10**7)}) | _plain}) | _plain


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_spec)
def test_any_model_spec_loads_or_is_one_user_error(trained, tmp_path, spec):
    """A checkpoint is untrusted input: whatever its model_spec holds, it loads or raises UserError (no huge
    allocation, no traceback)."""
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.errors import UserError
    from cnnlab.io import torch_load_safe, torch_save_atomic

    ckpt = _ckpt_cache.setdefault("best", torch_load_safe(trained.run_dir / "weights" / "best.pt"))
    torch_save_atomic({**ckpt, "model_spec": spec}, tmp_path / "fuzz.pt")
    try:
        model = load_detector_checkpoint(tmp_path / "fuzz.pt")[0]
    except UserError:
        return
    assert getattr(model, "anchor_free", False)


_ckpt_cache: dict = {}
