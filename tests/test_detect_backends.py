"""One detector, three backends: OpenCV parity, ONNX export, output formats, NMS, names, registry."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from _cfgs import v4_tiny_cfg
from cnnlab.detect import backends as backends_mod
from cnnlab.detect.detector import Detector
from cnnlab.detect.processing import (
    ImageMeta,
    candidates,
    guess_format,
    map_boxes_back,
    nms,
    preprocess_image,
)
from cnnlab.detect.synthetic import random_yolo_files, synthetic_scene
from cnnlab.errors import UserError

IMGSZ = 160


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A YOLOv3-tiny-shaped network (half widths, 3 classes, 160 px) with random weights, Darknet files."""
    folder = tmp_path_factory.mktemp("tiny")
    cfg, weights, names = random_yolo_files(folder, "yolov3-tiny", num_classes=3, img_size=IMGSZ,
                                            width_mult=0.5, seed=1)
    return cfg, weights, names


@pytest.fixture(scope="module")
def scene():
    return synthetic_scene(240, 320, seed=3)


def _same_detections(a, b, box_tol=1e-3, score_tol=1e-4):
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.scores, b.scores, atol=score_tol)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=box_tol)


def test_parity_with_opencv_readnetfromdarknet(tiny, scene):
    """cnnlab's torch backend vs cv2.dnn.readNetFromDarknet on the same Darknet files and blob."""
    cfg, weights, names = tiny
    det = Detector(cfg=cfg, weights=weights, names=names, backend="torch", imgsz=IMGSZ, conf=0.35)
    blob, meta = det.preprocess(scene)
    ours = det.infer(blob)

    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))   # OpenCV straight from the files
    net.setInput(blob)
    theirs = net.forward(net.getUnconnectedOutLayersNames())
    assert [o.shape for o in ours] == [t.shape for t in theirs] == [(75, 8), (300, 8)]
    for o, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(o[:, :5], t[:, :5], atol=1e-4)
        # OpenCV zeroes class scores <= its [yolo] thresh (0.2 by default); compare the rest
        oc, tc = o[:, 5:], t[:, 5:]
        above, below = oc > 0.2 + 1e-4, oc < 0.2 - 1e-4
        np.testing.assert_allclose(oc[above], tc[above], atol=1e-4)
        assert (tc[below] == 0).all() and above.sum() > 10
    # final detections, ours vs the same post-processing on OpenCV's raw outputs
    _same_detections(det.postprocess(ours, meta), det.postprocess(list(theirs), meta))
    # and the opencv backend of the Detector (which passes thresh=0 to OpenCV) gives the same boxes
    cvdet = Detector(cfg=cfg, weights=weights, names=names, backend="opencv", imgsz=IMGSZ, conf=0.35)
    raw = cvdet.infer(blob)
    for o, t in zip(ours, raw, strict=True):
        np.testing.assert_allclose(o, t, atol=1e-4)
    _same_detections(det(scene), cvdet(scene))


