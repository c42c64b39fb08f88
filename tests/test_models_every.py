"""Every registered model, driven by the registry: forward shapes, gradients to the first layer and an
ONNX export that matches PyTorch. Each entry's ``test_kwargs`` is its small, fast build."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.models import create_model, get_entry, list_models, model_from_spec

NUM_CLASSES = 3


def _build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The entry's test build and a batch of two inputs of its test size."""
    entry = get_entry(name)
    kw = dict(entry.test_kwargs)
    in_chans = kw.pop("in_chans", entry.input_size[0])
    img_size = kw.pop("img_size", entry.input_size[1])
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES, in_chans=in_chans, img_size=img_size, **kw)
    return model, torch.rand(2, in_chans, img_size, img_size)


def _first_params(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the first layer (the first module that owns parameters)."""
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if own:
            return own
    raise AssertionError("the model has no parameters")


def _outputs(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


# tracing for a fixed input size: the shape checks it warns about are constants on purpose
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:Constant folding:UserWarning")
@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_onnx(name):
    import onnxruntime as ort

    entry = get_entry(name)
    model, x = _build(name)
    model.eval()
    with torch.no_grad():
        out = model(x)
    if entry.task == "classify":
        assert out.shape == (2, NUM_CLASSES)
    else:  # a detector: decoded rows per [yolo] layer, raw maps from forward_raw
        with torch.no_grad():
            raw = model.forward_raw(x)
        if getattr(model, "anchor_free", False):   # cnnlab-nano: (B, 4+C, H, W) per level, one rows tensor
            assert len(out) == 1 and len(raw) >= 2
            assert all(r.shape[:2] == (2, 4 + NUM_CLASSES) for r in raw)
            assert out[0].shape == (2, sum(r.shape[2] * r.shape[3] for r in raw), 5 + NUM_CLASSES)
        else:
            assert len(out) == len(raw) == len(model.yolo_layers) >= 2
        for rows, r, yolo in zip(out, raw, getattr(model, "yolo_layers", []), strict=False):
            b, c, h, w = r.shape
            assert (b, c) == (2, yolo.num_anchors * (5 + NUM_CLASSES))
            assert rows.shape == (2, h * w * yolo.num_anchors, 5 + NUM_CLASSES)
    assert all(torch.isfinite(o).all() for o in _outputs(out))
    assert model_from_spec(model.cnnlab_spec).cnnlab_spec == model.cnnlab_spec

    # backward: a loss on the output reaches the first layer's weights
    model.train()
    train_out = model.forward_raw(x) if entry.task == "detect" else model(x)
    sum(o.float().square().mean() for o in _outputs(train_out)).backward()
    first = _first_params(model)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in first)

    # ONNX: the exported graph computes what PyTorch does
    model.eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["x"])
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x.numpy()})
    with torch.no_grad():
        ref = [o.numpy() for o in _outputs(model(x))]
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-4)


def _free_input(name: str) -> bool:
    entry = get_entry(name)
    return "in_chans" not in entry.test_kwargs  # a Keras graph fixes its input; every other net adapts


@pytest.mark.parametrize("name", [n for n in list_models(task="classify") if _free_input(n)])
def test_classifiers_take_digits_mnist_and_cifar_inputs(name):
    kw = {k: v for k, v in get_entry(name).test_kwargs.items() if k != "img_size"}
    for in_chans, size in ((1, 8), (1, 28), (3, 32)):
        model = create_model(name, num_classes=10, in_chans=in_chans, img_size=size, **kw).eval()
        with torch.no_grad():
            out = model(torch.randn(2, in_chans, size, size))
        assert out.shape == (2, 10), (in_chans, size)
        assert torch.isfinite(out).all(), (in_chans, size)
