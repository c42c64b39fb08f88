"""Datasets in the layout LabelImg and CVAT users make: ``train/`` and ``val/`` folders holding each image
with its Pascal VOC ``.xml`` beside it, and a ``data.yaml`` naming the folders and the classes.

    from cnnlab.detect.labelimg import labelimg_subset, corrupt_copy
    info = labelimg_subset("coco128", "out/person", class_name="person")   # a real single-class set
    defects = corrupt_copy("out/person", "out/person-broken")             # seeded defects, one per file

`labelimg_subset` turns any labelled dataset cnnlab reads (here coco128's YOLO labels) into that
layout, keeping one class; `corrupt_copy` copies such a dataset and plants one defect of each kind
that ``cnnlab data check`` must report (the list says which file holds which).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from cnnlab.detect.types import DetectionSample
from cnnlab.errors import UserError

#: The defects `corrupt_copy` plants, and the kind of issue ``data check`` reports for each.
DEFECTS = {
    "nan": "nan",                 # a bndbox coordinate written as nan
    "outside": "range",           # a box wholly outside its image
    "zero_area": "area",          # xmax == xmin
    "unknown_class": "class",     # an object named with a typo
    "duplicate": "duplicate",     # the same object twice
    "malformed_xml": "syntax",    # an XML file cut short
    "truncated_jpeg": "image",    # a JPEG cut short
    "not_an_image": "image",      # a .jpg holding text
    "missing_label": "unlabelled",  # an image whose XML was deleted
    "missing_image": "orphan",    # an XML whose image was deleted
}


def voc_xml(image: Path, width: int, height: int, objects: list[tuple[str, tuple[int, int, int, int]]],
            depth: int = 3) -> str:
    """A Pascal VOC annotation as LabelImg writes it (integer 1-based pixel boxes, tab-indented)."""
    rows = [
        "<annotation>",
        f"\t<folder>{escape(image.parent.name)}</folder>",
        f"\t<filename>{escape(image.name)}</filename>",
        f"\t<path>{escape(str(image))}</path>",
        "\t<source>\n\t\t<database>Unknown</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>{depth}</depth>\n\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for name, (x1, y1, x2, y2) in objects:
        truncated = int(x1 <= 1 or y1 <= 1 or x2 >= width or y2 >= height)
        rows += [
            "\t<object>",
            f"\t\t<name>{escape(name)}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{truncated}</truncated>",
            "\t\t<difficult>0</difficult>",
            f"\t\t<bndbox>\n\t\t\t<xmin>{x1}</xmin>\n\t\t\t<ymin>{y1}</ymin>\n\t\t\t<xmax>{x2}</xmax>\n"
            f"\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>",
            "\t</object>",
        ]
    rows.append("</annotation>")
    return "\n".join(rows) + "\n"


def pixel_boxes(sample: DetectionSample) -> list[tuple[int, int, int, int]]:
    """A sample's boxes as LabelImg stores them: whole pixels, 1..width / 1..height, at least 1 px wide
    and high (sub-pixel boxes are dropped)."""
    out = []
    for x1, y1, x2, y2 in np.asarray(sample.boxes, dtype=np.float64):
        a = (max(1, int(round(x1))), max(1, int(round(y1))),
             min(sample.width, int(round(x2))), min(sample.height, int(round(y2))))
        if a[2] > a[0] and a[3] > a[1]:
            out.append(a)
    return out


def labelimg_subset(data: str | os.PathLike, out: str | os.PathLike, class_name: str = "person",
                    split: str = "train", val_fraction: float = 0.2, seed: int = 0,
                    max_images: int | None = None, min_size: int = 0) -> dict[str, Any]:
    """Write the images of ``data`` (any layout cnnlab reads) that hold ``class_name`` as a single-class
    LabelImg dataset in ``out``: ``train/`` and ``val/`` (copies of the images, each with its VOC
    ``.xml`` holding only that class's boxes) and a ``data.yaml``.

    ``min_size`` > 0 makes a *clear* set, as people label their own photos: an image is kept only when
    every box of the class is at least ``min_size`` pixels on its shorter side (an image with a tiny
    instance is left out whole, so no true object goes unlabelled).

    The split is seeded and independent of file order (sorted names, then a seeded permutation).
    Returns ``{"out", "data_yaml", "class", "train", "val", "boxes": {split: n}}``.
    """
    import warnings

    from cnnlab.detect.data import load_detection_data
    from cnnlab.io import atomic_write_text

    root = Path(data)
    if root.is_dir() and (root / "images").is_dir() and not (root / "data.yaml").is_file():
        root = root / "images"          # coco128: images/train2017 + labels/train2017
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_detection_data(root, split=split, names=_names_for(data), warn=False)
    if class_name not in ds.names:
        raise UserError(f"class {class_name!r} is not in {data} (classes: {', '.join(ds.names[:10])} ...)")
    k = ds.names.index(class_name)
    chosen = sorted((s for s in ds.samples if (s.class_ids == k).any()), key=lambda s: s.image_path.name)
    chosen = [s for s in chosen if pixel_boxes(_only(s, k))]
    if min_size > 0:
        chosen = [s for s in chosen
                  if min(min(x2 - x1, y2 - y1) for x1, y1, x2, y2 in pixel_boxes(_only(s, k))) >= min_size]
    if len(chosen) < 2:
        raise UserError(f"only {len(chosen)} images of {data} hold a {class_name!r}: too few for two splits")
    order = np.random.default_rng(seed).permutation(len(chosen))
    if max_images is not None:
        order = order[:max_images]
    n_val = max(1, int(round(len(order) * val_fraction)))
    splits = {"val": sorted(order[:n_val].tolist()), "train": sorted(order[n_val:].tolist())}
    out = Path(out)
    boxes = {}
    for name, idx in splits.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        boxes[name] = 0
        for i in idx:
            s = _only(chosen[i], k)
            image = folder / s.image_path.name
            shutil.copyfile(s.image_path, image)
            objects = [(class_name, b) for b in pixel_boxes(s)]
            boxes[name] += len(objects)
            atomic_write_text(image.with_suffix(".xml"), voc_xml(image.resolve(), s.width, s.height, objects))
    data_yaml = out / "data.yaml"
    clear = f", every box >= {min_size} px" if min_size > 0 else ""
    atomic_write_text(data_yaml, f"# {class_name} images of {Path(data).name} in the LabelImg layout "
                                 f"(cnnlab.detect.labelimg, seed {seed}{clear})\n"
                                 f"train: train\nval: val\nnc: 1\nnames: [{class_name}]\n")
    return {"out": str(out), "data_yaml": str(data_yaml), "class": class_name,
            "train": len(splits["train"]), "val": len(splits["val"]), "boxes": boxes}


def _names_for(data: str | os.PathLike) -> list[str] | None:
    """coco128 ships without names: COCO's 80 (cnnlab's copy) when the data has no names of its own."""
    root = Path(data)
    if any((root / f).is_file() for f in ("data.yaml", "dataset.yaml")) or root.suffix in (".yaml", ".yml"):
        return None
    from cnnlab.detect.names import COCO80

    return list(COCO80)


def _only(s: DetectionSample, k: int) -> DetectionSample:
    keep = s.class_ids == k
    return DetectionSample(s.image_path, s.width, s.height, s.boxes[keep], np.zeros(int(keep.sum()), np.int64))


def corrupt_copy(src: str | os.PathLike, out: str | os.PathLike, seed: int = 0,
                 defects: tuple[str, ...] = tuple(DEFECTS)) -> list[dict[str, str]]:
    """Copy a LabelImg dataset (`labelimg_subset`) to ``out`` and plant each of ``defects`` (see
    `DEFECTS`) in a different image or XML, chosen with ``seed``. Returns one
    ``{"defect", "kind", "split", "file"}`` per planted defect (``kind``: what ``data check`` reports).
    """
    src, out = Path(src), Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    from cnnlab.detect.data import IMG_FORMATS

    pairs = sorted((f, f.with_suffix(".xml")) for f in out.glob("*/*")
                   if f.suffix.lower() in IMG_FORMATS and f.with_suffix(".xml").is_file())
    unknown = [d for d in defects if d not in DEFECTS]
    if unknown:
        raise UserError(f"unknown defect(s) {', '.join(unknown)}; choose from {', '.join(DEFECTS)}")
    if len(pairs) < len(defects):
        raise UserError(f"{src} has {len(pairs)} labelled images; {len(defects)} defects need one each")
    picks = np.random.default_rng(seed).permutation(len(pairs))[:len(defects)]
    planted = []
    for defect, i in zip(defects, picks, strict=True):
        image, xml = pairs[int(i)]
        file = _plant(defect, image, xml)
        planted.append({"defect": defect, "kind": DEFECTS[defect], "split": image.parent.name, "file": str(file)})
    return planted


def _plant(defect: str, image: Path, xml: Path) -> Path:
    """Plant one defect; returns the file ``data check`` should name."""
    text = xml.read_text(encoding="utf-8")
    first = text.index("<object>"), text.index("</object>") + len("</object>")
    obj = text[first[0]:first[1]]
    if defect == "nan":
        xml.write_text(_set_tag(text, "xmin", "nan"), encoding="utf-8")
    elif defect == "outside":
        w = int(text.split("<width>")[1].split("<")[0])
        xml.write_text(_set_tag(_set_tag(text, "xmax", str(w + 60)), "xmin", str(w + 20)), encoding="utf-8")
    elif defect == "zero_area":
        xmin = text.split("<xmin>")[1].split("<")[0]
        xml.write_text(_set_tag(text, "xmax", xmin), encoding="utf-8")
    elif defect == "unknown_class":
        name = obj.split("<name>")[1].split("<")[0]
        xml.write_text(text.replace(f"<name>{name}</name>", f"<name>{name[:-1] or 'x'}</name>", 1), encoding="utf-8")
    elif defect == "duplicate":
        xml.write_text(text[:first[1]] + "\n\t" + obj + text[first[1]:], encoding="utf-8")
    elif defect == "malformed_xml":
        xml.write_text(text[: len(text) // 2], encoding="utf-8")
    elif defect == "truncated_jpeg":
        data = image.read_bytes()
        image.write_bytes(data[: len(data) // 2])
        return image
    elif defect == "not_an_image":
        image.write_text("this is not a JPEG\n")
        return image
    elif defect == "missing_label":
        xml.unlink()
        return image
    elif defect == "missing_image":
        image.unlink()
    return xml


def _set_tag(text: str, tag: str, value: str) -> str:
    """``text`` with the first ``<tag>...</tag>`` holding ``value``."""
    start = text.index(f"<{tag}>") + len(tag) + 2
    return text[:start] + value + text[text.index(f"</{tag}>", start):]
