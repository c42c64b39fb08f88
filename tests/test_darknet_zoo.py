"""The Darknet zoo beyond YOLOv3/v4: [region], [reorg], [scale_channels], [sam], strided shortcuts, against
cv2.dnn on random weights (written as a real .weights file) and against Darknet's own formulas.

The fixtures in tests/darknet_cfgs are the official cfg texts: yolov2.cfg and yolov2-tiny.cfg of
pjreddie/darknet, enet-coco.cfg (EfficientNet-B0 + YOLOv3-tiny head) and resnet50.cfg as added to
AlexeyAB/darknet. The tests run them at a small input size; the weights are random, with batch-norm
statistics calibrated so the activations stay O(1) and a difference is a real one.

Tolerance: every decoded value (boxes, objectness, class scores) within 1e-4 absolute + 2e-4 relative
of OpenCV's (float32 accumulation order differs: we measured at most ~1e-4 relative).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cnnlab.darknet.cfg import UnsupportedCfg, format_cfg, parse_cfg_text, read_cfg
from cnnlab.darknet.model import DarknetModel
from cnnlab.darknet.weights import expected_count, load_darknet_weights, save_darknet_weights
from cnnlab.detect.synthetic import calibrate_batchnorm, random_images
from cnnlab.errors import UserError

CFGS = Path(__file__).parent / "darknet_cfgs"
RTOL, ATOL = 2e-4, 1e-4


def _files(tmp_path: Path, name: str, size: int, text: str | None = None):
    """(cfg path, weights path, model, input): the cfg at ``size`` and random calibrated weights."""
    sections = read_cfg(CFGS / f"{name}.cfg") if text is None else parse_cfg_text(text)
    sections[0].options["width"] = sections[0].options["height"] = str(size)
    x = random_images(1, size, size, seed=5)
    torch.manual_seed(0)
    model = calibrate_batchnorm(DarknetModel(sections, source=name), torch.cat([x, random_images(3, size, size)]))
    cfg, weights = tmp_path / f"{name}.cfg", tmp_path / f"{name}.weights"
    cfg.write_text(format_cfg(sections))
    save_darknet_weights(model, weights)
    return cfg, weights, model, x


def _opencv(cfg: Path, weights: Path, x: torch.Tensor, thresh0: bool = True) -> list[np.ndarray]:
    """cv2.dnn straight from the files (``thresh=0`` in the heads so no score is zeroed)."""
    text = cfg.read_text()
    if thresh0:
        sections = parse_cfg_text(text)
        for s in sections:
            if s.type in ("yolo", "region"):
                s.options["thresh"] = "0"
        text = format_cfg(sections)
    net = cv2.dnn.readNetFromDarknet(np.frombuffer(text.encode(), np.uint8),
                                     np.frombuffer(weights.read_bytes(), np.uint8))
    net.setInput(x.numpy())
    names = list(net.getUnconnectedOutLayersNames())
    return [np.asarray(o) for o in net.forward(names)]


def _ours(model: DarknetModel, x: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        return [o[0].numpy() for o in model(x)]


@pytest.mark.parametrize("name, size, rows", [("yolov2-tiny", 96, 3 * 3 * 5), ("yolov2", 64, 2 * 2 * 5)])
def test_yolov2_region_and_reorg_match_opencv(tmp_path, name, size, rows):
    """Region decoding (anchors in grid cells, logistic xy/objectness, softmax classes) and reorg.

    OpenCV's Region layer also runs a per-class NMS at IoU 0.4 that the cfg cannot turn off: it zeroes
    the class scores of suppressed rows. Every other value must match."""
    cfg, weights, model, x = _files(tmp_path, name, size)
    (ours,), (theirs,) = _ours(model, x), _opencv(cfg, weights, x)
    assert ours.shape == theirs.shape == (rows, 85)
    np.testing.assert_allclose(ours[:, :5], theirs[:, :5], rtol=RTOL, atol=ATOL)   # boxes, objectness
    kept = theirs[:, 5:] != 0
    assert kept.sum() > rows  # NMS leaves many scores: the comparison below is not vacuous
    np.testing.assert_allclose(ours[:, 5:][kept], theirs[:, 5:][kept], rtol=RTOL, atol=ATOL)
    # scores: objectness times a softmax over the 80 classes
    np.testing.assert_allclose(ours[:, 5:].sum(1), ours[:, 4], rtol=1e-5)


def test_enet_coco_scale_channels_and_channel_mismatch_shortcuts_match_opencv(tmp_path):
    """EfficientNet-B0 backbone: grouped convs, swish, squeeze-excitation via [scale_channels], dropout,
    shortcuts from earlier layers with other channel counts (from=90 adds 112 channels to 128)."""
    cfg, weights, model, x = _files(tmp_path, "enet-coco", 96)
    assert model.types.count("scale_channels") == 16
    ours, theirs = _ours(model, x), _opencv(cfg, weights, x)
    assert [o.shape for o in ours] == [t.shape for t in theirs] == [(27, 85), (108, 85)]
    for o, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(o, t, rtol=RTOL, atol=ATOL)


def test_region_decoding_follows_the_formula():
    """One cell, one anchor, written out: xy = (sigmoid(t) + cell)/grid, wh = exp(t) * anchor / grid."""
    text = """[net]
