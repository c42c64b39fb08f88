"""YOLOv3 target assignment on hand-made cases, and the loss on a tiny overfit set."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cnnlab.darknet.yolo import YOLOV3_ANCHORS
from cnnlab.detect.train.targets import build_targets, wh_iou

IMG = (416, 416)
LAYERS = [SimpleNamespace(all_anchors=YOLOV3_ANCHORS, mask=m) for m in ([6, 7, 8], [3, 4, 5], [0, 1, 2])]
GRIDS = [(13, 13), (26, 26), (52, 52)]


def box(cx: float, cy: float, w_px: float, h_px: float, cls: int = 0, img: int = 0) -> list[float]:
    return [img, cls, cx, cy, w_px / 416, h_px / 416]


def test_wh_iou_values():
    out = wh_iou(torch.tensor([[10.0, 10.0]]), torch.tensor([[10.0, 10.0], [20.0, 10.0], [5.0, 5.0]]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.5, 0.25]]))


def test_box_equal_to_an_anchor_goes_to_that_anchor_only():
    t = torch.tensor([box(0.5, 0.5, 30, 61, cls=2)])         # exactly anchor 3 (30, 61)
    out = build_targets(t, LAYERS, GRIDS, IMG, iou_thresh=1.0)
    assert [len(o) for o in out] == [0, 1, 0]
    mid = out[1]
    assert int(mid.a[0]) == 0 and int(mid.gj[0]) == 13 and int(mid.gi[0]) == 13 and int(mid.cls[0]) == 2
    # centre offset inside the cell, size in grid cells (stride 16), anchor in grid cells
    torch.testing.assert_close(mid.tbox[0], torch.tensor([0.0, 0.0, 30 / 16, 61 / 16]))
    torch.testing.assert_close(mid.anchors[0], torch.tensor([30 / 16, 61 / 16]))


def test_cell_is_the_one_holding_the_centre():
    t = torch.tensor([box(0.1, 0.9, 10, 13)])                 # anchor 0 -> stride-8 layer, 52x52 grid
    out = build_targets(t, LAYERS, GRIDS, IMG, iou_thresh=1.0)
    small = out[2]
    assert len(small) == 1
    assert int(small.gi[0]) == int(0.1 * 52) and int(small.gj[0]) == int(0.9 * 52)
    torch.testing.assert_close(small.tbox[0, :2], torch.tensor([0.1 * 52 - 5, 0.9 * 52 - 46]))


def test_extra_anchors_above_the_iou_threshold():
    t = torch.tensor([box(0.5, 0.5, 62, 45)])                  # anchor 4 exactly
    ious = wh_iou(torch.tensor([[62.0, 45.0]]), torch.tensor(YOLOV3_ANCHORS, dtype=torch.float32))[0]
    thresh = 0.3
    expected = {int(k) for k in torch.nonzero(ious > thresh).flatten()} | {4}
    out = build_targets(t, LAYERS, GRIDS, IMG, iou_thresh=thresh)
    got = {LAYERS[li].mask[int(a)] for li, o in enumerate(out) for a in o.a}
    assert got == expected and len(got) > 1


def test_several_images_and_empty_targets():
    t = torch.tensor([box(0.25, 0.25, 116, 90, img=0), box(0.75, 0.75, 116, 90, img=3)])
    out = build_targets(t, LAYERS, GRIDS, IMG, iou_thresh=1.0)
    assert out[0].b.tolist() == [0, 3] and out[0].a.tolist() == [0, 0]
    assert out[0].gi.tolist() == [3, 9]
    empty = build_targets(torch.zeros((0, 6)), LAYERS, GRIDS, IMG)
    assert all(len(o) == 0 for o in empty)


def test_grid_size_follows_the_batch_size_not_the_cfg():
    t = torch.tensor([box(0.5, 0.5, 30, 61)])
    out = build_targets(t, LAYERS, [(10, 10), (20, 20), (40, 40)], (320, 320), iou_thresh=1.0)
    assert int(out[1].gi[0]) == 10
    torch.testing.assert_close(out[1].anchors[0], torch.tensor([30 / 16, 61 / 16]))   # 320/20 = stride 16


def _tiny_batch():
    x = torch.full((2, 3, 64, 64), 0.45)
    x[0, :, 8:40, 8:40] = torch.tensor([1.0, 0.1, 0.1]).view(3, 1, 1)
    x[1, :, 30:60, 20:44] = torch.tensor([0.1, 0.1, 1.0]).view(3, 1, 1)
    t = torch.tensor([[0, 0, 24 / 64, 24 / 64, 32 / 64, 32 / 64], [1, 1, 32 / 64, 45 / 64, 24 / 64, 30 / 64]])
    return x, t


@pytest.mark.parametrize("box_loss", ["mse", "iou", "giou", "diou", "ciou"])
def test_loss_is_finite_with_gradients(box_loss):
    from cnnlab.detect.train.loss import YoloLoss
    from cnnlab.detect.train.model import build_training_model

    model, _ = build_training_model("yolov3-tiny", 2, 64, width_mult=0.125)
    x, t = _tiny_batch()
    raw = model.forward_raw(x)
    assert [tuple(r.shape) for r in raw] == [(2, 21, 2, 2), (2, 21, 4, 4)]
    loss, parts = YoloLoss(model, box_loss=box_loss)(raw, t, (64, 64))
    assert torch.isfinite(loss) and set(parts) == {"box", "obj", "cls"}
    loss.backward()
    head = model.layers[model.yolo_indices[0] - 1].conv.weight
    assert head.grad is not None and head.grad.abs().sum() > 0


def test_loss_decreases_on_a_tiny_overfit_set():
    from cnnlab.detect.train.loss import YoloLoss
    from cnnlab.detect.train.model import build_training_model

    torch.manual_seed(0)
    model, _ = build_training_model("yolov3-tiny", 2, 64, width_mult=0.125, anchors=[[10, 14], [23, 27], [37, 58],
                                                                                   [81, 82], [135, 169], [344, 319]])
    crit = YoloLoss(model, box_loss="ciou")
    x, t = _tiny_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(40):
        loss, _ = crit(model.forward_raw(x), t, (64, 64))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.4 * losses[0], losses[::8]
