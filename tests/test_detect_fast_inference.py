"""Fast inference on every backend: the torch backend runs a fused copy (outputs equal the unfused
model's, the user's model untouched), picks threads/channels_last by a probe; ``auto`` picks the fastest
installed backend for the model and says why; every inference command prints that one backend line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _cfgs import TINY_CFG
from cnnlab.darknet.model import load_darknet
from cnnlab.detect import backends as B
from cnnlab.detect.detector import Detector
from cnnlab.detect.synthetic import random_yolo_files, synthetic_scene

IMGSZ = 96


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return random_yolo_files(tmp_path_factory.mktemp("fast"), "yolov3-tiny", num_classes=3, img_size=IMGSZ,
                             width_mult=0.25, seed=4)


def _randomise_bn(model) -> None:
    """Batch norms with non-trivial statistics, so that folding them is really tested."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def test_torch_backend_fused_copy_equals_unfused_model_and_leaves_it(files):
    cfg, weights, names = files
    model = load_darknet(cfg, weights)
    _randomise_bn(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert n_bn > 5
    det = Detector(model=model, names=names, backend="torch", imgsz=IMGSZ, conf=0.05)
    # the user's model is as it was: batch norms there, same tensors, not marked fused
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == n_bn
    assert not getattr(model, "fused", False)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # the backend's copy has no batch norm left
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in det.backend.model.modules())
    scene = synthetic_scene(120, 160, seed=2)
    blob, meta = det.preprocess(scene)
    with torch.no_grad():
        ref = [o[0].numpy() for o in model(torch.from_numpy(blob))]
    ours = det.infer(blob)
    assert [o.shape for o in ours] == [r.shape for r in ref]
    diff = max(float(np.abs(o - r).max()) for o, r in zip(ours, ref, strict=True))
    assert diff < 1e-4, diff
    a, b = det.postprocess(ours, meta), det.postprocess(ref, meta)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)


def test_fused_copy_of_a_plain_module_uses_fx_fusion():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    _randomise_bn(net)
    fused = B.fused_copy(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert isinstance(net[1], torch.nn.BatchNorm2d)            # the original keeps its batch norm
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        assert float((fused(x) - net(x)).abs().max()) < 1e-5


def test_cpu_probe_picks_threads_and_layout(files):
    cfg, weights, _ = files
    model = B.fused_copy(load_darknet(cfg, weights))
    torch.set_num_threads(1)
    n, cl, timings = B.tune_cpu(model, (IMGSZ, IMGSZ))
    assert torch.get_num_threads() == 1                     # the process's count is put back
    phys = B.physical_cores()
    assert set(timings) == {(t, f) for t in sorted({1, phys}) for f in (False, True)}
    assert (n, cl) == min(timings, key=lambda k: (timings[k], k))     # the fastest candidate wins
    assert all(v > 0 for v in timings.values())
    # a given thread count is kept (only the layout is probed)
    n, _, timings = B.tune_cpu(model, (IMGSZ, IMGSZ), threads=1)
    assert n == 1 and {k[0] for k in timings} == {1}
    # a model too slow to probe: one thread per physical core, channels_last, nothing timed
    assert B.tune_cpu(model, (IMGSZ, IMGSZ), budget_s=1e-9) == (phys, True, {})


def test_torch_backend_line_names_threads_and_layout(files):
    cfg, weights, names = files
    before = torch.get_num_threads()
    det = Detector(cfg=cfg, weights=weights, names=names, backend="torch", imgsz=IMGSZ, threads=1)
    line = det.backend_line()
    assert line.startswith("backend torch, 1 thread, conv+BN fused") and "input 96x96" in line
    assert det.backend.threads == 1
    seen = []
    hook = det.backend.model.register_forward_pre_hook(lambda m, a: seen.append(torch.get_num_threads()))
    det.infer(det.preprocess(synthetic_scene(64, 64))[0])
    hook.remove()
    assert seen == [1] and torch.get_num_threads() == before     # its count while it runs, then the process's


def test_auto_picks_opencv_for_darknet_onnxruntime_for_onnx(files, tmp_path):
    from cnnlab.detect.export import export_detector

    cfg, weights, names = files
    det = Detector(cfg=cfg, weights=weights, names=names, imgsz=IMGSZ)          # the default is auto
    assert det.backend_name == "opencv" and "auto: a Darknet cfg" in det.backend_line()
    ref = Detector(cfg=cfg, weights=weights, names=names, backend="torch", imgsz=IMGSZ)
    scene = synthetic_scene(120, 160, seed=5)
    a, b = det(scene), ref(scene)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)
    onnx = export_detector(cfg, weights, output=tmp_path / "m.onnx", imgsz=IMGSZ).path
    det = Detector(model=onnx, names=names)
    assert det.backend_name == "onnxruntime" and "ONNX file" in det.backend.reason


