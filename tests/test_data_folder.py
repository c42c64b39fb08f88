"""Image folders: flat and train/val/test layouts, resizing, broken images, the DataLoader path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import ArrayDataset, FolderDataset, FolderLoader, load_dataset, make_loader
from cnnlab.errors import DataError, UserError


def _write_images(folder, classes=("cat", "dog"), n=3, size=(20, 14), seed=0):
    rng = np.random.default_rng(seed)
    for c, cls in enumerate(classes):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = np.full((size[1], size[0], 3), 40 + 100 * c, np.uint8)
            arr[..., 2] = rng.integers(0, 256)
            Image.fromarray(arr).save(folder / cls / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_flat_folder_in_memory(tmp_path):
    _write_images(tmp_path / "pets")
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    ds = load_dataset("folder", root=tmp_path / "pets", img_size=16)
    assert isinstance(ds, ArrayDataset) and ds.classes == ["cat", "dog"]
    assert ds.images.shape == (6, 3, 16, 16) and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert abs(int(ds.images[0, 0].float().mean()) - 40) <= 2 and abs(int(ds.images[5, 0].float().mean()) - 140) <= 2
    assert ds.mean[0] == pytest.approx(90 / 255, abs=0.01)
    # a path as the dataset name works too; grayscale on request
    grey = load_dataset(str(tmp_path / "pets"), img_size=8, in_chans=1)
    assert grey.images.shape == (6, 1, 8, 8)
    with pytest.raises(UserError, match="no val/ folder"):
        load_dataset("folder", "val", root=tmp_path / "pets")


def test_split_folders_share_classes(tmp_path):
    _write_images(tmp_path / "ds" / "train", classes=("a", "b", "c"), n=2)
    _write_images(tmp_path / "ds" / "val", classes=("a", "c"), n=1, seed=1)
    train = load_dataset("folder", "train", data_dir=tmp_path / "ds", img_size=12)
    val = load_dataset("folder", "val", data_dir=tmp_path / "ds", img_size=12)
    assert train.classes == val.classes == ["a", "b", "c"]
    assert val.labels.tolist() == [0, 2] and len(train) == 6
    assert val.mean == train.mean  # normalisation statistics come from the training images
    with pytest.raises(UserError, match="no test/ folder"):
        load_dataset("folder", "test", data_dir=tmp_path / "ds")


def test_broken_image_is_one_line_error_naming_the_file(tmp_path):
    _write_images(tmp_path / "pets")
    broken = tmp_path / "pets" / "dog" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(DataError) as e:
        load_dataset("folder", root=tmp_path / "pets", img_size=16)
    assert str(broken) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="broken.jpg"):  # streamed: found while sampling normalisation stats
        load_dataset("folder", root=tmp_path / "pets", img_size=16, in_memory=False)
    # a file that breaks after loading surfaces while iterating, still as one line
    broken.unlink()
    ds = load_dataset("folder", root=tmp_path / "pets", img_size=16, in_memory=False)
    broken = tmp_path / "pets" / "dog" / "1.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    loader = make_loader(ds, 8, shuffle=False, num_workers=0)
    with pytest.raises(DataError) as e:
        list(loader)
    assert str(broken) in str(e.value) and "\n" not in str(e.value)


def test_folder_dataloader_path_matches_in_memory(tmp_path):
    _write_images(tmp_path / "pets", n=5)
    mem = load_dataset("folder", root=tmp_path / "pets", img_size=16, in_memory=True)
    disk = load_dataset("folder", root=tmp_path / "pets", img_size=16, in_memory=False)
    assert isinstance(disk, FolderDataset) and len(disk) == 10
    loader = make_loader(disk, 4, shuffle=True, seed=3, mean=mem.mean, std=mem.std, num_workers=0)
    assert isinstance(loader, FolderLoader) and len(loader) == 3
    mem_loader = make_loader(mem, 4, shuffle=True, seed=3)
    for (xd, yd), (xm, ym) in zip(loader, mem_loader, strict=True):
        assert torch.equal(yd, ym) and torch.allclose(xd, xm)
    sub = disk.subset([0, 9])
    assert sub.labels.tolist() == [0, 1]


def test_auto_in_memory_threshold(tmp_path):
    _write_images(tmp_path / "pets", n=2)
    big = load_dataset("folder", root=tmp_path / "pets", img_size=16, max_memory_mb=0)
    assert isinstance(big, FolderDataset)
    with pytest.raises(UserError, match="folder dataset needs its folder"):
        load_dataset("folder")


# --- issue 12: a folder that cannot make a classifier is refused before training ---------------------

def test_one_class_folder_is_refused_before_training(tmp_path, cli):
    # it used to train, report accuracy 1.0 and "test accuracy nan"
    _write_images(tmp_path / "one", classes=("cat",), n=4)
    with pytest.raises(UserError, match=r"only one class folder \(cat/\); a classifier needs at least 2 classes"):
        load_dataset("folder", root=tmp_path / "one", img_size=8)
    _write_images(tmp_path / "split" / "train", classes=("cat",), n=4)
    _write_images(tmp_path / "split" / "test", classes=("cat",), n=2)
    with pytest.raises(UserError, match="at least 2 classes"):
        load_dataset("folder", "test", data_dir=tmp_path / "split", img_size=8)
    code, out, err = cli("train", "--dataset", "folder", "--data-dir", str(tmp_path / "one"), "--model", "lenet5",
                         "--img-size", "8", "--epochs", "1", "--verbose", "2", "--threads", "1")
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert "at least 2 classes" in err and "nan" not in out
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


def test_training_split_with_images_of_one_class_is_refused(tmp_path):
    _write_images(tmp_path / "ds" / "train", classes=("cat",), n=3)
    _write_images(tmp_path / "ds" / "val", classes=("dog",), n=2)
    with pytest.raises(UserError, match=r"all training images are of class 'cat'"):
        load_dataset("folder", "train", data_dir=tmp_path / "ds", img_size=8)
    with pytest.raises(UserError, match="all training images"):  # val is normalised with train's statistics
        load_dataset("folder", "val", data_dir=tmp_path / "ds", img_size=8)


def test_empty_class_folder_and_no_images_are_data_errors(tmp_path):
    _write_images(tmp_path / "pets")
    (tmp_path / "pets" / "bird").mkdir()
    (tmp_path / "pets" / "bird" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="bird: empty class folder") as e:
        load_dataset("folder", root=tmp_path / "pets", img_size=8)
    assert str(tmp_path / "pets" / "bird") in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "none" / "a").mkdir(parents=True)
    (tmp_path / "none" / "b").mkdir()
    with pytest.raises(DataError, match="empty class folder"):
        load_dataset("folder", root=tmp_path / "none")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="no class folders"):
        load_dataset("folder", root=tmp_path / "flat")
    # a split folder without any class folder
    _write_images(tmp_path / "ds" / "train")
    (tmp_path / "ds" / "test").mkdir()
    with pytest.raises(DataError, match="test: no images found"):
        load_dataset("folder", "test", data_dir=tmp_path / "ds")


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_truncated_images_are_data_errors_naming_the_file(tmp_path, kind):
    """The documented policy: a broken image is never skipped (the dataset would silently shrink);
    it is a one-line DataError naming the file, in memory and streamed."""
    _write_images(tmp_path / "pets", size=(24, 24))
    victim = tmp_path / "pets" / "dog" / ("1.png" if kind == "png" else "0.jpg")
    raw = victim.read_bytes()
    # (a PNG cut only in its final IEND/checksum bytes still holds every pixel, and loads)
    for cut in (8, len(raw) // 2, len(raw) - (30 if kind == "png" else 4)):
        victim.write_bytes(raw[:cut])
        with pytest.raises(DataError) as e:
            load_dataset("folder", root=tmp_path / "pets", img_size=8, workers=1)
        assert str(victim) in str(e.value) and "\n" not in str(e.value)
