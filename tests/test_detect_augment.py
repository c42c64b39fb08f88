"""Box-correct augmentations: after each transform the boxes still enclose the pixels they labelled."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.detect.train.augment import (
    PAD_VALUE,
    augment_hsv,
    hflip,
    letterbox,
    mosaic,
    random_affine,
    resize_long_side,
    transform_boxes,
)

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def scene(h: int = 120, w: int = 160, seed: int = 0, n: int = 3):
    """Black image with ``n`` filled rectangles of distinct saturated colours and their exact boxes."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    boxes = []
    for k in range(n):
        while True:
            bw, bh = int(rng.integers(15, w // 3)), int(rng.integers(15, h // 3))
            x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            if not img[y0:y0 + bh, x0:x0 + bw].any():
                break
        img[y0:y0 + bh, x0:x0 + bw] = COLOURS[k]
        boxes.append([x0, y0, x0 + bw, y0 + bh])
    return img, np.array(boxes, np.float32), np.arange(n, dtype=np.int64)


def colour_box(img: np.ndarray, colour) -> np.ndarray | None:
    """Bounding box (xyxy, exclusive max) of the pixels close to ``colour``."""
    near = (np.abs(img.astype(int) - np.array(colour)).sum(-1) < 60)
    ys, xs = np.nonzero(near)
    if len(xs) < 4:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assert_boxes_follow(img, boxes, cls, tol: float = 2.5, min_iou: float = 0.85):
    assert len(boxes) == len(cls)
    for b, c in zip(boxes, cls, strict=True):
        found = colour_box(img, COLOURS[int(c)])
        assert found is not None, f"class {c} vanished although its box was kept"
        # the coloured pixels lie inside the box (within interpolation tolerance) and fill it
        assert found[0] >= b[0] - tol and found[1] >= b[1] - tol
        assert found[2] <= b[2] + tol and found[3] <= b[3] + tol
        assert iou(found, b) > min_iou, (found, b)


def test_scene_helper_is_exact():
    img, boxes, cls = scene()
    for b, c in zip(boxes, cls, strict=True):
        np.testing.assert_array_equal(colour_box(img, COLOURS[c]), b)


def test_hflip_moves_boxes_with_pixels():
    img, boxes, cls = scene(seed=1)
    out, new = hflip(img, boxes)
    assert_boxes_follow(out, new, cls, tol=0.0, min_iou=0.999)
    _, back = hflip(out, new)
    np.testing.assert_allclose(back, boxes)


@pytest.mark.parametrize("new_hw", [(128, 128), (96, 224), (320, 320)])
def test_letterbox_keeps_boxes_on_pixels(new_hw):
    img, boxes, cls = scene(seed=2)
    out, new, r, (left, top) = letterbox(img, new_hw, boxes)
    assert out.shape[:2] == new_hw
    assert r == pytest.approx(min(new_hw[0] / 120, new_hw[1] / 160))
    assert (out[:int(top)] == PAD_VALUE).all() and (out[:, :int(left)] == PAD_VALUE).all()
    assert_boxes_follow(out, new, cls, tol=1.5, min_iou=0.8)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_affine_boxes_enclose_the_rectangles(seed):
    img, boxes, cls = scene(seed=seed)
    rng = np.random.default_rng(seed)
    out, new, kept = random_affine(img, boxes, cls, rng, out_hw=(128, 128), degrees=10, translate=0.1,
                                   scale=0.3, shear=0.0)
    assert out.shape == (128, 128, 3)
    for b, c in zip(new, kept, strict=True):
        found = colour_box(out, COLOURS[int(c)])
        if found is None:
            continue
        # partly cut-off rectangles: the visible pixels are inside the (clipped) box
        assert found[0] >= b[0] - 2.5 and found[1] >= b[1] - 2.5
        assert found[2] <= b[2] + 2.5 and found[3] <= b[3] + 2.5
        assert iou(found, b) > 0.75


def test_random_affine_pure_shift_is_exact():
    img, boxes, cls = scene(seed=4)
    rng = np.random.default_rng(0)
    out, new, kept = random_affine(img, boxes, cls, rng, degrees=0, translate=0.0, scale=0.0, shear=0.0)
    np.testing.assert_allclose(new, boxes, atol=1e-4)
    np.testing.assert_array_equal(out, img)
    assert list(kept) == list(cls)


def test_transform_boxes_rotation_by_90_degrees():
    m = np.array([[0.0, -1.0, 100.0], [1.0, 0.0, 0.0], [0, 0, 1]])    # (x, y) -> (100 - y, x)
    out = transform_boxes(np.array([[10, 20, 30, 60]], np.float32), m, (200, 200))
    np.testing.assert_allclose(out, [[40, 10, 80, 30]])


def test_random_affine_drops_boxes_pushed_out():
    img, boxes, cls = scene(seed=5)
    m_rng = np.random.default_rng(3)
    out, new, kept = random_affine(img, boxes, cls, m_rng, out_hw=(60, 60), degrees=0, translate=0.0,
                                   scale=0.0)
    assert len(new) <= len(boxes)
    assert (new[:, [0, 2]] <= 60).all() and (new[:, [1, 3]] <= 60).all() and (new >= 0).all()


def test_mosaic_then_crop_keeps_boxes_on_pixels():
    parts = []
    for k in range(4):
        img, boxes, _ = scene(seed=10 + k, n=1)
        img[(img == COLOURS[0]).all(-1)] = COLOURS[k]    # one colour per image
        img, r = resize_long_side(img, 96)
        parts.append((img, boxes * r, np.array([k])))
    rng = np.random.default_rng(0)
    canvas, boxes, cls = mosaic(parts, 96, rng)
    assert canvas.shape == (192, 192, 3)
    assert_boxes_follow(canvas, boxes, cls, tol=1.5, min_iou=0.9)
    out, new, kept = random_affine(canvas, boxes, cls, rng, degrees=0, translate=0.1, scale=0.2,
                                   border=(-48, -48))
    assert out.shape == (96, 96, 3)
    for b, c in zip(new, kept, strict=True):
        found = colour_box(out, COLOURS[int(c)])
        assert found is not None
        assert found[0] >= b[0] - 2 and found[1] >= b[1] - 2 and found[2] <= b[2] + 2 and found[3] <= b[3] + 2


def test_hsv_changes_colours_not_geometry():
    img, _, _ = scene(seed=6)
    img[img.sum(-1) == 0] = (40, 80, 120)
    out = augment_hsv(img, np.random.default_rng(0), 0.1, 0.7, 0.4)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)
    same = augment_hsv(img, np.random.default_rng(0), 0.0, 0.0, 0.0)
    np.testing.assert_array_equal(same, img)


def test_synthetic_scene_boxes_are_tight(tmp_path):
    from cnnlab.detect.data import load_detection_data
    from cnnlab.detect.train.scenes import (
        SHAPES,
        make_scene,
        shape_mask,
        write_scene_clip,
        write_scene_dataset,
    )

    rng = np.random.default_rng(0)
    for kind in SHAPES:
        m = shape_mask(kind, 21, rng)
        ys, xs = np.nonzero(m)
        assert xs.min() <= 1 and ys.min() <= 1 and xs.max() >= 19 and ys.max() >= 19
    img, boxes, cls = make_scene(np.random.default_rng(3), 96, 128)
    assert img.shape == (96, 128, 3) and len(boxes) == len(cls) >= 1
    assert (boxes[:, [0, 2]] <= 128).all() and (boxes[:, [1, 3]] <= 96).all() and (boxes[:, 2:] > boxes[:, :2]).all()
    data = write_scene_dataset(tmp_path / "s", n_train=3, n_val=2, size=64, seed=0)
    ds = load_detection_data(data, split="train", warn=False)
    assert len(ds) == 3 and ds.names == list(SHAPES) and ds.num_boxes >= 3
    clip = write_scene_clip(tmp_path / "clip.avi", frames=5, height=64, width=96)
    import cv2

    cap = cv2.VideoCapture(str(clip))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (64, 96, 3)


def test_loader_batches_are_seeded_normalised_and_multi_scale(tmp_path):
    from cnnlab.detect.data import load_detection_data
    from cnnlab.detect.train.dataset import AugmentOptions, DetectionLoader, DetectionTrainSet
    from cnnlab.detect.train.scenes import write_scene_dataset

    data = write_scene_dataset(tmp_path / "s", n_train=6, n_val=1, size=64, seed=0)
    ds = load_detection_data(data, split="train", warn=False)
    train = DetectionTrainSet(ds.samples, 64, AugmentOptions(mosaic=0.5), seed=3)
    loader = DetectionLoader(train, batch_size=4, seed=3, multi_scale=True)
    assert len(loader) == 2
    loader.set_epoch(1)
    first = list(loader)
    loader.set_epoch(1)
    again = list(loader)
    loader.set_epoch(2)
    other = list(loader)
    for (x, t), (x2, t2) in zip(first, again, strict=True):
        assert x.dtype.is_floating_point and x.shape[1] == 3 and x.shape[2] % 32 == 0
        assert 32 <= x.shape[2] <= 96 and x.shape[2] == x.shape[3]
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert (t[:, 2:] >= 0).all() and (t[:, 2:] <= 1).all() and (t[:, 4:] > 0).all()
        assert set(t[:, 0].long().tolist()) <= set(range(x.shape[0]))
        assert x.equal(x2) and t.equal(t2)
    assert not all(a[0].shape == b[0].shape and a[0].equal(b[0]) for a, b in zip(first, other, strict=True))
    plain = DetectionTrainSet(ds.samples, 64, None)
    img, boxes, cls = plain.item(0)
    assert img.shape == (64, 64, 3)
    np.testing.assert_allclose(boxes, ds.samples[0].boxes, atol=1e-4)        # 64 px scenes: letterbox is identity


def test_augment_options_follow_the_training_config():
    import dataclasses

    from cnnlab.config import DetectTrainConfig
    from cnnlab.detect.train.dataset import AugmentOptions

    defaults = DetectTrainConfig()
    assert AugmentOptions.from_config(defaults) == AugmentOptions()  # the same defaults in both places
    custom = dataclasses.replace(defaults, mosaic=0.0, fliplr=0.0, hsv_v=0.1)
    opts = AugmentOptions.from_config(custom)
    assert (opts.mosaic, opts.fliplr, opts.hsv_v) == (0.0, 0.0, 0.1)