def test_auto_rule_falls_back_when_a_runtime_is_missing_or_deviates(files, tmp_path, monkeypatch):
    from cnnlab.sources import resolve

    cfg, weights, names = files
    src = resolve(None, task="detect", cfg=cfg, weights=weights)
    assert [n for n, _ in B.auto_choices(src, "cpu")] == ["opencv", "onnxruntime", "torch"]
    # OpenCV 5 has no Darknet importer: onnxruntime first
    import cv2

    monkeypatch.setattr(cv2, "__version__", "5.0.0")
    assert [n for n, _ in B.auto_choices(src, "cpu")] == ["onnxruntime", "torch"]
    det = Detector(cfg=cfg, weights=weights, names=names, imgsz=IMGSZ)
    assert det.backend_name == "onnxruntime" and "OpenCV cannot run it" in det.backend.reason
    monkeypatch.undo()
    # no onnxruntime installed and a dilated conv OpenCV ignores: torch
    monkeypatch.setattr(B, "_installed", lambda m: m != "onnxruntime")
    dil = tmp_path / "dil.cfg"
    dil.write_text(TINY_CFG.replace("pad=1\n", "pad=1\ndilation=2\n", 1))
    from cnnlab.darknet.model import model_from_cfg
    from cnnlab.darknet.weights import save_darknet_weights

    save_darknet_weights(model_from_cfg(dil), tmp_path / "dil.weights")
    det = Detector(cfg=dil, weights=tmp_path / "dil.weights", imgsz=64)
    assert det.backend_name == "torch" and "neither OpenCV nor ONNX Runtime" in det.backend.reason


def test_inference_commands_print_one_backend_line(cli, tmp_path, files):
    import cv2

    from test_stream_units import write_video
    from test_sweep_grid import make_dataset

    cfg, weights, _ = files
    (tmp_path / "tiny.cfg").write_text(TINY_CFG)
    from cnnlab.darknet.model import model_from_cfg
    from cnnlab.darknet.weights import save_darknet_weights

    save_darknet_weights(model_from_cfg(tmp_path / "tiny.cfg"), tmp_path / "tiny.weights")
    (tmp_path / "tiny.names").write_text("box\nthing\n")
    model = ["--cfg", tmp_path / "tiny.cfg", "--weights", tmp_path / "tiny.weights", "--names", tmp_path / "tiny.names"]
    cv2.imwrite(str(tmp_path / "a.jpg"), synthetic_scene(64, 64))
    images, _ = make_dataset(tmp_path / "data", n=2)
    runs = {
        "detect": ["detect", tmp_path / "a.jpg", *model, "-q", "--no-save"],
        "detect-eval": ["detect-eval", images, *model, "--no-plots", "--project", tmp_path / "r"],
        "stream": ["stream", write_video(tmp_path / "in.avi", 3), *model, "--log-every", "0"],
        "sweep": ["sweep", images, *model, "--captures", "80x60", "--sizes", "64,96", "--fps", "100",
                  "--project", tmp_path / "r"],
    }
    for what, args in runs.items():
        code, out, err = cli(*args)
        assert code == 0, (what, err)
        lines = [ln for ln in out.splitlines() if ln.startswith("backend ")]
        assert len(lines) == 1, (what, out)         # one line, also for the sweep's two input sizes
        assert lines[0].startswith("backend opencv (auto: a Darknet cfg") and " thread" in lines[0], lines[0]
