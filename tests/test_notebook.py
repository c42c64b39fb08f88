"""Notebook and Python ergonomics: short reprs and rich/HTML displays of summaries, metrics, runs and
detections; Detections.plot/save/show; Detector.stream as a generator that releases its capture."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import rich.table

from cnnlab.detect.pipeline import stream_results
from cnnlab.detect.types import Detections
from cnnlab.notebook import Metrics
from test_stream_units import FakeDetector, FakeLiveSource, write_video

COCO = [f"class{i}" for i in range(80)]


def test_summary_displays_as_a_table_not_a_dataclass_dump():
    import cnnlab

    s = cnnlab.summary("lenet5")
    assert repr(s).startswith("SummaryResult(lenet5, input [1, 28, 28], 61,706 params") and len(repr(s)) < 160
    html = s._repr_html_()
    assert html.count("<tr>") == len(s.rows) + 2 and "61,706" in html and "LayerRow" not in html
    assert isinstance(s.__rich__(), rich.table.Table)


def test_metrics_are_a_dict_with_a_short_repr_and_displays():
    m = Metrics({"accuracy": 0.98125, "loss": 0.061, "source": "<run>",
                 "per_class_accuracy": {str(i): 0.9 for i in range(10)},
                 "confusion_matrix": [[1] * 10 for _ in range(10)]})
    assert m["accuracy"] == 0.98125 and json.loads(json.dumps(m)) == dict(m)
    text = repr(m)
    assert "accuracy=0.9812" in text and "confusion_matrix: [10x10]" in text and len(text) < 200
    html = m._repr_html_()
    assert "0.9812" in html and "&lt;run&gt;" in html and "per_class_accuracy: 10 entries" in html
    assert isinstance(m.__rich__(), rich.table.Table)


def _dets(n=3, image=True):
    img = np.full((120, 160, 3), 90, np.uint8) if image else None
    boxes = [[10 + 20 * i, 10, 40 + 20 * i, 60] for i in range(n)]
    return Detections(boxes, np.linspace(0.9, 0.5, n), [0, 2, 0][:n] + [1] * max(0, n - 3), COCO, image=img)


def test_detections_repr_is_short_and_names_only_what_was_found():
    text = repr(_dets(3))
    assert text == "Detections(3: class0 0.90, class2 0.70, class0 0.50; 80 class names, image 160x120)"
    many = repr(_dets(40))
    assert "+35 more" in many and len(many) < 160 and "class79" not in many
    assert repr(Detections.empty(COCO)) == "Detections(0; 80 class names)"
    assert _dets(3).counts() == {"class0": 2, "class2": 1}


def test_detections_plot_save_show(tmp_path, monkeypatch):
    d = _dets(3)
    drawn = d.plot()
    assert drawn.shape == d.image.shape and (drawn != d.image).any() and (d.image == 90).all()
    assert (d.plot(conf=0.95) == d.image).all()                     # nothing above 0.95
    path = d.save(tmp_path / "dets.png")
    import cv2

    assert (cv2.imread(str(path)) == drawn).all()
    shown = []
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(plt.gcf()))
    d.show()
    assert shown and shown[0].axes[0].images[0].get_array().shape == (120, 160, 3)
    assert "data:image/jpeg;base64," in d._repr_html_() and "3 detections: 2 class0, 1 class2" in d._repr_html_()
    from cnnlab.errors import UserError

    with pytest.raises(UserError, match="no image to draw on"):
        _dets(2, image=False).plot()


def test_stream_yields_frame_by_frame_from_a_file(tmp_path):
    video = write_video(tmp_path / "in.avi", 8)
    gen = stream_results(FakeDetector(), video)
    results = list(gen)
    assert [r.index for r in results] == list(range(8))
    assert all(len(r.detections) == 1 and r.annotated is not None for r in results)
    assert results[2].detections.image is results[2].image and results[2].stats["total"] == 8
    assert not [t for t in threading.enumerate() if t.name == "detector-stream"]


def test_stream_closes_the_capture_when_the_loop_breaks():
    source = FakeLiveSource(fps=200)
    closed = []
    source.close = lambda: closed.append(True)
    before = threading.active_count()
    det = FakeDetector()
    gen = stream_results(det, source)
    for r in gen:
        if r.index == 4:
            break
    t = time.perf_counter()
    gen.close()                               # what a for loop's end / garbage collection does
    assert time.perf_counter() - t < 5 and closed == [True]
    assert det.calls <= 4 + 2 + 2             # it stopped: at most the frames already in flight
    time.sleep(0.2)
    assert threading.active_count() <= before


def test_stream_raises_the_pipeline_error():
    class Broken(FakeDetector):
        def infer(self, blob):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        list(stream_results(Broken(), FakeLiveSource(fps=200, n=5)))


@pytest.mark.realdata
def test_detector_stream_on_a_real_video(shared_data):
    import cnnlab

    yolo = shared_data("yolo")
    video = shared_data("video/vtest_480x360_h264.avi")
    det = cnnlab.Detector(cfg=yolo / "yolo-fastest-1.1-xl.cfg", weights=yolo / "yolo-fastest-1.1-xl.weights",
                          names=yolo / "coco.names", imgsz=320)
    results = list(det.stream(video, max_frames=3))
    assert len(results) == 3 and results[0].image.shape == (360, 480, 3)
    people = [r.detections.counts().get("person", 0) for r in results]
    assert min(people) >= 1                                     # vtest is a pedestrian scene
    assert "person" in repr(results[0].detections) and len(repr(results[0].detections)) < 200


@pytest.fixture
def digits_run(tmp_path):
    import torch

    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.models import create_model
    from cnnlab.runs import new_run_dir, write_run_config

    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    run = new_run_dir(tmp_path / "runs", "classify", "exp")
    write_run_config(run, {"model": "lenet5", "dataset": "digits", "seed": 0})
    save_checkpoint(run / "weights" / "best.pt", {
        "model_spec": model.cnnlab_spec, "model": model.state_dict(), "ema": None, "epoch": 1,
        "classes": [str(i) for i in range(10)], "config": {}, "metrics": {},
        "preprocess": {"mean": [0.5], "std": [0.5], "img_size": 8, "in_chans": 1},
    })
    return run


def test_loaded_model_predicts_evaluates_and_exports(digits_run, tmp_path):
    import cnnlab

    m = cnnlab.load(digits_run)
    assert repr(m).startswith("LoadedModel(lenet5, 10 classes, input 1x8x8, runtime torch") and len(repr(m)) < 200
    assert "loaded model" in m._repr_html_()
    metrics = m.evaluate(batch=128)
    assert isinstance(metrics, Metrics) and metrics["dataset"] == "digits" and metrics["split"] == "test"
    assert 0 <= metrics["accuracy"] <= 1 and sum(metrics["support"].values()) == 360
    assert metrics["source"] == m.source and "confusion_matrix: [10x10]" in repr(metrics)
    top = m.predict([np.zeros((8, 8, 1), np.uint8)], topk=2)
    assert len(top[0]) == 2
    out = m.export("onnx", tmp_path / "m.onnx", check_samples=0)
    assert (tmp_path / "m.onnx").is_file() and out is not None
    loaded = cnnlab.load(tmp_path / "m.onnx")
    with pytest.raises(cnnlab.errors.UserError, match="only a PyTorch model"):
        loaded.export("onnx", tmp_path / "again.onnx")


def test_train_result_displays_its_headline_figures(tmp_path):
    from pathlib import Path

    from cnnlab.tasks.classify.run import TrainResult

    r = TrainResult(Path(tmp_path), {"epochs": 3, "best_epoch": 2, "test_accuracy": 0.91234, "x": [1, 2]}, None)
    assert repr(r) == f"TrainResult({tmp_path}, epochs=3, best_epoch=2, test_accuracy=0.9123)"
    assert "0.9123" in r._repr_html_() and isinstance(r.__rich__(), rich.table.Table)


def test_detector_results_of_a_folder_do_not_keep_the_frames(tmp_path):
    """det(img) keeps its image for .plot(); a whole folder's results must not hold every image."""
    import cv2

    from cnnlab.detect.predict import detect_source

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((40, 60, 3), 50 * i, np.uint8))

    class Stub:             # what detect_source reads of a Detector
        names, imgsz, conf, iou, letterbox, backend_name = ["thing"], (64, 64), 0.25, 0.45, True, "stub"

        class source:
            @staticmethod
            def describe():
                return "stub"

        class backend:
            device = "cpu"

        def __call__(self, img):
            return Detections([[1, 1, 20, 20]], [0.9], [0], ["thing"], {"inference": 1.0}, image=img)

    run = detect_source(tmp_path, Stub(), save=False)
    assert len(run.results) == 3 and all(r.detections.image is None for r in run.results)