def test_onnxruntime_backend_and_exported_onnx_agree(tiny, scene, tmp_path):
    from cnnlab.detect.export import export_detector

    cfg, weights, names = tiny
    ref = Detector(cfg=cfg, weights=weights, names=names, backend="torch", imgsz=IMGSZ, conf=0.35)(scene)
    ort_det = Detector(cfg=cfg, weights=weights, names=names, backend="onnxruntime", imgsz=IMGSZ, conf=0.35)
    _same_detections(ref, ort_det(scene))

    result = export_detector(cfg, weights, output=tmp_path / "m.onnx", names=["a", "b", "c"], letterbox=False)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-5 * result.max_abs_output
    assert result.output_shape == (1, 375, 8)
    import onnx

    proto = onnx.load(str(result.path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["cnnlab_format"] == "yolov5" and json.loads(meta["names"]) == ["a", "b", "c"]
    assert proto.opset_import[0].version >= 17
    assert Detector(model=result.path, backend="onnxruntime", letterbox=None).letterbox is False  # metadata
    for backend in ("onnxruntime", "opencv"):
        d = Detector(model=result.path, backend=backend, conf=0.35, letterbox=True)
        assert d.names == ["a", "b", "c"] and d.imgsz == (IMGSZ, IMGSZ)
        _same_detections(ref, d(scene))


def test_checkpoint_and_run_folder_sources(tiny, scene, tmp_path):
    from cnnlab.darknet.model import load_darknet
    from cnnlab.detect.checkpoint import save_detector_checkpoint

    cfg, weights, names = tiny
    ref = Detector(cfg=cfg, weights=weights, names=names, imgsz=IMGSZ, conf=0.35)(scene)
    model = load_darknet(cfg, weights)
    save_detector_checkpoint(tmp_path / "run" / "weights" / "best.pt", model, names=["p", "q", "r"],
                             imgsz=(IMGSZ, IMGSZ))
    for backend in ("torch", "opencv"):
        d = Detector(model=tmp_path / "run", backend=backend, imgsz=None, conf=0.35)
        assert d.names == ["p", "q", "r"]
        _same_detections(ref, d(scene))
    # a plain folder with a cfg + weights pair (and its .names) works too
    d = Detector(model=cfg.parent, imgsz=IMGSZ, conf=0.35)
    assert d.names == ["class0", "class1", "class2"]
    _same_detections(ref, d(scene))


def test_letterbox_and_mapping_back():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 90:110] = 255
    blob, meta = preprocess_image(img, 64, letterbox=True)
    assert blob.shape == (1, 3, 64, 64) and blob.dtype == np.float32
    assert meta.scale == (0.32, 0.32) and meta.pad == (0.0, 16.0)
    assert blob[0, :, 0, 0] == pytest.approx([114 / 255] * 3)              # grey border on top
    box_in_input = np.array([[28.8, 28.8, 35.2, 35.2]], np.float32)     # the white square, input pixels
    np.testing.assert_allclose(map_boxes_back(box_in_input, meta), [[90, 40, 110, 60]], atol=1e-4)
    blob2, meta2 = preprocess_image(img, 64, letterbox=False)
    assert meta2.scale == (0.32, 0.64) and meta2.pad == (0.0, 0.0)
    img2 = np.zeros((10, 10, 3), np.uint8)
    img2[..., 2] = 255  # BGR red -> RGB channel 0
    b, _ = preprocess_image(img2, 32, letterbox=False)
    assert b[0, 0].mean() == pytest.approx(1.0) and b[0, 2].mean() == pytest.approx(0.0)


def test_yolov5_and_yolov8_output_layouts_decode_the_same_boxes():
    meta = ImageMeta((64, 64), (64, 64), (1.0, 1.0), (0.0, 0.0))
    # two predictions, 3 classes: (cx, cy, w, h) in pixels
    xywh = np.array([[20, 20, 10, 10], [40, 30, 20, 10]], np.float32)
    obj = np.array([[0.9], [0.5]], np.float32)
    cls = np.array([[0.1, 0.8, 0.1], [0.9, 0.0, 0.2]], np.float32)
    v5 = np.concatenate([xywh, obj, cls], axis=1)[None]                     # (1, N, 5+C)
    v8 = np.concatenate([xywh, obj * cls], axis=1).T[None]                   # (1, 4+C, N)
    dk = [np.concatenate([xywh / 64, obj, obj * cls], axis=1)]               # darknet rows
    assert guess_format(v5.shape, 3) == "yolov5" and guess_format(v8.shape, 3) == "yolov8"
    assert guess_format((1, 84, 8400)) == "yolov8" and guess_format((1, 25200, 85)) == "yolov5"
    results = [candidates(r, f, meta, 0.3) for r, f in (([v5], "yolov5"), ([v8], "yolov8"), (dk, "darknet"))]
    for boxes, scores, ids in results:
        np.testing.assert_allclose(boxes, [[15, 15, 25, 25], [30, 25, 50, 35]], atol=1e-5)
        np.testing.assert_allclose(scores, [0.72, 0.45], atol=1e-6)
        assert ids.tolist() == [1, 0]
    with pytest.raises(UserError, match="cannot decode"):
        guess_format((8400, 84))


def test_nms_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    ids = np.array([0, 0, 1, 0], np.int64)
    assert nms(boxes, scores, ids, 0.45).tolist() == [0, 2, 3]
    assert nms(boxes, scores, ids, 0.45, max_det=2).tolist() == [0, 2]
    assert nms(boxes[:0], scores[:0], ids[:0], 0.45).tolist() == []


def test_names_from_names_file_and_yaml(tiny, tmp_path):
    from cnnlab.detect.names import load_names

    (tmp_path / "a.names").write_text("cat\ndog\n\nbird\n")
    (tmp_path / "b.yaml").write_text("- cat\n- dog\n- bird\n")
    (tmp_path / "c.yaml").write_text("names:\n  0: cat\n  2: bird\n  1: dog\n")
    for f in ("a.names", "b.yaml", "c.yaml"):
        assert load_names(tmp_path / f) == ["cat", "dog", "bird"]
    cfg, weights, _ = tiny
    assert Detector(cfg=cfg, weights=weights, names=tmp_path / "c.yaml", imgsz=IMGSZ).names == ["cat", "dog", "bird"]
    (tmp_path / "two.names").write_text("cat\ndog\n")
    with pytest.raises(UserError, match="2 class names given but the model predicts 3 classes"):
        Detector(cfg=cfg, weights=weights, names=tmp_path / "two.names", imgsz=IMGSZ)


def test_one_names_parser_refuses_id_gaps(tmp_path):
    """Files, data.yaml, ONNX metadata and Python values go through one parser: {0: a, 2: c} is refused."""
    from cnnlab.detect.data import load_detection_data
    from cnnlab.detect.names import parse_names

    assert parse_names(["a", "b"]) == parse_names({1: "b", 0: "a"}) == parse_names({"names": ["a", "b"]})
    assert parse_names({"0": "a", "1": "b"}) == ["a", "b"]
    for bad, text in (({0: "a", 2: "c"}, "without gaps (missing 1)"), ({1: "a"}, "missing 0"),
                      ({-1: "a", 0: "b"}, "without gaps"), ({"x": "a"}, "must be integers"),
                      ([], "no class names"), ("not-a-file.names", "not found")):
        with pytest.raises(UserError, match=text.replace("(", r"\(").replace(")", r"\)")) as e:
            parse_names(bad)
        assert "\n" not in str(e.value)
    (tmp_path / "gap.yaml").write_text("names:\n  0: a\n  2: c\n")
    with pytest.raises(UserError, match="without gaps"):
        parse_names(tmp_path / "gap.yaml")
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "data.yaml").write_text(f"path: {tmp_path}\nval: images\nnames:\n  0: a\n  2: c\n")
    with pytest.raises(UserError, match="data.yaml: names: class ids must be 0..1 without gaps"):
        load_detection_data(tmp_path / "data.yaml")


