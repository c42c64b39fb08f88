"""ONNX classifiers: cnnlab metadata, defaults for models from elsewhere, providers, real ImageNet model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.errors import UserError


def _plain_onnx(path, num_classes: int, size: int = 224, in_chans: int = 3):
    """An ONNX classifier without cnnlab metadata (as the ONNX model zoo ships them)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(in_chans, 4, 3, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, num_classes)).eval()
    torch.onnx.export(model, (torch.randn(1, in_chans, size, size),), str(path), dynamo=False, opset_version=17,
                      input_names=["data"], output_names=["out"], dynamic_axes={"data": {0: "n"}, "out": {0: "n"}})
    return path


def test_metadataless_1000_class_model_gets_imagenet_defaults(tmp_path):
    from cnnlab.deploy.metadata import IMAGENET_MEAN, IMAGENET_STD
    from cnnlab.deploy.runtime import load_onnx_classifier

    clf = load_onnx_classifier(_plain_onnx(tmp_path / "zoo.onnx", 1000))
    assert clf.metadata is None and clf.defaults_assumed
    assert clf.mean == IMAGENET_MEAN and clf.std == IMAGENET_STD
    assert (clf.img_size, clf.in_chans, clf.preprocess_spec.resize) == (224, 3, 256)
    assert len(clf.classes) == 1000 and clf.classes[0].startswith("tench")
    assert "goldfish" in clf.classes[1]
    # a 300x400 photo: short side to 256, centre crop 224, normalised
    img = np.full((300, 400, 3), (124, 116, 104), np.uint8)  # ~ the ImageNet mean colour
    x = clf.preprocess([img])
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert np.abs(x).max() < 0.02
    preds = clf.predict([img, img[:, ::-1]], topk=5)
    assert len(preds) == 2 and len(preds[0]) == 5
    assert all(name in clf.classes for name, _ in preds[0])
    probs = [p for _, p in preds[0]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


def test_metadataless_other_model_and_input_size(tmp_path):
    from cnnlab.deploy.runtime import load_onnx_classifier

    clf = load_onnx_classifier(_plain_onnx(tmp_path / "gray.onnx", 7, size=20, in_chans=1))
    assert clf.classes == [str(i) for i in range(7)]
    assert (clf.mean, clf.std, clf.img_size, clf.in_chans) == ((0.0,), (1.0,), 20, 1)
    x = clf.preprocess([np.zeros((40, 30, 3), np.uint8)])
    assert x.shape == (1, 1, 20, 20)
    assert clf(x).shape == (1, 7)
    small = load_onnx_classifier(_plain_onnx(tmp_path / "in160.onnx", 1000, size=160))
    assert (small.img_size, small.preprocess_spec.resize) == (160, 183)


def test_cnnlab_metadata_is_read(tmp_path):
    from cnnlab.deploy.export import export
    from cnnlab.deploy.runtime import load_onnx_classifier

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    path = export(model, output=tmp_path / "m.onnx", classes=["cat", "dog", "fox"], mean=(0.1, 0.2, 0.3),
                  std=(0.9, 0.8, 0.7), img_size=12).path
    clf = load_onnx_classifier(path)
    assert clf.classes == ["cat", "dog", "fox"] and clf.img_size == 12 and clf.precision == "fp32"
    assert clf.mean == (0.1, 0.2, 0.3) and clf.std == (0.9, 0.8, 0.7)
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 12)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(clf(torch.from_numpy(x)), model(torch.from_numpy(x)).numpy(), atol=1e-5)
    (label, p), *_ = clf.predict([np.zeros((12, 12, 3), np.uint8)], topk=1)[0]
    assert label in clf.classes and 0 < p <= 1


def test_bad_files_are_user_errors(tmp_path):
    from cnnlab.deploy.runtime import load_onnx_classifier

    with pytest.raises(UserError, match="not found"):
        load_onnx_classifier(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match="cannot load"):
        load_onnx_classifier(junk)


def test_provider_resolution():
    from cnnlab.deploy.providers import available_providers, resolve_providers

    assert resolve_providers(None) == ["CPUExecutionProvider"]
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    auto = resolve_providers("auto")
    assert auto[-1] == "CPUExecutionProvider"
    if "TensorrtExecutionProvider" not in available_providers():
        with pytest.raises(UserError, match="not available"):
            resolve_providers("tensorrt,cuda")
    else:  # pragma: no cover - GPU/Jetson builds
        name, opts = resolve_providers("tensorrt", trt_fp16=True)[0]
        assert name == "TensorrtExecutionProvider" and opts["trt_fp16_enable"]


IMAGENET_PLAUSIBLE = {
    "china.jpg": ("palace", "monastery", "stupa", "pagoda", "temple", "dome", "bell cote", "boathouse",
                  "organ", "cinema", "mosque", "church"),
    # a dahlia (no dahlia class in ImageNet): the int8 MobileNetV2 sees petals/texture/flower-like classes
    "flower.jpg": ("daisy", "honeycomb", "mushroom", "hen-of-the-woods", "earthstar", "coral fungus",
                   "stinkhorn", "bee", "pot", "vase", "sea anemone", "artichoke", "cardoon", "strawberry"),
}


@pytest.mark.realdata
def test_mobilenetv2_int8_zoo_model_predicts_sensible_labels(shared_data, cli):
    from sklearn.datasets import load_sample_image

    import cnnlab

    path = shared_data("weights/mobilenetv2-12-int8.onnx")
    images = [load_sample_image(name) for name in IMAGENET_PLAUSIBLE]
    preds = cnnlab.predict(path, images, topk=5)  # the classification API dispatches .onnx here
    for (name, words), top5 in zip(IMAGENET_PLAUSIBLE.items(), preds, strict=True):
        labels = [label for label, _ in top5]
        assert any(w in label for label in labels for w in words), (name, labels)
    assert preds[0][0][0] != preds[1][0][0]
    assert "palace" in preds[0][0][0]
    import sklearn.datasets

    china = sklearn.datasets.__path__[0] + "/images/china.jpg"
    code, out, err = cli("predict", str(path), china)
    assert code == 0, err
    assert "palace" in out


def test_api_predict_does_not_softmax_probabilities_twice(tmp_path):
    """An ONNX model that ends in softmax: cnnlab.predict must report its probabilities as they are."""
    import cnnlab

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4), torch.nn.Softmax(dim=1)).eval()
    path = tmp_path / "probs.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 8, 8), path, input_names=["input"], output_names=["probs"],
                      dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    img = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    loaded = cnnlab.load(path)
    x = loaded.preprocess([img])
    expected = net(x).detach().numpy()[0]
    top = cnnlab.predict(path, [img], topk=4)[0]
    assert abs(sum(p for _, p in top) - 1.0) < 1e-5
    assert max(p for _, p in top) == pytest.approx(float(expected.max()), abs=1e-5)
