"""Every export path leaves the caller's model as it found it: each module's train/eval flag and every
parameter and buffer (a model left in training mode would use batch statistics on its next forward and
overwrite its batch-norm running statistics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


def _snapshot(model: nn.Module) -> tuple[list[tuple[str, bool]], dict[str, torch.Tensor]]:
    return ([(name, m.training) for name, m in model.named_modules()],
            {k: v.detach().clone() for k, v in model.state_dict().items()})


def _assert_unchanged(model: nn.Module, before) -> None:
    modes, state = before
    assert [(name, m.training) for name, m in model.named_modules()] == modes
    after = model.state_dict()
    assert after.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(after[k], v), k


def _mixed_modes(model: nn.Module) -> nn.Module:
    """Training mode with one submodule in eval mode (restoring must be per module, not model.train())."""
    model.train()
    next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


@pytest.mark.parametrize("kw", [
    {"format": "onnx"},
    {"format": "onnx", "fp16": True},
    {"format": "onnx", "int8": "dynamic"},
    {"format": "onnx", "int8": "static", "calib_data": np.random.default_rng(0).standard_normal((8, 3, 8, 8))},
    {"format": "torchscript"},
], ids=["onnx", "fp16", "int8-dynamic", "int8-static", "torchscript"])
def test_deploy_export_leaves_the_model_as_found(tmp_path, kw):
    from cnnlab.deploy.export import export

    model = _mixed_modes(tiny_cnn())
    before = _snapshot(model)
    ext = ".torchscript" if kw["format"] == "torchscript" else ".onnx"
    export(model, output=tmp_path / f"m{ext}", img_size=8, **kw)
    _assert_unchanged(model, before)


def test_deploy_export_of_a_resolved_training_model_runs_it_in_eval_mode(tmp_path):
    """A Resolved source is handed over as it is: the export must still run (and check) it in eval mode."""
    from cnnlab.deploy.export import _torch_logits, export
    from cnnlab.deploy.source import torch_source

    src = torch_source(tiny_cnn(), img_size=8)
    _mixed_modes(src.model)
    before = _snapshot(src.model)
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    res = export(src, output=tmp_path / "m.onnx")
    _assert_unchanged(src.model, before)
    assert res.max_abs_diff <= res.tolerance  # checked against eval-mode PyTorch
    src.model.eval()
    from cnnlab.deploy.runtime import load_onnx_classifier

    np.testing.assert_allclose(load_onnx_classifier(res.path, providers="cpu")(x), _torch_logits(src.model, x),
                               atol=1e-4)


@pytest.fixture
def yolo():
    from cnnlab.darknet.yolo import yolov3_tiny

    torch.manual_seed(0)
    return _mixed_modes(yolov3_tiny(num_classes=2, img_size=64, width_mult=0.125))


def test_detect_onnx_bytes_of_leaves_the_model_as_found(yolo):
    from cnnlab.detect.export import onnx_bytes_of

    before = _snapshot(yolo)
    onnx_bytes_of(yolo, 64)
    _assert_unchanged(yolo, before)
    assert all(not y.pixel_output for y in yolo.yolo_layers)


def test_detect_check_against_torch_leaves_the_model_as_found(yolo):
    from cnnlab.detect.export import check_against_torch, onnx_bytes_of

    data = onnx_bytes_of(yolo, 64)
    before = _snapshot(yolo)
    diff, _, _ = check_against_torch(yolo, data, 64)
    _assert_unchanged(yolo, before)
    assert diff < 1e-3  # compared in eval mode, as exported


def test_onnxruntime_backend_export_in_memory_leaves_the_model_as_found(yolo):
    from cnnlab.detect.backends import create_backend
    from cnnlab.detect.types import ImageSize
    from cnnlab.sources import Resolved

    src = Resolved(task="detect", kind="darknet", model=yolo, runtime="torch", classes=["a", "b"], source="tiny",
                   name="tiny", imgsz=ImageSize(64, 64))
    before = _snapshot(yolo)
    create_backend("onnxruntime", src, ImageSize(64, 64))
    _assert_unchanged(yolo, before)