def test_image_size_is_one_type_from_cli_to_backend(tiny, scene):
    from cnnlab.detect.types import ImageSize

    assert ImageSize.parse("320") == ImageSize.parse(320) == (320, 320)
    size = ImageSize.parse("416x320")
    assert size == ImageSize.parse((416, 320)) == ImageSize.parse(size) and str(size) == "416x320"
    assert (size.width, size.height, size.hw) == (416, 320, (320, 416))
    for bad in ("100", "32x33", "abc", "1x2x3", True, 0):
        with pytest.raises(UserError, match="imgsz must be"):
            ImageSize.parse(bad)
    cfg, weights, names = tiny
    for backend in ("torch", "onnxruntime"):
        d = Detector(cfg=cfg, weights=weights, names=names, imgsz="224x160", backend=backend)
        assert d.imgsz == ImageSize(224, 160)
        blob, meta = d.preprocess(scene)
        assert blob.shape == (1, 3, 160, 224) and meta.input_hw == (160, 224)
        shapes = [o.shape for o in d.infer(blob)]      # 224x160 input: 7x5 and 14x10 grids, 3 anchors each
        assert shapes == ([(105, 8), (420, 8)] if backend == "torch" else [(1, 525, 8)])


def test_backend_registry_one_entry_adds_a_backend(tiny, scene, monkeypatch):
    cfg, weights, names = tiny

    @backends_mod.register_backend("halftorch")
    class HalfTorch(backends_mod.TorchBackend):
        """Test backend: torch in bfloat16 (a new backend is one registered class)."""

        def infer(self, blob):
            with torch.inference_mode():
                outs = self.model.to(torch.bfloat16)(torch.from_numpy(blob).to(torch.bfloat16))
            return [o[0].float().numpy() for o in outs]

    try:
        assert "halftorch" in backends_mod.list_backends()
        d = Detector(cfg=cfg, weights=weights, names=names, backend="halftorch", imgsz=IMGSZ, conf=0.35)
        found = d(scene)
        assert len(found) > 0 and set(found.timing) == {"preprocess", "inference", "postprocess"}
    finally:
        backends_mod._BACKENDS.pop("halftorch", None)
    with pytest.raises(UserError, match="unknown backend 'tensorrt' \\(available: torch, opencv, onnxruntime"):
        Detector(cfg=cfg, weights=weights, backend="tensorrt", imgsz=IMGSZ)


