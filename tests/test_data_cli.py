"""CLI: `cnnlab datasets`, `cnnlab datasets download`, `cnnlab augment-preview`."""

from __future__ import annotations

import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA_MIRRORS", raising=False)


def test_datasets_lists_names_and_presence(cli, tmp_path):
    (tmp_path / "root" / "cifar10").mkdir(parents=True)
    (tmp_path / "root" / "cifar10" / "cifar-10-python.tar.gz").write_bytes(b"x")
    code, out, err = cli("datasets", "--data-dir", tmp_path / "root")
    assert code == 0, err
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "folder"):
        assert name in out
    from cnnlab.data import dataset_status

    row = dataset_status("cifar10", tmp_path / "root")
    assert row["present"] == "yes" and row["location"].endswith("cifar10/cifar-10-python.tar.gz")
    assert dataset_status("mnist", tmp_path / "root")["present"] == "no"
    assert dataset_status("digits")["present"] == "built-in"
    code, _, err = cli("datasets", "download", "digits")
    assert code == 2 and "needs no download" in err


def test_augment_preview_writes_png(cli, tmp_path):
    code, out, err = cli("augment-preview", "--dataset", "digits", "--rotation-range", "20", "--horizontal-flip",
                         "--cutout", "3", "--mixup-alpha", "0.2", "--output", "prev.png", "--n", "4")
    assert code == 0, err
    with Image.open(tmp_path / "prev.png") as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 300  # 6 rows
    assert "horizontal_flip, rotation, cutout, mixup" in out
    (tmp_path / "aug.yaml").write_text("augment:\n  preset: keras_course\n  cutout: 2\n")
    code, out, err = cli("augment-preview", "--config", "aug.yaml", "-o", "p2.png", "--n", "3")
    assert code == 0, err
    assert (tmp_path / "p2.png").is_file()
    assert "rotation, shift, zoom, brightness, cutout" in out


def test_augment_preview_bad_input_is_one_line(cli):
    code, _, err = cli("augment-preview", "--zoom-range", "abc")
    assert code == 2 and "--zoom-range" in err and "Traceback" not in err
    code, _, err = cli("augment-preview", "--dataset", "nope", "--horizontal-flip")
    assert code == 2 and "unknown dataset" in err
