"""Visualisations: kernel and feature grids, Grad-CAM maps, CLI outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.errors import UserError
from cnnlab.inspect import grad_cam, resolve_layer, save_features, save_gradcam, save_kernels
from cnnlab.inspect.images import GRID_GAP, load_image


def _png(path):
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 0  # not blank
    return arr


def _grid(n, tile, cols):
    rows = -(-n // cols)
    return rows * tile + (rows + 1) * GRID_GAP, cols * tile + (cols + 1) * GRID_GAP


def test_kernels_grid_size(tmp_path):
    # cifar10_cnn: 32 RGB 3x3 kernels at 8 px per weight, 6 columns
    arr = _png(save_kernels("cifar10_cnn", tmp_path / "k.png"))
    assert arr.shape[:2] == _grid(32, 24, 6)
    # lenet5 on MNIST: 6 grey 5x5 kernels, 3 columns
    arr = _png(save_kernels("lenet5", tmp_path / "k1.png", scale=4))
    assert arr.shape[:2] == _grid(6, 20, 3)


def test_feature_maps_grid_size(tmp_path):
    # lenet5's first conv on 28x28: 6 maps of 28x28, enlarged x3 to 84 px
    arr = _png(save_features("lenet5", tmp_path / "f.png", image="flower.jpg"))
    assert arr.shape[:2] == _grid(6, 84, 3)
    arr = _png(save_features("cifar10_cnn", tmp_path / "f2.png", layer="features.4", max_maps=10))
    assert arr.shape[:2] == _grid(10, 14 * 5, 4)  # 14x14 maps after the first pool, x5 -> 70 px


def test_gradcam_map_has_image_size_and_range(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    image = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)
    res = grad_cam(model, image, class_idx=2)
    assert res.cam.shape == (40, 60) and res.class_idx == 2 and res.layer == "3"
    assert res.cam.min() >= 0.0 and res.cam.max() <= 1.0 and res.cam.max() == pytest.approx(1.0)
    assert model[1].inplace  # restored after the pass
    path, res = save_gradcam("resnet18_cifar", tmp_path / "g.png")  # default: china.jpg
    china = load_image(None)
    assert _png(path).shape == china.shape
    assert res.cam.shape == china.shape[:2] and res.cam.min() >= 0 and res.cam.max() <= 1
    assert res.layer == "layer4"


def test_gradcam_matches_manual_computation():
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[4:12, 4:12] = 255
    from cnnlab.sources import resolve

    src = resolve(model.eval(), mean=[0.5], std=[0.5], img_size=16, in_chans=1)
    res = grad_cam(src, image, class_idx=1, layer="1")
    x = (torch.from_numpy(image[..., :1].astype(np.float32)).permute(2, 0, 1)[None] / 255 - 0.5) / 0.5
    act = torch.relu(conv(x))
    # d logit_1 / d A^k = w_1k / (H*W) everywhere, so alpha_k = w_1k / 256
    alpha = model[4].weight[1].detach() / 256
    cam = torch.relu((alpha.view(3, 1, 1) * act[0].detach()).sum(0))
    expected = (cam / cam.max()).numpy() if cam.max() > 0 else cam.numpy()
    np.testing.assert_allclose(res.cam, expected, atol=1e-5)


def test_bad_layer_and_class():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(UserError, match="no layer named 'conv9'.*0"):
        resolve_layer(model, "conv9")
    with pytest.raises(UserError, match="out of range"):
        grad_cam("lenet5", None, class_idx=10)
    with pytest.raises(UserError, match="not feature maps"):
        save_features("lenet5", "x.png", layer="classifier.0")
    with pytest.raises(UserError, match="image not found"):
        load_image("no_such_image.jpg")


def test_visualize_cli(cli, tmp_path):
    code, out, err = cli("visualize", "kernels", "lenet5", "-o", str(tmp_path / "k.png"))
    assert code == 0, err
    assert _png(tmp_path / "k.png").shape[:2] == _grid(6, 40, 3)
    code, out, err = cli("visualize", "features", "mnist_cnn", "flower.jpg", "--layer", "features.2")
    assert code == 0, err
    assert _png(tmp_path / "mnist_cnn_features.png").shape[:2] == _grid(64, 72, 8)  # 24x24 x3
    code, out, err = cli("visualize", "gradcam", "cifar10_cnn", "china.jpg", "--class", "3")
    assert code == 0, err
    assert "class 3" in out
    assert _png(tmp_path / "cifar10_cnn_gradcam.png").shape == (427, 640, 3)
    code, _, err = cli("visualize", "features", "lenet5", "--layer", "nope")
    assert code == 2 and "no layer named 'nope'" in err
    code, _, err = cli("visualize", "kernels", "no_such_model")
    assert code == 2 and "unknown model" in err


def test_summary_cli(cli, tmp_path):
    code, out, err = cli("summary", "lenet5", "--batch", "50", "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    assert "61,706" in out
    import json

    data = json.loads((tmp_path / "s.json").read_text())
    assert data["params"]["total"] == 61_706 and data["batch"] == 50
    code, out, err = cli("summary", "cifar10_cnn", "--input", "3x64x64", "--depth", "1")
    assert code == 0, err
    assert "features" in out
    code, _, err = cli("summary", "lenet5", "--input", "bad")
    assert code == 2 and "invalid input size" in err