def test_opencv5_refuses_darknet_files_clearly(tiny, monkeypatch):
    cfg, weights, names = tiny
    monkeypatch.setattr(cv2, "__version__", "5.0.0")
    with pytest.raises(UserError, match="OpenCV 5.0.0 has no Darknet importer .* torch or onnxruntime"):
        Detector(cfg=cfg, weights=weights, backend="opencv", imgsz=IMGSZ)


def test_bad_arguments_are_user_errors(tiny, tmp_path):
    cfg, weights, _ = tiny
    with pytest.raises(UserError, match="no model given"):
        Detector()
    with pytest.raises(UserError, match="needs both --cfg and --weights"):
        Detector(cfg=cfg)
    with pytest.raises(UserError, match="multiple of 32"):
        Detector(cfg=cfg, weights=weights, imgsz=100)
    with pytest.raises(UserError, match="conf must be in"):
        Detector(cfg=cfg, weights=weights, conf=1.5)
    with pytest.raises(UserError, match="model not found"):
        Detector(model=tmp_path / "missing.onnx")
    (tmp_path / "m.onnx").write_bytes(b"not really onnx")
    with pytest.raises(UserError, match="torch backend needs a Darknet cfg"):
        Detector(model=tmp_path / "m.onnx", backend="torch")
    with pytest.raises(UserError, match="not a readable ONNX model"):   # auto: onnxruntime for an .onnx
        Detector(model=tmp_path / "m.onnx")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        Detector(model=tmp_path / "m.onnx", backend="onnxruntime")


@pytest.mark.realdata
def test_yolo_fastest_backends_agree_on_a_coco128_image(shared_data):
    yolo = shared_data("yolo")
    img = cv2.imread(str(shared_data("coco128/images/train2017/000000000009.jpg")))
    found = {}
    for backend in ("torch", "opencv", "onnxruntime"):
        d = Detector(cfg=yolo / "yolo-fastest-1.1.cfg", weights=yolo / "yolo-fastest-1.1.weights",
                     names=yolo / "coco.names", backend=backend, imgsz=320, conf=0.25)
        found[backend] = d(img)
    ref = found["torch"]
    assert len(ref) >= 2 and "bowl" in {ref.name_of(c) for c in ref.class_ids}
    for backend in ("opencv", "onnxruntime"):
        _same_detections(ref, found[backend], box_tol=0.05, score_tol=1e-3)


