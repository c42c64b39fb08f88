"""Fuzz targets for the detection dataset parsers: YOLO txt labels, Pascal VOC XML, COCO JSON, data.yaml,
the LabelImg layout (a .xml or .txt beside each image, through a data.yaml) and ``data check``.

    from cnnlab.fuzz.detect_data import fuzz_targets
    for name, target in fuzz_targets().items():
        try:
            target(b"0 nan 0.5 0.2 0.2\n")
        except UserError:
            pass            # the input was refused with a one-line message: fine
        # anything else escaping is a bug

Each target writes the bytes into one file of a small dataset in a temporary folder (created once per
process in /dev/shm where there is one, reused, removed at exit) and loads the dataset through the public loader, so every check of
`cnnlab.detect.data` runs. Only `cnnlab.errors.UserError` (and its subclasses) may come out. A target
costs a fraction of a millisecond to about a millisecond (one small file written, one 8x6 image header
read).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ROOT: Path | None = None
IMAGE_SIZE = (8, 6)   # width, height of the one image of every fuzzed dataset


def _root() -> Path:
    """The temporary folder with one small dataset per target (made on first use)."""
    global _ROOT
    if _ROOT is None:
        from PIL import Image

        shm = Path("/dev/shm")   # memory-backed where there is one: writing a file costs ~20 us, not ~400
        where = str(shm) if _is_dir(shm) and os.access(shm, os.W_OK) else None
        root = Path(tempfile.mkdtemp(prefix="cnnlab-fuzz-detect-", dir=where))
        atexit.register(shutil.rmtree, root, True)
        img = Image.new("RGB", IMAGE_SIZE, (90, 140, 200))
        for sub in ("yolo/images", "yolo/labels", "voc", "coco", "yaml/images", "yaml/labels", "beside/val"):
            (root / sub).mkdir(parents=True)
        img.save(root / "beside" / "val" / "a.png")
        (root / "beside" / "data.yaml").write_text("val: val\nnames: [dog, cat, widget]\n")
        img.save(root / "yolo" / "images" / "1.png")
        img.save(root / "voc" / "a.png")
        img.save(root / "coco" / "1.png")
        img.save(root / "yaml" / "images" / "1.png")
        (root / "yaml" / "labels" / "1.txt").write_text("0 0.5 0.5 0.5 0.5\n")
        _ROOT = root
    return _ROOT


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def load_yolo_txt(data: bytes) -> Any:
    """``data`` as the label file of a one-image YOLO dataset -> the `DetectionDataset`; without class
    names when its length is even (class ids capped), with three names when odd."""
    from cnnlab.detect.data import load_yolo

    root = _root() / "yolo"
    (root / "labels" / "1.txt").write_bytes(data)
    names = None if len(data) % 2 == 0 else ["a", "b", "c"]
    return load_yolo([root / "images" / "1.png"], names, source=root, check_orphans=False)


def load_voc_xml(data: bytes) -> Any:
    """``data`` as the XML annotation beside the one image (``a.png``) of a LabelImg-style VOC folder."""
    from cnnlab.detect.data import load_voc

    root = _root() / "voc"
    (root / "a.xml").write_bytes(data)
    return load_voc(root, keep_difficult=len(data) % 2 == 1)


def load_coco_json(data: bytes) -> Any:
    """``data`` as a COCO instances file whose images folder holds one image, ``1.png``."""
    from cnnlab.detect.data import load_coco

    root = _root() / "coco"
    (root / "instances.json").write_bytes(data)
    return load_coco(root / "instances.json", images=root)


def load_data_yaml(data: bytes) -> Any:
    """``data`` as a data.yaml beside ``images/1.png`` and ``labels/1.txt`` (split ``val``) -> the
    `DetectionDataset`, or None when the input is not fed to the loader.

    Paths that could leave the temporary folder (absolute, ``..``, ``~``, a separator, a ``path:``
    other than ``.``) are not fed to it: the loader would then search folders of this machine for
    images, which is neither cheap nor the parser's business. Everything else is.
    """
    from cnnlab.detect.data import load_detection_data

    if not _stays_inside(data):
        return None
    root = _root() / "yaml"
    (root / "data.yaml").write_bytes(data)
    return load_detection_data(root / "data.yaml", split="val", warn=False)


def _beside(data: bytes, suffix: str) -> Path:
    """``data`` as the one label file (``.xml`` or ``.txt``) beside ``val/a.png``; the other kind removed."""
    val = _root() / "beside" / "val"
    for old in (".xml", ".txt"):
        (val / f"a{old}").unlink(missing_ok=True)
    (val / f"a{suffix}").write_bytes(data)
    return _root() / "beside" / "data.yaml"


def load_beside_xml(data: bytes) -> Any:
    """``data`` as the VOC XML beside the one image of a LabelImg layout (data.yaml, ``val/a.png``)."""
    from cnnlab.detect.data import load_detection_data

    return load_detection_data(_beside(data, ".xml"), split="val", warn=False)


def load_beside_txt(data: bytes) -> Any:
    """``data`` as the YOLO .txt beside the one image of a CVAT-YOLO layout (data.yaml, ``val/a.png``)."""
    from cnnlab.detect.data import load_detection_data

    return load_detection_data(_beside(data, ".txt"), split="val", warn=False)


def check_beside(data: bytes) -> Any:
    """``cnnlab data check`` of the LabelImg layout whose one label file is ``data`` (an .xml when it
    starts with ``<`` after blanks, else a .txt) -> the `DataReport` (it never raises: every problem is
    an issue of the report)."""
    from cnnlab.detect.check import check_detection_data

    suffix = ".xml" if data.lstrip().startswith(b"<") else ".txt"
    return check_detection_data(_beside(data, suffix), splits=["val"], check_images=False)


def check_data_yaml(data: bytes) -> Any:
    """``cnnlab data check`` of ``data`` as the data.yaml of `load_data_yaml` -> the `DataReport` (never
    raises), or None when the input is not fed to it (see `load_data_yaml`)."""
    from cnnlab.detect.check import check_detection_data

    if not _stays_inside(data):
        return None
    root = _root() / "yaml"
    (root / "data.yaml").write_bytes(data)
    return check_detection_data(root / "data.yaml", check_images=False)


def yolo_txt(data: bytes) -> None:
    """Fuzz target: a YOLO label file (see `load_yolo_txt`)."""
    load_yolo_txt(data)


def voc_xml(data: bytes) -> None:
    """Fuzz target: a Pascal VOC XML annotation (see `load_voc_xml`)."""
    load_voc_xml(data)


def coco_json(data: bytes) -> None:
    """Fuzz target: a COCO instances JSON (see `load_coco_json`)."""
    load_coco_json(data)


def data_yaml(data: bytes) -> None:
    """Fuzz target: an Ultralytics data.yaml (see `load_data_yaml`)."""
    load_data_yaml(data)


def beside_xml(data: bytes) -> None:
    """Fuzz target: a LabelImg .xml beside its image (see `load_beside_xml`)."""
    load_beside_xml(data)


def beside_txt(data: bytes) -> None:
    """Fuzz target: a YOLO .txt beside its image (see `load_beside_txt`)."""
    load_beside_txt(data)


def data_check(data: bytes) -> None:
    """Fuzz target: ``data check`` of one label file (see `check_beside`); nothing may escape."""
    check_beside(data)


def _stays_inside(data: bytes) -> bool:
    if any(s in data for s in (b"/", b"\\", b"~", b"..", b"\0")):
        return False
    if b"path" not in data:   # the root is the yaml's folder; entries are names inside it
        return True
    try:
        import yaml

        cfg: Any = yaml.safe_load(data.decode("utf-8"))
    except Exception:   # not YAML: the loader refuses it, which is what is being tested
        return True
    if isinstance(cfg, dict):
        return cfg.get("path") in (None, "", ".")
    return True


def _voc(name: str, boxes: list[tuple[str, int, int, int, int]], difficult: bool = False) -> bytes:
    w, h = IMAGE_SIZE
    objects = "".join(f"<object><name>{c}</name><difficult>{int(difficult)}</difficult><bndbox><xmin>{x0}</xmin>"
                      f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
                      for c, x0, y0, x1, y1 in boxes)
    return (f"<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size>{objects}</annotation>").encode()


def fuzz_seeds() -> dict[str, list[bytes]]:
    """Valid inputs the fuzzer mutates, one or more per target: files each loader reads with boxes."""
    import json

    w, h = IMAGE_SIZE
    yolo = [b"0 0.5 0.5 0.5 0.5\n", b"1 0.25 0.4 0.3 0.2\n2 0.7 0.6 0.2 0.4\n", b"", b"0 0.5 0.5 1 1"]
    voc = [_voc("a.png", [("dog", 1, 1, 5, 4)]), _voc("a.png", [("cat", 0, 0, 8, 6), ("dog", 2, 1, 3, 5)], True)]
    coco = json.dumps({"images": [{"id": 1, "file_name": "1.png", "width": w, "height": h}],
                       "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 3],
                                        "iscrowd": 0, "area": 12}],
                       "categories": [{"id": 3, "name": "dog"}, {"id": 7, "name": "cat"}]}).encode()
    yaml = [b"val: images\nnames: [dog, cat]\n", b"path: .\nval: images\nnc: 2\nnames:\n  0: dog\n  1: cat\n"]
    return {"yolo_txt": yolo, "voc_xml": voc, "coco_json": [coco], "data_yaml": yaml,
            "beside_xml": voc, "beside_txt": yolo, "data_check": voc + yolo}


def fuzz_targets() -> dict[str, Callable[[bytes], None]]:
    """{target name: callable(bytes) -> None}: each feeds the bytes to one dataset parser and lets only
    `cnnlab.errors.UserError` (and subclasses) out."""
    return {"yolo_txt": yolo_txt, "voc_xml": voc_xml, "coco_json": coco_json, "data_yaml": data_yaml,
            "beside_xml": beside_xml, "beside_txt": beside_txt, "data_check": data_check}
