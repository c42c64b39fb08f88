"""The coco128 split the detection benchmarks share: images sorted by name, the first labelled ones
train, the last ones are held out, as image lists behind one data.yaml."""

from __future__ import annotations

from pathlib import Path


def coco128_split(root: Path, work: Path, n_train: int, n_val: int) -> Path:
    """A data.yaml in ``work`` whose train/val are image lists (``coco128_train.txt`` /
    ``coco128_val.txt``): the first ``n_train`` / last ``n_val`` labelled images of ``root``/coco128."""
    from cnnlab.detect.names import load_names
    from cnnlab.io import atomic_write_text, write_yaml

    images = sorted((root / "coco128" / "images" / "train2017").glob("*.jpg"))
    labelled = [p for p in images if (root / "coco128" / "labels" / "train2017" / f"{p.stem}.txt").is_file()]
    if n_train + n_val > len(labelled):
        raise SystemExit(f"train + val images must be <= {len(labelled)} (labelled coco128 images)")
    train, val = labelled[:n_train], labelled[-n_val:]
    atomic_write_text(work / "coco128_train.txt", "".join(f"{p}\n" for p in train))
    atomic_write_text(work / "coco128_val.txt", "".join(f"{p}\n" for p in val))
    names = load_names(root / "yolo" / "coco.names")
    return write_yaml(work / "coco128_split.yaml", {"path": str(work), "train": "coco128_train.txt",
                                                    "val": "coco128_val.txt", "names": names})