class _FixedYolov8(torch.nn.Module):
    """Stands in for a YOLOv8 ONNX export: (1, 4+C, N) with two fixed predictions, 2 classes."""

    def forward(self, x):
        pred = torch.zeros(1, 6, 10)                      # 10 predictions, 8 of them empty
        pred[0, :, :2] = torch.tensor([[16.0, 40.0], [16.0, 40.0], [8.0, 16.0], [8.0, 8.0],  # cx, cy, w, h
                                       [0.9, 0.1], [0.05, 0.6]])                             # class scores
        return pred + 0 * x.mean()


def test_foreign_yolov8_onnx_without_metadata(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_FixedYolov8(), (torch.zeros(1, 3, 64, 64),), str(tmp_path / "v8.onnx"), dynamo=False,
                          opset_version=17, input_names=["images"], output_names=["output0"])
    img = np.zeros((128, 256, 3), np.uint8)  # letterboxed into 64x64: scale 0.25, 16 px border top/bottom
    for backend in ("onnxruntime", "opencv"):
        d = Detector(model=tmp_path / "v8.onnx", backend=backend, conf=0.25)
        assert d.imgsz == (64, 64) and d.names == ["0", "1"]
        found = d(img)
        assert d.output_format == "yolov8"
        assert found.class_ids.tolist() == [0, 1]
        np.testing.assert_allclose(found.scores, [0.9, 0.6], atol=1e-6)
        np.testing.assert_allclose(found.boxes, [[48, 0, 80, 16], [128, 80, 192, 112]], atol=1e-3)


def test_opencv_reads_the_yolov3_cfg_cnnlab_writes(tmp_path):
    """The native YOLOv3 builder's cfg + weights (narrow, 64 px) run in OpenCV with the same outputs."""
    cfg, weights, names = random_yolo_files(tmp_path, "yolov3", num_classes=2, img_size=64, width_mult=0.125)
    blob, _ = preprocess_image(synthetic_scene(64, 64), 64, letterbox=False)
    ours = Detector(cfg=cfg, weights=weights, imgsz=64).infer(blob)
    theirs = Detector(cfg=cfg, weights=weights, imgsz=64, backend="opencv").infer(blob)
    assert [o.shape for o in ours] == [t.shape for t in theirs] == [(12, 7), (48, 7), (192, 7)]
    for o, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(o, t, rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("new_coords, head_act", [(0, "linear"), (1, "logistic")])
def test_yolov4_style_layers_match_opencv(tmp_path, new_coords, head_act):
    """mish, swish, route groups/group_id, scale_x_y and new_coords agree with cv2.dnn."""
    from cnnlab.darknet.cfg import parse_cfg_text
    from cnnlab.darknet.model import model_from_cfg
    from cnnlab.darknet.weights import save_darknet_weights
    from cnnlab.detect.synthetic import calibrate_batchnorm, random_images

    text = v4_tiny_cfg(head_act, new_coords)
    model = calibrate_batchnorm(model_from_cfg(parse_cfg_text(text)), random_images(2, 64, 64))
    (tmp_path / "v4.cfg").write_text(text)
    save_darknet_weights(model, tmp_path / "v4.weights")
    x = random_images(1, 64, 64, seed=5)
    with torch.no_grad():
        ours = model(x)[0][0].numpy()
    net = cv2.dnn.readNetFromDarknet(str(tmp_path / "v4.cfg"), str(tmp_path / "v4.weights"))
    net.setInput(x.numpy())
    theirs = net.forward(net.getUnconnectedOutLayersNames())[0]
    assert ours.shape == theirs.shape == (16 * 16 * 3, 7)
    np.testing.assert_allclose(ours[:, :5], theirs[:, :5], atol=1e-4)
