"""``cnnlab data check``: lint a detection dataset before anyone trains on it.

    report = check_detection_data("data.yaml")
    report.errors        # [Issue(...)]: what stops training or makes a metric wrong
    report.ok            # no errors
    report.counts        # {split: {"images": n, "labelled": n, "boxes": n, "per_class": {name: n}}}

The splits are read by the same reader as ``detect-eval``, ``detect-train`` and ``anchors``
(`cnnlab.detect.data.load_labelled_images`, `load_voc`, `load_coco`), in its collecting mode: instead
of stopping at the first bad line it records every problem and goes on. Found:

errors   a label line or object that does not parse, a NaN/inf coordinate, a box outside its image or
         with zero area, a class id out of range or a name not in ``names``, an image that is missing,
         unreadable or truncated, a split with images but no readable labels, a data.yaml that does
         not load (names/nc mismatch, a missing folder)
warnings images without a label file (negatives, or forgotten annotations), label files without an
         image, duplicate boxes, a ``classes.txt`` that disagrees with ``names``, classes without boxes
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.detect.data import (
    IMG_FORMATS,
    DetectionDataset,
    Problem,
    _find_images,
    _has_images,
    data_yaml_split,
    find_label_files,
    img2label_path,
    load_coco,
    load_labelled_images,
    load_voc,
    voc_label_path,
)
from cnnlab.detect.images import DAMAGED, image_problem
from cnnlab.detect.names import parse_names
from cnnlab.errors import DataError, UserError

SPLITS = ("train", "val", "test")
WARNING_KINDS = ("unlabelled", "orphan", "duplicate", "names", "empty-class", "layout")


@dataclass
class Issue:
    """One finding: ``severity`` error | warning, ``kind`` (see `cnnlab.detect.data.Problem`, plus
    unlabelled, orphan, duplicate, names, empty-class, layout), the ``split``, the ``file`` and a
    one-line ``message``."""

    severity: str
    kind: str
    split: str
    message: str
    file: str = ""


@dataclass
class DataReport:
    """What `check_detection_data` found."""

    source: str
    names: list[str] = field(default_factory=list)
    layouts: dict[str, str] = field(default_factory=dict)       # split -> yolo | voc | coco
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def kinds(self, severity: str | None = None) -> dict[str, int]:
        """How many issues of each kind (of one severity when given)."""
        out: dict[str, int] = {}
        for i in self.issues:
            if severity is None or i.severity == severity:
                out[i.kind] = out.get(i.kind, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "names": self.names, "layouts": self.layouts, "counts": self.counts,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "issues": [asdict(i) for i in self.issues]}


def check_detection_data(data: str | os.PathLike, splits: list[str] | tuple[str, ...] | None = None,
                         check_images: bool = True) -> DataReport:
    """Lint a detection dataset: a data.yaml (every split it names, or ``splits``), or one folder.

    check_images: decode every image (finds truncated and corrupt files; about 5 ms an image),
    else only read their headers.
    Raises a UserError only when ``data`` does not exist; everything else is in the report.
    """
    path = Path(data).expanduser()
    if not path.exists():
        raise UserError(f"dataset not found: {path}")
    report = DataReport(str(path))
    if path.is_dir() and not any((path / y).is_file() for y in ("data.yaml", "dataset.yaml")):
        _check_folder(report, path, check_images)
        return report
    yaml_path = next(path / y for y in ("data.yaml", "dataset.yaml") if (path / y).is_file()) \
        if path.is_dir() else path
    if yaml_path.suffix.lower() not in (".yaml", ".yml"):
        raise UserError(f"{path}: data check reads a data.yaml or a folder of images with their labels")
    from cnnlab.detect.names import read_yaml_file

    try:
        cfg = read_yaml_file(yaml_path)
    except UserError as e:
        report.issues.append(Issue("error", "yaml", "-", str(e), str(yaml_path)))
        return report
    if splits:
        wanted = list(splits)
    elif isinstance(cfg, dict):
        wanted = [s for s in SPLITS if cfg.get(s) not in (None, "", [])]
    else:
        wanted = ["val"]   # the reader says what is wrong with the file
    if not wanted:
        report.issues.append(Issue("error", "yaml", "-", f"{yaml_path}: no train/val/test split named", str(yaml_path)))
    for split in wanted:
        try:
            sp = data_yaml_split(yaml_path, split)
        except UserError as e:
            report.issues.append(Issue("error", "yaml", split, str(e), str(yaml_path)))
            continue
        report.names = class_labels(list(sp.names))
        _check_names_files(report, split, sp.names, sp.images)
        if sp.kind == "images":
            _check_images_split(report, split, sp.images, sp.names, str(yaml_path), sp.where, sp.layout,
                                not sp.lists, check_images)
        elif sp.kind == "voc":
            _check_whole(report, split, "voc", lambda sp=sp, split=split, problems=None:
                         load_voc(sp.path, split=split, names=sp.names, problems=problems), check_images)
        else:
            _check_whole(report, split, "coco", lambda sp=sp, problems=None: load_coco(sp.path, names=sp.names),
                         check_images)
    return report


def _check_folder(report: DataReport, path: Path, check_images: bool) -> None:
    """A folder without a data.yaml: its ``train/``, ``val/``, ``test/`` folders when it holds no image
    itself (names: from the first split's labels), else the folder as one split."""
    if (path / "Annotations").is_dir():
        _check_whole(report, path.name, "voc", lambda problems=None: load_voc(path, problems=problems),
                     check_images)
        return
    direct = _has_images(path)
    splits = [] if direct else [s for s in SPLITS if (path / s).is_dir()]
    names: list[str] | None = None
    for split, folder in [(s, path / s) for s in splits] or [(path.name, path)]:
        files = _find_images(folder)
        if not files:
            report.issues.append(Issue("error", "labels", split, f"{folder}: no images found (looked for "
                                                                 f"{', '.join(IMG_FORMATS)})", str(folder)))
            continue
        names = names or _classes_txt(files)
        _check_images_split(report, split, files, names, str(folder), str(folder), None, True, check_images)
        names = names or (report.names or None)


def _classes_txt(files: list[Path]) -> list[str] | None:
    cand = img2label_path(files[0]).parent / "classes.txt"
    try:
        return parse_names(cand) if cand.is_file() else None
    except UserError:
        return None


def _check_names_files(report: DataReport, split: str, names: list[str], images: list[Path]) -> None:
    """A LabelImg ``classes.txt`` beside the labels that disagrees with the data.yaml's names, and
    names given twice."""
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup and not any(i.kind == "class" and "twice" in i.message for i in report.issues):
        report.issues.append(Issue("error", "class", split, f"names lists {', '.join(dup)} twice"))
    if not images:
        return
    cand = img2label_path(images[0]).parent / "classes.txt"
    if cand.is_file():
        try:
            found = parse_names(cand)
        except UserError as e:
            report.issues.append(Issue("warning", "names", split, str(e), str(cand)))
            return
        if list(found) != list(names):
            report.issues.append(Issue("warning", "names", split,
                                       f"{cand}: {len(found)} names ({', '.join(found[:5])}) differ from the "
                                       f"data.yaml's {len(names)} ({', '.join(names[:5])}); the data.yaml's are "
                                       "used", str(cand)))


def _check_images_split(report: DataReport, split: str, files: list[Path], names: list[str] | None,
                        source: str, where: str, layout: str | None, check_orphans: bool,
                        check_images: bool) -> None:
    txt, xml = find_label_files(files)
    problems: list[Problem] = []
    try:
        ds = load_labelled_images(files, names, Path(source), where, layout, check_orphans, problems=problems)
    except DataError as e:   # no labels at all, or a layout that finds none
        report.issues.append(Issue("error", "labels", split, str(e)))
        report.counts[split] = {"images": len(files), "labelled": 0, "boxes": 0, "per_class": {}}
        return
    kind = ds.format
    report.layouts[split] = kind
    used = xml if kind == "voc" else txt
    for p in problems:
        severity = "warning" if p.kind in WARNING_KINDS else "error"
        report.issues.append(Issue(severity, p.kind, split, p.message, str(p.file or "")))
    for img in files:
        if img not in used:
            report.issues.append(Issue("warning", "unlabelled", split, f"{img}: no label file (read as an image "
                                                                       "without objects)", str(img)))
    report.issues += [Issue("warning", "layout", split, w) for w in ds.warnings if "were ignored" in w
                      and "beside them" in w]
    if check_orphans:
        _orphans(report, split, files, kind)
    if kind == "voc":
        _duplicates(report, split, ds, used)
    if check_images:
        bad = {Path(p.file) for p in problems if p.kind == "image" and p.file}
        for s in ds.samples:
            if s.image_path in bad:
                continue
            _image_issue(report, split, s.image_path)
    _count(report, split, ds, len(files), len(used))


def _image_issue(report: DataReport, split: str, image: Path) -> None:
    """An image that does not decode, or decodes only in part (an error), or with libjpeg's complaints
    about its data (a warning)."""
    msg = image_problem(image)
    if msg:
        report.issues.append(Issue("warning" if DAMAGED in msg else "error", "image", split, msg, str(image)))


def _orphans(report: DataReport, split: str, files: list[Path], kind: str) -> None:
    """Label files (of the layout read) in the label folders that belong to no image of the split."""
    label_of = img2label_path if kind == "yolo" else voc_label_path
    suffix = ".txt" if kind == "yolo" else ".xml"
    stems = {(label_of(f).parent, f.stem) for f in files}
    for d in sorted({label_of(f).parent for f in files}):
        for lbl in sorted(d.glob(f"*{suffix}")):
            if lbl.name == "classes.txt" or (d, lbl.stem) in stems:
                continue
            report.issues.append(Issue("warning", "orphan", split, f"{lbl}: label file without an image "
                                                                   "(ignored)", str(lbl)))


def _duplicates(report: DataReport, split: str, ds: DetectionDataset, label_of: dict | None = None) -> None:
    """Boxes of one image with the same class and coordinates (YOLO files: found by the reader)."""
    for s in ds.samples:
        if len(s) < 2:
            continue
        rows = np.concatenate([s.class_ids[:, None].astype(np.float64), s.boxes.astype(np.float64)], 1)
        n_dup = len(rows) - len(np.unique(rows, axis=0))
        if n_dup:
            file = (label_of or {}).get(s.image_path, s.image_path)
            report.issues.append(Issue("warning", "duplicate", split, f"{file}: {n_dup} duplicate box(es) "
                                                                      "(same class and coordinates)", str(file)))


def _check_whole(report: DataReport, split: str, kind: str, load: Any, check_images: bool) -> None:
    """A VOC (Annotations/: every file checked) or COCO split (loaded whole: its first error is the one
    reported)."""
    problems: list[Problem] = []
    try:
        ds = load(problems=problems)
    except UserError as e:
        report.issues.append(Issue("error", "labels", split, str(e)))
        return
    for p in problems:
        report.issues.append(Issue("warning" if p.kind in WARNING_KINDS else "error", p.kind, split, p.message,
                                   str(p.file or "")))
    report.layouts[split] = kind
    _duplicates(report, split, ds)
    if check_images:
        for s in ds.samples:
            _image_issue(report, split, s.image_path)
    _count(report, split, ds, len(ds), sum(1 for s in ds.samples if len(s)))


def class_labels(names: list[str]) -> list[str]:
    """The class names as unique labels for the counts: a name given twice gets its index, ``a (1)``."""
    return [n if names.count(n) == 1 else f"{n} ({i})" for i, n in enumerate(names)]


def _count(report: DataReport, split: str, ds: DetectionDataset, n_images: int, n_labelled: int) -> None:
    report.names = class_labels(list(ds.names))
    per_class = ds.instances_per_class()
    report.counts[split] = {"images": n_images, "labelled": n_labelled, "boxes": ds.num_boxes,
                            "per_class": {n: int(c) for n, c in zip(report.names, per_class, strict=True)}}
    if ds.num_boxes == 0 and n_images:
        report.issues.append(Issue("error", "labels", split, f"{split}: {n_images} images, {n_labelled} label "
                                                             "files, but no readable boxes"))
    empty = [n for n, c in zip(report.names, per_class, strict=True) if c == 0]
    if empty and ds.num_boxes:
        report.issues.append(Issue("warning", "empty-class", split, f"{split}: no boxes of class(es) "
                                                                    f"{', '.join(empty[:10])}"))