width=64
height=32
[convolutional]
filters=8
size=1
activation=linear
[region]
anchors=1.5,2.5
classes=3
num=1
softmax=1
"""
    model = DarknetModel(parse_cfg_text(text)).eval()
    raw = torch.zeros(1, 8, 2, 4)
    t = torch.tensor([0.3, -0.2, 0.5, -0.4, 1.0, 2.0, 0.0, -1.0])
    raw[0, :, 1, 2] = t  # cell y=1, x=2 of a 4x2 grid
    (rows,) = model.decode([raw], (32, 64))
    row = rows[0, 1 * 4 + 2]
    sig = torch.sigmoid
    obj = sig(t[4])
    expected = [(sig(t[0]) + 2) / 4, (sig(t[1]) + 1) / 2, torch.exp(t[2]) * 1.5 / 4, torch.exp(t[3]) * 2.5 / 2, obj,
                *(obj * torch.softmax(t[5:], 0))]
    torch.testing.assert_close(row, torch.stack(expected))


def _darknet_shortcut(out: np.ndarray, add: np.ndarray) -> np.ndarray:
    """Darknet's shortcut_cpu, transcribed loop for loop (add: the earlier layer, out: the previous one)."""
    c1, h1, w1 = add.shape
    c2, h2, w2 = out.shape
    stride, sample = max(w1 // w2, 1), max(w2 // w1, 1)
    out = out.copy()
    for k in range(min(c1, c2)):
        for j in range(min(h1, h2)):
            for i in range(min(w1, w2)):
                out[k, j * sample, i * sample] += add[k, j * stride, i * stride]
    return out


@pytest.mark.parametrize("case", ["larger-earlier", "smaller-earlier"])
def test_strided_shortcut_follows_darknet(case):
    """Shortcuts between outputs of different sizes (Darknet's ResNet cfgs): the earlier output is
    sampled every k-th pixel (larger) or added at every k-th pixel (smaller), over the common channels."""
    from cnnlab.darknet.layers import ShortcutLayer

    g = torch.Generator().manual_seed(0)
    if case == "larger-earlier":
        add, out = torch.randn(6, 8, 8, generator=g), torch.randn(4, 4, 4, generator=g)
    else:
        add, out = torch.randn(3, 2, 2, generator=g), torch.randn(5, 6, 6, generator=g)
    got = ShortcutLayer([0])(out[None], [add[None]])[0]
    np.testing.assert_allclose(got.numpy(), _darknet_shortcut(out.numpy(), add.numpy()), rtol=1e-6)


def test_resnet50_builds_and_opencv_refuses_its_strided_shortcuts_clearly(tmp_path):
    """resnet50.cfg's downsampling blocks add a 2x larger map. cnnlab builds and runs it; OpenCV's Eltwise
    asserts equal shapes, so the opencv backend says so in one line instead of failing at the first frame."""
    from cnnlab.detect.backends import check_opencv_darknet

    sections = read_cfg(CFGS / "resnet50.cfg")
    sections[0].options["width"] = sections[0].options["height"] = "64"
    model = DarknetModel(sections).eval()
    strided = [i for i, t in enumerate(model.types) if t == "shortcut"
               and model.shapes[model.layers[i].sources[0]].w != model.shapes[i].w]
    assert len(strided) == 3  # one per downsampling stage
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    with pytest.raises(UserError, match=r"OpenCV cannot add outputs of different sizes \(16x16 from layer \d+ "
                                        r"to 8x8; Darknet's strided shortcut\); use --backend torch"):
        check_opencv_darknet(model.sections, model)


SAM = """[net]
width=32
height=32
[convolutional]
batch_normalize=1
filters=8
size=3
pad=1
activation=mish
[convolutional]
filters=8
size=1
activation=logistic
[sam]
from=-2
[convolutional]
filters=21
size=1
activation=linear
[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3
"""


def test_sam_matches_opencv(tmp_path):
    cfg, weights, model, x = _files(tmp_path, "sam", 32, SAM)
    ours, theirs = _ours(model, x), _opencv(cfg, weights, x)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=RTOL, atol=ATOL)


