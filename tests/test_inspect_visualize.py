"""Visualisations: kernel and feature grids, Grad-CAM maps, CLI outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.errors import UserError
from cnnlab.inspect import grad_cam, resolve_layer, save_features, save_gradcam, save_kernels
from cnnlab.inspect.images import load_image


def _png(path):
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 0  # not blank
    return arr


def _texts(fig):
    """Every piece of text on a figure: suptitle, axes titles, colour-bar labels."""
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_ylabel(), ax.get_xlabel()]
    return [t for t in out if t]


def test_kernels_figure_is_labelled_and_sized(tmp_path):
    from cnnlab.inspect import kernels_figure

    # cifar10_cnn: 32 RGB 3x3 kernels: one titled panel each, the shape in the title, no colour bar
    fig = kernels_figure("cifar10_cnn")
    texts = _texts(fig)
    assert any("'features.0'" in t and "32 kernels of 3x3x3" in t for t in texts)
    assert {f"out {i}" for i in range(32)} <= set(texts)
    w, h = fig.get_size_inches() * 110
    assert w >= 600 and h >= 400   # a picture to look at, not 128x86 px
    # lenet5: 6 grey 5x5 kernels on one diverging scale with a labelled colour bar
    fig = kernels_figure("lenet5")
    texts = _texts(fig)
    assert "weight" in texts and any("6 kernels of 1x5x5" in t for t in texts)
    path = save_kernels("lenet5", tmp_path / "k1.png")
    with Image.open(path) as im:
        assert im.size[0] >= 600 and im.size[1] >= 350


def test_pictures_are_never_overwritten_silently(tmp_path):
    first = save_kernels("lenet5", tmp_path / "k.png")
    stamp = first.stat().st_mtime_ns
    second = save_kernels("lenet5", tmp_path / "k.png")
    third = save_kernels("lenet5", tmp_path / "k.png")
    assert (first.name, second.name, third.name) == ("k.png", "k-2.png", "k-3.png")
    assert first.stat().st_mtime_ns == stamp
    again = save_kernels("lenet5", tmp_path / "k.png", overwrite=True)
    assert again == first and not (tmp_path / "k-4.png").exists()


def test_feature_maps_figure_has_layer_and_channel_labels(tmp_path):
    from cnnlab.inspect import features_figure

    # lenet5's first conv on 28x28: 6 maps of 28x28
    fig = features_figure("lenet5", image="flower.jpg")
    texts = _texts(fig)
    assert any("'features.0'" in t and "6 channels of 28x28" in t for t in texts)
    assert {f"ch {i}" for i in range(6)} <= set(texts) and any("flower.jpg" in t for t in texts)
    fig = features_figure("cifar10_cnn", layer="features.4", max_maps=10)
    texts = _texts(fig)
    assert "ch 9" in texts and "ch 10" not in texts and any("first 10 shown" in t for t in texts)
    assert _png(save_features("lenet5", tmp_path / "f.png")).shape[1] >= 600


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
    assert res.cam.shape == china.shape[:2] and res.cam.min() >= 0 and res.cam.max() <= 1
    assert res.layer == "layer4" and 0 < res.probability < 1
    assert _png(path).shape[1] >= 1000   # three panels side by side


def test_gradcam_figure_shows_original_heatmap_overlay_class_and_colour_bar():
    from cnnlab.inspect import gradcam_figure

    res = grad_cam("lenet5", "flower.jpg", class_idx=3)
    res.class_name = "three"
    fig = gradcam_figure(res, model_name="lenet5")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3 and len(fig.axes) == 4     # original, heat map, overlay + the colour bar
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("original") and "Grad-CAM" in titles[1] and titles[2].startswith("overlay")
    texts = _texts(fig)
    assert any("class 3 'three'" in t and f"{res.probability:.1%}" in t for t in texts)
    assert "relevance (0-1, normalised)" in texts


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
    assert _png(tmp_path / "k.png").shape[1] >= 600
    code, out, err = cli("visualize", "kernels", "lenet5", "-o", str(tmp_path / "k.png"))
    assert code == 0 and "k-2.png" in out and "was kept" in out   # the first picture is kept
    code, out, err = cli("visualize", "kernels", "lenet5", "-o", str(tmp_path / "k.png"), "--overwrite")
    assert code == 0 and "k-3.png" not in out and not (tmp_path / "k-3.png").exists()
    code, out, err = cli("visualize", "features", "mnist_cnn", "flower.jpg", "--layer", "features.2")
    assert code == 0, err
    assert _png(tmp_path / "mnist_cnn_features.png").shape[1] >= 600
    code, out, err = cli("visualize", "gradcam", "cifar10_cnn", "china.jpg", "--class", "3")
    assert code == 0, err
    assert "class 3" in out and "probability" in out
    assert _png(tmp_path / "cifar10_cnn_gradcam.png").shape[1] >= 1000
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