def test_yolov2_weights_count_and_detector_backends_agree(tmp_path):
    """A [region] cfg is a detector for every backend: torch, opencv and onnxruntime (exported in memory,
    decoding included) find the same boxes on one image."""
    from cnnlab.detect import Detector
    from cnnlab.detect.synthetic import synthetic_scene

    cfg, weights, model, _ = _files(tmp_path, "yolov2-tiny", 96)
    assert weights.stat().st_size == 20 + 4 * expected_count(model)
    img = synthetic_scene(120, 96)
    found = {b: Detector(cfg=cfg, weights=weights, backend=b, imgsz=96, conf=0.05, iou=0.4)(img)
             for b in ("torch", "opencv", "onnxruntime")}
    assert len(found["torch"].boxes) > 0
    for b in ("opencv", "onnxruntime"):
        assert found[b].class_ids.tolist() == found["torch"].class_ids.tolist(), b
        np.testing.assert_allclose(found[b].boxes, found["torch"].boxes, atol=0.05)
        np.testing.assert_allclose(found[b].scores, found["torch"].scores, rtol=1e-3, atol=1e-4)


def test_region_cfgs_are_refused_for_training_in_one_line(tmp_path):
    from cnnlab.detect.train.model import set_classes

    with pytest.raises(UserError, match=r"training needs \[yolo\] output layers; \[region\] \(YOLOv2\) cfgs run "
                                        "for inference only"):
        set_classes(read_cfg(CFGS / "yolov2-tiny.cfg"), 3)


def test_share_index_is_one_clear_line_not_a_weights_miscount(tmp_path):
    text = """[net]
width=16
height=16
[convolutional]
filters=4
size=3
pad=1
activation=leaky
[convolutional]
filters=4
size=3
pad=1
share_index=0
activation=leaky
"""
    with pytest.raises(UserError, match=r"line 13 \[convolutional\]: share_index=0 \(a convolution reusing another "
                                        r"layer's weights.*\) is not supported") as e:
        DarknetModel(parse_cfg_text(text, "s.cfg"), source="s.cfg")
    assert not isinstance(e.value, UnsupportedCfg)  # no fallback to OpenCV, which misreads such files
    assert "\n" not in str(e.value)


DILATED = """[net]
width=32
height=32
[convolutional]
filters=8
size=3
pad=1
dilation=2
activation=leaky
[convolutional]
filters=21
size=1
activation=linear
[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3
"""


def test_opencv_ignores_dilation_and_the_backend_warns_instead_of_claiming_parity(tmp_path):
    from cnnlab.detect import Detector

    cfg, weights, model, x = _files(tmp_path, "dilated", 32, DILATED)
    ours, theirs = _ours(model, x), _opencv(cfg, weights, x)
    assert np.abs(ours[0] - theirs[0]).max() > 1e-2  # OpenCV really runs a different network
    with pytest.warns(UserWarning, match=r"OpenCV's Darknet importer ignores dilation=2; the opencv backend's "
                                         r"outputs differ .* \(no parity\)"):
        Detector(cfg=cfg, weights=weights, backend="opencv", imgsz=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Detector(cfg=cfg, weights=weights, backend="torch", imgsz=32)


ODD_POOL = """[net]
width=32
height=32
[convolutional]
filters=8
size=3
pad=1
activation=leaky
[maxpool]
size=2
stride=2
{extra}
[convolutional]
filters=21
size=1
activation=linear
[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3
"""


def test_opencv_backend_runs_a_cfg_cnnlab_does_not_build(tmp_path):
    """A cfg option cnnlab refuses (here maxpool stride_x != stride_y, which OpenCV reads as plain
    ``stride``) must not stop the opencv backend: it warns and reads the files itself; the torch backend
    keeps the one-line error."""
    from cnnlab.detect import Detector
    from cnnlab.detect.synthetic import synthetic_scene

    _, weights, _, _ = _files(tmp_path, "plain", 32, ODD_POOL.format(extra=""))
    cfg = tmp_path / "odd.cfg"
    cfg.write_text(ODD_POOL.format(extra="stride_x=2\nstride_y=1"))
    with pytest.raises(UnsupportedCfg, match="different stride_x and stride_y are not supported"):
        Detector(cfg=cfg, weights=weights, backend="torch", imgsz=32)
    with pytest.warns(UserWarning, match="cnnlab cannot build this cfg, so OpenCV runs it as it reads it"):
        det = Detector(cfg=cfg, weights=weights, backend="opencv", imgsz=32, conf=0.0)
    assert det.source.model is None and det.names == ["0", "1"]
    found = det(synthetic_scene(40, 32))
    assert len(found.boxes) > 0 and found.scores.max() <= 1.0


def test_region_checkpoint_weights_round_trip(tmp_path):
    """The .weights of a [region] cfg hold exactly its conv/BN tensors (nothing for reorg/region)."""
    cfg, weights, model, x = _files(tmp_path, "yolov2-tiny", 96)
    again = DarknetModel(read_cfg(cfg)).eval()
    load_darknet_weights(again, weights)
    np.testing.assert_array_equal(_ours(again, x)[0], _ours(model, x)[0])
