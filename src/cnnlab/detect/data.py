"""Labelled detection datasets: YOLO txt, COCO JSON and Pascal VOC XML into one internal format.

Every loader returns a `DetectionDataset` whose ``samples`` are `DetectionSample` objects (xyxy pixel
boxes, int class ids) and whose ``names`` are the class names. Broken files raise a one-line
`DataError` naming the file (and the line or entry); images without labels are negatives, as in
Ultralytics; label files without an image are reported as a warning.

Values are checked where they are read, so that no metric is ever computed over invalid ground truth:
every coordinate must be a finite number (NaN, inf and overflowing numbers are refused), every box must
have a positive width and height and overlap its image (it is then clipped to it; a box wholly outside
is refused), image sizes must be whole numbers in 1..`MAX_IMAGE_SIDE`, class ids integers below the
number of names (or below `MAX_INFERRED_CLASSES` when no names are given).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.detect.names import parse_names, read_yaml_file
from cnnlab.detect.types import DetectionSample
from cnnlab.errors import CnnlabWarning, DataError, UserError, first_line

IMG_FORMATS = (".bmp", ".jpeg", ".jpg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".mpo", ".pfm")
COORD_TOLERANCE = 0.01  # normalised YOLO coordinates may overshoot [0, 1] by this much (then clipped)
MAX_IMAGE_SIDE = 100_000  # pixels: a larger width or height written in an annotation is refused
MAX_INFERRED_CLASSES = 10_000  # without class names, label class ids must be below this (else pass names)
VOC_NAMES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]
# COCO's 80 training classes use category ids 1..90 with gaps (Ultralytics' coco80_to_coco91_class).
COCO80_TO_COCO91 = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
]
COCO80_FIRST_NAMES = ("person", "bicycle", "car", "motorcycle", "airplane")


# --------------------------------------------------------------------------------------------------
# checked values (every parser below goes through these)

def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, or None: NaN, inf, an int too large for a float, a bool, a string
    or any other type is not a number here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def finite_text(text: str | None) -> float | None:
    """A number written as text (``"12.5"``) as a finite float, or None (empty, NaN, inf, not a number)."""
    try:
        f = float((text or "").strip())
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def checked_side(value: Any, where: str) -> int:
    """An image width or height (a number, or its text): a whole number in 1..MAX_IMAGE_SIDE, else a
    DataError at ``where``."""
    f = finite_text(value) if isinstance(value, str) else finite_number(value)
    if f is None or f != int(f) or not 1 <= f <= MAX_IMAGE_SIDE:
        raise DataError(f"{where}: image size must be a whole number of pixels in 1..{MAX_IMAGE_SIDE}, "
                        f"got {_short(value.strip() if isinstance(value, str) else value)}")
    return int(f)


def checked_boxes(boxes: Any, width: int, height: int, where: list[str]) -> np.ndarray:
    """xyxy pixel boxes (N, 4) of a ``width`` x ``height`` image, clipped to it, as float32.

    Refused (a DataError at ``where[i]``, the file and line/object/annotation of box i): a non-finite
    coordinate, a box without positive width and height, and a box that does not overlap the image
    (clipping would turn it into a degenerate one).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(b).all(1)
    if bad.any():
        raise DataError(f"{where[int(bad.argmax())]}: box coordinates must be finite numbers")
    bad = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    if bad.any():
        i = int(bad.argmax())
        raise DataError(f"{where[i]}: box has no area (x1 y1 x2 y2 = {_coords(b[i])}; width and height "
                        "must be > 0)")
    clipped = np.stack([b[:, 0].clip(0, width), b[:, 1].clip(0, height),
                        b[:, 2].clip(0, width), b[:, 3].clip(0, height)], 1).astype(np.float32)
    bad = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if bad.any():
        i = int(bad.argmax())
        x1, y1, x2, y2 = b[i]
        where_is = "lies outside" if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height else \
            "has no area in pixels inside"
        raise DataError(f"{where[i]}: box x1 y1 x2 y2 = {_coords(b[i])} {where_is} the {width}x{height} image")
    return clipped


def valid_boxes(boxes: Any, width: int, height: int, where: list[str], problems: list[Problem] | None,
                file: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`checked_boxes` that, with a ``problems`` list, records each bad box (kind nan, area or range)
    and drops it instead of raising -> ``(clipped boxes, indices of the kept boxes)``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if problems is None:
        return checked_boxes(b, width, height, where), np.arange(len(b))
    keep = []
    for i, row in enumerate(b):
        try:
            checked_boxes(row[None], width, height, [where[i]])
        except DataError as e:
            kind = "nan" if not np.isfinite(row).all() else "area" if "no area (" in str(e) else "range"
            problems.append(Problem(kind, str(e), file))
            continue
        keep.append(i)
    idx = np.asarray(keep, dtype=np.int64)
    return checked_boxes(b[idx], width, height, [where[i] for i in keep]), idx


@dataclass
class Problem:
    """One problem in a dataset file, as ``cnnlab data check`` reports it.

    kind: syntax (unparseable), nan (a non-finite number), range (a box outside its image / a
    coordinate outside [0, 1]), area (zero width or height), class (an id out of range or an unknown
    name), image (missing, unreadable or truncated), labels (a split without readable labels), ...;
    message: one line naming the file (and line or object).
    """

    kind: str
    message: str
    file: Path | None = None


def report(problems: list[Problem] | None, problem: Problem) -> None:
    """Raise ``problem`` as a DataError, or (``problems`` given) record it and go on."""
    if problems is None:
        raise DataError(problem.message)
    problems.append(problem)


def _coords(row: np.ndarray) -> str:
    return " ".join(f"{float(v):g}" for v in row)


def _short(value: Any, limit: int = 40) -> str:
    """A value for an error message: one line, never long (it may be a huge structure from a JSON/YAML
    file); a path gets a longer ``limit``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        digits = int(abs(value).bit_length() * 0.30103)   # str() of a huge int may itself raise
        return f"{'-' if value < 0 else ''}~1e{digits} (an integer too large)"
    text = repr(value) if value is None or isinstance(value, (str, int, float, bool)) else type(value).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):   # a name too long for the file system, a NUL byte
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: unreadable {what} ({type(e).__name__})") from None


def _read_json(path: Path) -> Any:
    """A JSON file; a syntax error, an integer too long to read, nesting too deep or bytes that are not
    UTF-8 are one-line errors naming the file."""
    from cnnlab.io import read_json

    try:
        return read_json(path)
    except (ValueError, RecursionError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: invalid JSON ({type(e).__name__}: {first_line(e)})") from None



@dataclass
class DetectionDataset:
    """A labelled detection dataset in the internal format, plus what is needed to export it."""

    samples: list[DetectionSample]
    names: list[str]
    format: str                                    # "yolo" | "coco" | "voc"
    source: Path
    image_ids: list[int] = field(default_factory=list)     # COCO image id of each sample
    category_ids: list[int] = field(default_factory=list)  # COCO category id of each class index
    warnings: list[str] = field(default_factory=list)
    names_inferred: bool = False                   # True when no names were given or found

    def __post_init__(self) -> None:
        self.image_ids = self.image_ids or default_image_ids(self.samples)
        self.category_ids = self.category_ids or default_category_ids(self.names)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(s) for s in self.samples))

    def subset(self, indices: Any) -> DetectionDataset:
        """A dataset of the samples at ``indices`` (same names and category ids)."""
        idx = np.arange(len(self.samples))[indices].tolist()
        return DetectionDataset([self.samples[i] for i in idx], list(self.names), self.format, self.source,
                                [self.image_ids[i] for i in idx], list(self.category_ids), list(self.warnings),
                                self.names_inferred)

    def instances_per_class(self) -> np.ndarray:
        """Number of labelled boxes of each class index."""
        ids = np.concatenate([np.zeros(0, np.int64), *(s.class_ids for s in self.samples)])
        return np.bincount(ids[ids < len(self.names)], minlength=len(self.names))


# --------------------------------------------------------------------------------------------------
# entry points

def load_detection_dataset(spec: str | os.PathLike, split: str = "val", names: Any = None,
                           images: str | os.PathLike | None = None, keep_difficult: bool = False,
                           warn: bool = True) -> tuple[list[DetectionSample], list[str]]:
    """Load ``spec`` (data.yaml | YOLO images dir | COCO json | VOC dir) -> ``(samples, names)``.

    See `load_detection_data` for the options; this is the contract's short form.
    """
    ds = load_detection_data(spec, split=split, names=names, images=images,
                             keep_difficult=keep_difficult, warn=warn)
    return ds.samples, ds.names


def load_detection_data(spec: str | os.PathLike, split: str = "val", names: Any = None,
                        images: str | os.PathLike | None = None, keep_difficult: bool = False,
                        warn: bool = True) -> DetectionDataset:
    """Load a labelled detection dataset from any of the supported layouts.

    spec: an Ultralytics ``data.yaml`` (``split`` picks train/val/test), a YOLO images folder (labels
    in the sibling ``labels`` folder, or beside the images), a ``.txt`` list of images, a COCO
    instances ``.json`` (``images`` = its image folder when not found beside it), or a Pascal VOC
    folder (``Annotations`` + ``JPEGImages`` [+ ``ImageSets/Main/<split>.txt``], or XML beside images).
    names: list of class names, ``{id: name}``, or a ``.names``/``.txt``/``.yaml`` file.
    keep_difficult: keep VOC objects marked ``difficult`` (dropped by default, as Ultralytics does).
    warn: emit the dataset's warnings (orphan label files, duplicates...) with `warnings.warn`.
    """
    path = Path(spec).expanduser()
    if not _exists(path):
        raise UserError(f"dataset not found: {path}")
    given = parse_names(names) if names is not None else None
    suffix = path.suffix.lower()
    if _is_file(path) and suffix in (".yaml", ".yml"):
        ds = _load_data_yaml(path, split, given, images, keep_difficult)
    elif _is_file(path) and suffix == ".json":
        ds = load_coco(path, images=images, names=given)
    elif _is_file(path) and suffix == ".txt":
        ds = load_labelled_images(_read_image_list(path, path.parent), given, source=path, check_orphans=False,
                                  keep_difficult=keep_difficult)
    elif _is_dir(path):
        ds = _load_dir(path, split, given, images, keep_difficult)
    else:
        raise UserError(f"{path}: not a detection dataset (expected a data.yaml, a COCO .json, an images "
                        "folder or a VOC folder)")
    if not ds.samples:
        raise DataError(f"{path}: no images found")
    if warn:
        for w in ds.warnings:
            warnings.warn(w, CnnlabWarning, stacklevel=2)
    return ds


def _load_dir(path: Path, split: str, names: list[str] | None, images: Any,
              keep_difficult: bool) -> DetectionDataset:
    for yaml_name in ("data.yaml", "dataset.yaml"):
        if (path / yaml_name).is_file():
            return _load_data_yaml(path / yaml_name, split, names, images, keep_difficult)
    if (path / "Annotations").is_dir():
        return load_voc(path, split=split, names=names, images=images, keep_difficult=keep_difficult)
    ann = path / "annotations"
    if ann.is_dir():
        found = sorted(ann.glob(f"instances_{split}*.json")) or sorted(ann.glob("instances_*.json"))
        if found:
            return load_coco(found[0], images=images, names=names)
    if not _has_images(path) and _is_dir(path / split):
        path = path / split   # a folder holding train/ and val/ folders of images (LabelImg, CVAT)
    img_root = next((d for d in (path / "images" / split, path / "images") if d.is_dir()), path)
    files = _find_images(img_root)
    if not files:
        if any(path.glob("*.xml")):   # VOC XML files whose images are elsewhere (named by <filename>)
            return load_voc(path, split=split, names=names, images=images, keep_difficult=keep_difficult)
        raise DataError(f"{path}: no images found (looked for {', '.join(IMG_FORMATS)})")
    return load_labelled_images(files, names, source=path, keep_difficult=keep_difficult)


def _has_images(folder: Path) -> bool:
    """Whether ``folder`` itself (not its subfolders) holds an image file."""
    try:
        return any(f.suffix.lower() in IMG_FORMATS for f in folder.iterdir())
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# category ids

def default_category_ids(names: list[str]) -> list[int]:
    """COCO category ids for class indices: COCO's 1..90 ids for the 80 COCO names, else 1..N."""
    if len(names) == 80 and tuple(names[:5]) == COCO80_FIRST_NAMES:
        return list(COCO80_TO_COCO91)
    return list(range(1, len(names) + 1))


def default_image_ids(samples: list[DetectionSample]) -> list[int]:
    """Image ids for COCO export: the numeric file stems when all are numeric and unique, else 1..N."""
    stems = [s.image_path.stem for s in samples]
    if stems and all(st.isdigit() for st in stems) and len({int(st) for st in stems}) == len(stems):
        return [int(st) for st in stems]
    return list(range(1, len(samples) + 1))


# --------------------------------------------------------------------------------------------------
# images

def _find_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMG_FORMATS and p.is_file())


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as OpenCV will load it (EXIF rotation applied); header read only."""
    from PIL import Image, UnidentifiedImageError

    if not _is_file(path):
        raise DataError(f"missing image: {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                orientation = im.getexif().get(0x0112, 1)
            except Exception:  # broken EXIF: keep the stored size
                orientation = 1
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"unreadable image: {path} ({type(e).__name__})") from None
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if not (0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE):
        raise DataError(f"unreadable image: {path} (size {w}x{h} outside 1..{MAX_IMAGE_SIDE} pixels)")
    return int(w), int(h)


def _read_image_list(path: Path, root: Path) -> list[Path]:
    """Images listed one per line in a .txt file (paths relative to ``root`` or absolute)."""
    lines = _read_text(path, "image list").splitlines()
    files = []
    for i, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        p = Path(line)
        if p.suffix.lower() not in IMG_FORMATS:
            raise DataError(f"{path}:{i}: not an image file: {_short(line)}")
        if "\0" in line:
            raise DataError(f"{path}:{i}: a NUL character in the image path")
        if not p.is_absolute():
            try:
                p = (root / line).resolve() if _exists(root / line) else (path.parent / line).resolve()
            except (OSError, RuntimeError) as e:   # a symlink loop, a name too long
                raise DataError(f"{path}:{i}: bad image path ({type(e).__name__})") from None
        files.append(p)
    return files


# --------------------------------------------------------------------------------------------------
# YOLO txt

def img2label_path(image: Path) -> Path:
    """Label file of an image, as Ultralytics finds it: the last ``/images/`` becomes ``/labels/``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = str(image)
    s = sb.join(s.rsplit(sa, 1)) if sa in s else s
    return Path(s).with_suffix(".txt")


def parse_yolo_label_file(path: Path, num_classes: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray, int]:
    """Parse a YOLO label file -> (class ids (N,), normalised cx cy w h (N, 4), duplicates removed).

    Lines are ``class cx cy w h`` (or a polygon ``class x1 y1 x2 y2 ...``, turned into its box).
    Refused with the file and line: a field that is not a finite number, a class id that is not an
    integer in 0..num_classes-1 (0..MAX_INFERRED_CLASSES-1 when ``num_classes`` is None), a
    coordinate outside [0, 1] (beyond `COORD_TOLERANCE`), and a box of zero width or height.
    """
    cls, arr, _lines, dup = _parse_yolo_lines(path, num_classes)
    return cls, arr, dup


def _parse_yolo_lines(path: Path, num_classes: int | None, problems: list[Problem] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """`parse_yolo_label_file` plus the line number of each kept box.

    problems: None (the first bad line raises a DataError) or a list that collects one `Problem` per
    bad line, the line being skipped (what ``cnnlab data check`` reports).
    """
    text = _read_text(path, "label file")
    cls_list: list[int] = []
    boxes: list[list[float]] = []
    line_of: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            row = _yolo_line(line, num_classes)
        except ValueError as e:
            report(problems, Problem(str(e.args[0]), f"{path}:{lineno}: {e.args[1]}", path))
            continue
        if row is None:
            continue
        cls_list.append(row[0])
        boxes.append(row[1])
        line_of.append(lineno)
    cls = np.asarray(cls_list, dtype=np.int64)
    arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    keep = np.sort(np.unique(np.concatenate([cls[:, None].astype(np.float32), arr], axis=1), axis=0,
                             return_index=True)[1])   # the first of identical rows, in file order
    return cls[keep], arr[keep], [line_of[i] for i in keep], len(cls) - len(keep)


def _yolo_line(line: str, num_classes: int | None) -> tuple[int, list[float]] | None:
    """One YOLO label line -> ``(class id, [cx, cy, w, h])``, None for a blank line; a bad line raises
    ``ValueError(kind, message)`` (kind: a `Problem` kind)."""
    parts = line.split()
    if not parts:
        return None
    limit = num_classes if num_classes is not None else MAX_INFERRED_CLASSES
    n = len(parts)
    if n != 5 and not (n >= 7 and n % 2 == 1):
        raise ValueError("syntax", f"expected 5 fields 'class cx cy w h' (or a polygon "
                         f"'class x1 y1 x2 y2 x3 y3 ...'), got {n}")
    values = []
    for v in parts:
        f = finite_text(v)
        if f is None:
            what = "not a finite number" if _is_float(v) else "not a number"
            raise ValueError("nan" if _is_float(v) else "syntax", f"{what}: {_short(v)}")
        values.append(f)
    c = values[0]
    if c != int(c) or c < 0:
        raise ValueError("class", f"class id must be a non-negative integer, got {parts[0][:20]}")
    if c >= limit:
        if num_classes is not None:
            raise ValueError("class", f"class id {parts[0][:20]} out of range (dataset has {num_classes} "
                             f"names: 0..{num_classes - 1})")
        raise ValueError("class", f"class id {parts[0][:20]} is too large without class names (ids must be "
                         f"< {MAX_INFERRED_CLASSES}); pass the names (names=... / --names)")
    coords = values[1:]
    bad = [v for v in coords if not -COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE]
    if bad:
        raise ValueError("range", f"coordinate {bad[0]:g} outside [0, 1] (YOLO labels are normalised to "
                         "the image size)")
    if n > 5:  # polygon -> enclosing box (cx cy w h)
        x1, x2, y1, y2 = min(coords[0::2]), max(coords[0::2]), min(coords[1::2]), max(coords[1::2])
        coords = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
    if coords[2] <= 0 or coords[3] <= 0:
        raise ValueError("area", f"box width and height must be > 0, got w {coords[2]:g} h {coords[3]:g}")
    return int(c), coords


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_yolo(image_files: list[Path], names: list[str] | None = None, source: Path | None = None,
              check_orphans: bool = True, problems: list[Problem] | None = None) -> DetectionDataset:
    """Images + YOLO txt labels (found with `img2label_path`) -> `DetectionDataset`.

    problems: None (the first bad file raises a DataError) or a list collecting every bad line, box
    and image as a `Problem` (bad lines and boxes are skipped, an unreadable image leaves its sample out).
    """
    from cnnlab.detect.metrics import yolo2xyxy

    if names is None:
        names = _names_beside_labels(image_files)
    names_inferred = names is None
    warns: list[str] = []
    used_labels: set[Path] = set()
    duplicates = []
    samples = []
    for img in image_files:
        img = Path(img)
        lbl = img2label_path(img)
        try:
            w, h = image_size(img)
        except DataError as e:
            if problems is None:
                raise
            problems.append(Problem("image", str(e), img))
            continue
        try:
            if _is_file(lbl):
                used_labels.add(lbl.resolve())
                cls, nb, lines, dup = _parse_yolo_lines(lbl, len(names) if names is not None else None, problems)
                if dup:
                    duplicates.append(f"{lbl.name} ({dup})")
                    if problems is not None:
                        problems.append(Problem("duplicate", f"{lbl}: {dup} duplicate box(es) (identical lines)", lbl))
                boxes, keep = valid_boxes(yolo2xyxy(nb, w, h), w, h, [f"{lbl}:{k}" for k in lines], problems, lbl)
                cls = cls[keep]
            else:
                cls, boxes = np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
        except DataError as e:
            if problems is None:
                raise
            problems.append(Problem("syntax", str(e), lbl))
            continue
        samples.append(DetectionSample(img, w, h, boxes, cls))
    if names is None:
        max_id = max((int(s.class_ids.max()) for s in samples if len(s)), default=-1)
        names = [str(i) for i in range(max_id + 1)]
        warns.append(f"{source or 'dataset'}: no class names given; using the ids 0..{max_id} as names "
                     "(pass names=... / --names)")
    if duplicates:
        warns.append(f"removed duplicate labels in {len(duplicates)} files: {', '.join(duplicates[:5])}")
    if check_orphans:
        orphans = _orphan_labels(image_files, used_labels)
        if orphans:
            shown = ", ".join(str(p) for p in orphans[:5]) + (" ..." if len(orphans) > 5 else "")
            warns.append(f"{len(orphans)} label file(s) have no image and were ignored: {shown}")
    return DetectionDataset(samples, list(names), "yolo", Path(source or "."), warnings=warns,
                            names_inferred=names_inferred)


def _names_beside_labels(image_files: list[Path]) -> list[str] | None:
    """LabelImg writes ``classes.txt`` into the labels folder: use it when no names were given."""
    for img in image_files[:1]:
        cand = img2label_path(Path(img)).parent / "classes.txt"
        if _is_file(cand):
            return parse_names(cand)
    return None


def _orphan_labels(image_files: list[Path], used: set[Path]) -> list[Path]:
    label_dirs = sorted({img2label_path(Path(f)).parent for f in image_files})
    return [t for d in label_dirs for t in sorted(d.glob("*.txt"))
            if t.name != "classes.txt" and t.resolve() not in used]


# --------------------------------------------------------------------------------------------------
# label layouts of a folder of images: YOLO .txt (labels/ or beside), VOC .xml beside each image

LAYOUTS = ("auto", "yolo", "voc")   # what a data.yaml's optional ``layout:`` may say


def voc_label_path(image: Path) -> Path:
    """The VOC XML of an image in the LabelImg/CVAT layout: ``x.xml`` beside ``x.jpg``."""
    return image.with_suffix(".xml")


def find_label_files(image_files: list[Path]) -> tuple[dict[Path, Path], dict[Path, Path]]:
    """``({image: YOLO .txt}, {image: VOC .xml})`` for the label files that exist: the .txt where
    `img2label_path` puts it (``labels/`` for ``images/``, else beside), the .xml beside the image
    (or where the .txt would be)."""
    txt, xml = {}, {}
    for img in image_files:
        img = Path(img)
        t = img2label_path(img)
        if _is_file(t):
            txt[img] = t
        x = next((c for c in (voc_label_path(img), t.with_suffix(".xml")) if _is_file(c)), None)
        if x is not None:
            xml[img] = x
    return txt, xml


def choose_layout(image_files: list[Path], txt: dict, xml: dict, where: str, layout: str | None = None) -> str:
    """``"yolo"`` or ``"voc"``: which label files of a split to read.

    ``layout`` (a data.yaml's ``layout:``; None or ``auto``: detect) names one; detection takes the kind
    that labels more images (.txt on a tie). A split with images and no label file of either kind, or
    with none of the named kind, is a DataError that says what was found there: never a silent
    dataset without boxes.
    """
    n, nt, nx = len(image_files), len(txt), len(xml)
    layout = "auto" if layout is None else layout.lower() if isinstance(layout, str) else layout
    if layout not in LAYOUTS:
        raise DataError(f"{where}: layout must be one of {', '.join(LAYOUTS)}, got {_short(layout)}")
    found = f"{n} images, {nt} YOLO .txt label files, {nx} VOC .xml files"
    if n and not nt and not nx:
        example = Path(image_files[0])
        raise DataError(f"{where}: {n} images but no label files (looked for YOLO .txt as "
                        f"{str(img2label_path(example))[:200]} and VOC .xml as {str(voc_label_path(example))[:200]})")
    if layout == "yolo" and n and not nt:
        raise DataError(f"{where}: {found}, but the layout is yolo (set layout: voc or auto in the data.yaml)")
    if layout == "voc" and n and not nx:
        raise DataError(f"{where}: {found}, but the layout is voc (set layout: yolo or auto in the data.yaml)")
    if layout != "auto":
        return layout
    return "voc" if nx > nt else "yolo"


def load_labelled_images(image_files: list[Path], names: list[str] | None = None, source: Path | None = None,
                         where: str | None = None, layout: str | None = None, check_orphans: bool = True,
                         keep_difficult: bool = False, problems: list[Problem] | None = None) -> DetectionDataset:
    """Images and their label files, whichever layout they are in (`choose_layout`) -> `DetectionDataset`.

    The one reader of a folder (or list) of images for every command: ``detect-eval``, ``detect-train``,
    ``anchors``, ``sweep`` and ``data check`` all come here.
    """
    image_files = [Path(f) for f in image_files]
    txt, xml = find_label_files(image_files)
    where = where or str(source or "dataset")
    kind = choose_layout(image_files, txt, xml, where, layout)
    if kind == "voc":
        ds = load_voc_beside(image_files, names, source, keep_difficult, xml, problems)
        extra = len(txt)
        if check_orphans:
            used = set(xml.values())
            orphans = [x for d in sorted({f.parent for f in image_files}) for x in sorted(d.glob("*.xml"))
                       if x not in used]
            if orphans:
                shown = ", ".join(str(p) for p in orphans[:5]) + (" ..." if len(orphans) > 5 else "")
                ds.warnings.append(f"{len(orphans)} label file(s) have no image and were ignored: {shown}")
    else:
        ds = load_yolo(image_files, names, source, check_orphans, problems)
        extra = len(xml)
    if extra:
        other = ".txt" if kind == "voc" else ".xml"
        ds.warnings.append(f"{where}: read the {kind} labels; {extra} {other} file(s) beside them were ignored")
    return ds


@dataclass
class SplitSpec:
    """Where one split of a data.yaml lives (`data_yaml_split`)."""

    kind: str                      # "images" (a folder or list of images) | "voc" | "coco"
    where: str                     # "data.yaml: val split (val)", for messages
    names: list[str]
    images: list[Path] = field(default_factory=list)
    path: Path | None = None       # the VOC folder or COCO json
    layout: str | None = None      # the data.yaml's ``layout:`` (None: auto)
    lists: bool = False            # the images came from .txt lists (no orphan-label check)


def _load_data_yaml(path: Path, split: str, names: list[str] | None, images: Any,
                    keep_difficult: bool, problems: list[Problem] | None = None) -> DetectionDataset:
    """An Ultralytics data.yaml split (`data_yaml_split`) -> `DetectionDataset`."""
    sp = data_yaml_split(path, split, names)
    if sp.kind == "voc":
        return load_voc(sp.path, split=split, names=sp.names, keep_difficult=keep_difficult)  # type: ignore[arg-type]
    if sp.kind == "coco":
        return load_coco(sp.path, images=images, names=sp.names)  # type: ignore[arg-type]
    return load_labelled_images(sp.images, sp.names, path, sp.where, sp.layout, not sp.lists, keep_difficult,
                                problems)


def data_yaml_split(path: Path, split: str, names: list[str] | None = None) -> SplitSpec:
    """Read an Ultralytics data.yaml: ``path`` (root), ``train``/``val``/``test``, ``names`` and the
    optional ``layout`` (auto, yolo or voc: which label files sit with the images).

    ``path`` is a folder name; a split is a folder (of images with YOLO .txt labels or VOC .xml beside
    them, or a VOC folder with ``Annotations/``), an image list (.txt), a COCO .json or a list of
    those; ``names`` a list or an ``{id: name}`` mapping; ``nc`` (optional) an integer equal to the
    number of names. Any other type or a path that does not exist is a one-line DataError.
    """
    cfg = read_yaml_file(path)
    if not isinstance(cfg, dict):
        raise DataError(f"{path}: expected a mapping with path/train/val/names, got {type(cfg).__name__}")
    if names is None:
        if "names" not in cfg:
            raise DataError(f"{path}: no 'names:' (the class names) in the data file")
        if not isinstance(cfg["names"], (list, dict)):
            raise DataError(f"{path}: names must be a list or a mapping {{id: name}}, got "
                            f"{type(cfg['names']).__name__}")
        try:
            names = parse_names(cfg["names"], f"{path}: names")
        except DataError:
            raise
        except UserError as e:
            raise DataError(str(e)) from None
        if "nc" in cfg:
            nc = cfg["nc"]
            if isinstance(nc, bool) or not isinstance(nc, int):
                raise DataError(f"{path}: nc must be an integer, got {_short(nc)}")
            if nc != len(names):
                raise DataError(f"{path}: nc is {_short(nc)} but {len(names)} names are given")
    root = _expand(_path_entry(cfg.get("path"), path, "path") or "", path)
    if not root.is_absolute():  # beside the yaml file, else (as Ultralytics) the working folder
        try:
            beside = (path.parent / root).resolve()
            root = beside if _exists(beside) or not _exists(root) else root.resolve()
        except (OSError, RuntimeError) as e:   # a symlink loop
            raise DataError(f"{path}: bad path {_short(str(root), 300)} ({type(e).__name__})") from None
    if split not in cfg or cfg[split] is None or cfg[split] == "" or cfg[split] == []:
        have = [k for k in ("train", "val", "test") if k in cfg and cfg[k] not in (None, "", [])]
        raise DataError(f"{path}: no '{split}' split (it has: {', '.join(have) or 'none'})")
    raw = cfg[split] if isinstance(cfg[split], list) else [cfg[split]]
    entries = [_path_entry(e, path, split) for e in raw]
    layout = cfg.get("layout")
    if layout is not None and (not isinstance(layout, str) or layout.lower() not in LAYOUTS):
        raise DataError(f"{path}: layout must be one of {', '.join(LAYOUTS)}, got {_short(layout)}")
    where = f"{path}: {split} split ({', '.join(str(e) for e in entries)[:200]})"
    files: list[Path] = []
    for entry in entries:
        p = root / _expand(entry, path)   # an absolute entry stays as it is
        if _is_dir(p):
            if _is_dir(p / "Annotations"):
                return SplitSpec("voc", where, names, path=p, layout=layout)
            files += _find_images(p)
        elif _is_file(p) and p.suffix.lower() == ".txt":
            files += _read_image_list(p, root)
        elif _is_file(p) and p.suffix.lower() == ".json":
            return SplitSpec("coco", where, names, path=p, layout=layout)
        else:
            hint = " (cnnlab never downloads datasets named in a data.yaml)" if cfg.get("download") else ""
            raise DataError(f"{path}: {split} path not found: {_short(str(p), 300)}{hint}")
    if not files:
        raise DataError(f"{where}: no images found (looked for {', '.join(IMG_FORMATS)})")
    return SplitSpec("images", where, names, images=files, layout=layout,
                     lists=any(Path(e).suffix.lower() == ".txt" for e in entries))


def _expand(text: str, path: Path) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:   # ~user of an unknown user
        raise DataError(f"{path}: cannot expand {_short(text)} (no such home folder)") from None


def _path_entry(value: Any, path: Path, key: str) -> str | None:
    """A path written in a data.yaml (text; a number is read as its text, e.g. a folder ``2017``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{path}: {key} must be a path (text) or a list of paths, got {type(value).__name__}")
    text = str(value)
    if "\0" in text:
        raise DataError(f"{path}: {key}: a NUL character in the path")
    return text


# --------------------------------------------------------------------------------------------------
# COCO JSON

def load_coco(path: str | os.PathLike, images: str | os.PathLike | None = None,
              names: list[str] | None = None) -> DetectionDataset:
    """A COCO instances JSON (``images``, ``annotations``, ``categories``) -> `DetectionDataset`.

    Category ids (e.g. COCO's 1..90 with gaps) map to contiguous class indices in id order, or to the
    positions of their names in ``names`` when given. Crowd annotations are skipped (as Ultralytics).
    Checked, each a one-line DataError naming the file and the entry: category ids are unique
    integers with a text name; image ids unique and all integers (or all strings), ``file_name`` text,
    ``width``/``height`` (when given) whole numbers in 1..MAX_IMAGE_SIDE; an annotation's image_id and
    category_id name an image and a category; its ``bbox`` is 4 finite numbers [x, y, w, h] with w, h > 0
    overlapping the image (then clipped to it).
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or "images" not in data:
        raise DataError(f"{path}: not a COCO instances file (no 'images' list)")
    imgs, anns, cats = data.get("images"), data.get("annotations", []), data.get("categories")
    if not isinstance(imgs, list) or not isinstance(anns, list):
        raise DataError(f"{path}: 'images' and 'annotations' must be lists")
    if not isinstance(cats, list) or not cats:
        raise DataError(f"{path}: no 'categories' list")
    cat_name: dict[int, str] = {}
    for i, c in enumerate(cats):
        if not (isinstance(c, dict) and _is_id(c.get("id")) and isinstance(c.get("name"), (str, int))
                and not isinstance(c.get("name"), bool)):
            raise DataError(f"{path}: categories[{i}]: needs an integer 'id' and a 'name' (text)")
        if c["id"] in cat_name:
            raise DataError(f"{path}: categories[{i}]: duplicate category id {c['id']}")
        cat_name[c["id"]] = str(c["name"])
    if names is None:
        order = sorted(cat_name)
        names = [cat_name[k] for k in order]
        cat_to_cls = {k: i for i, k in enumerate(order)}
        category_ids = order
    else:
        pos = {n: i for i, n in enumerate(names)}
        cat_to_cls = {}
        for k, n in cat_name.items():
            if n not in pos:
                raise DataError(f"{path}: category {_short(n)} (id {k}) is not in the given names")
            cat_to_cls[k] = pos[n]
        fallback = default_category_ids(names)
        inv = {v: k for k, v in cat_to_cls.items()}
        category_ids = [inv.get(i, fallback[i]) for i in range(len(names))]

    id_to_idx: dict[Any, int] = {}
    id_type = None
    for i, im in enumerate(imgs):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise DataError(f"{path}: images[{i}]: needs 'id' and 'file_name'")
        img_id = im["id"]
        if not (_is_id(img_id) or (isinstance(img_id, str) and img_id)):
            raise DataError(f"{path}: images[{i}]: id must be an integer (or a non-empty string), got "
                            f"{_short(img_id)}")
        id_type = id_type or type(img_id)
        if type(img_id) is not id_type:
            raise DataError(f"{path}: images[{i}]: id {_short(img_id)} is a {type(img_id).__name__}, the "
                            f"first image's id a {id_type.__name__} (image ids must be all of one kind)")
        if img_id in id_to_idx:
            raise DataError(f"{path}: images[{i}]: duplicate image id {_short(img_id)}")
        if not isinstance(im["file_name"], str) or not im["file_name"].strip() or "\0" in im["file_name"]:
            raise DataError(f"{path}: images[{i}]: file_name must be a file name (text), got "
                            f"{_short(im['file_name'])}")
        id_to_idx[img_id] = i
    img_dir = _coco_image_dir(path, imgs, images)

    boxes: list[list[list[float]]] = [[] for _ in imgs]
    where: list[list[str]] = [[] for _ in imgs]
    classes: list[list[int]] = [[] for _ in imgs]
    skipped = 0
    for j, a in enumerate(anns):
        at = f"{path}: annotations[{j}]"
        if not isinstance(a, dict):
            raise DataError(f"{at}: not an object")
        img_id, cat_id = a.get("image_id"), a.get("category_id")
        if type(img_id) is not id_type or img_id not in id_to_idx:
            raise DataError(f"{at}: image_id {_short(img_id)} is not in 'images'")
        if not _is_id(cat_id) or cat_id not in cat_to_cls:
            raise DataError(f"{at}: category_id {_short(cat_id)} is not in 'categories'")
        bb = a.get("bbox")
        if not (isinstance(bb, list) and len(bb) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                              for v in bb)):
            raise DataError(f"{at}: bbox must be 4 numbers [x, y, width, height]")
        xywh = [finite_number(v) for v in bb]
        if any(v is None for v in xywh):
            raise DataError(f"{at}: bbox values must be finite numbers (no NaN or Infinity)")
        x, y, w, h = (float(v) for v in xywh)   # type: ignore[arg-type]
        if w <= 0 or h <= 0:
            raise DataError(f"{at}: bbox width and height must be > 0, got {w:g} x {h:g}")
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1):
            raise DataError(f"{at}: iscrowd must be 0 or 1, got {_short(crowd)}")
        if crowd:
            skipped += 1
            continue
        k = id_to_idx[img_id]
        boxes[k].append([x, y, x + w, y + h])
        where[k].append(at)
        classes[k].append(cat_to_cls[cat_id])

    samples = []
    for i, im in enumerate(imgs):
        file = img_dir / im["file_name"]
        w, h = im.get("width"), im.get("height")
        if w is None or h is None:
            w, h = image_size(file)
        else:
            w, h = (checked_side(v, f"{path}: images[{i}]: {side}") for v, side in ((w, "width"), (h, "height")))
            if not _is_file(file):
                raise DataError(f"missing image: {file} (images[{i}] of {path})")
        b = checked_boxes(np.asarray(boxes[i], dtype=np.float32), w, h, where[i])
        samples.append(DetectionSample(file, w, h, b, np.asarray(classes[i], dtype=np.int64)))
    warns = [f"{path}: skipped {skipped} crowd annotations"] if skipped else []
    return DetectionDataset(samples, list(names), "coco", path,
                            image_ids=[im["id"] for im in imgs], category_ids=list(category_ids),
                            warnings=warns)


def _is_id(value: Any) -> bool:
    """An integer id (not a bool) within int64, as COCO ids are."""
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63


def _coco_image_dir(path: Path, imgs: list[dict], images: Any) -> Path:
    if images is not None:
        d = Path(images).expanduser()
        if not _is_dir(d):
            raise UserError(f"image folder not found: {d}")
        return d
    if not imgs:
        return path.parent
    first = str(imgs[0]["file_name"])
    stem = path.stem.split("_", 1)[-1]  # instances_val2017 -> val2017
    base = path.parent
    candidates = [base, base / "images", base.parent / "images" / stem, base.parent / stem,
                  base.parent / "images", base / stem]
    for d in candidates:
        if _is_file(d / first):
            return d
    raise DataError(f"{path}: cannot find its images (e.g. {_short(first)}); pass images=DIR (--images DIR)")


# --------------------------------------------------------------------------------------------------
# Pascal VOC XML

def load_voc(root: str | os.PathLike, split: str = "val", names: list[str] | None = None,
             images: str | os.PathLike | None = None, keep_difficult: bool = False,
             problems: list[Problem] | None = None) -> DetectionDataset:
    """Pascal VOC XML annotations (parsed with defusedxml) -> `DetectionDataset`.

    ``root`` is a VOC year folder (``Annotations``, ``JPEGImages``, ``ImageSets/Main/<split>.txt``) or
    a folder of XML files beside their images (LabelImg). Boxes are kept as written (VOC pixels),
    clipped to the image; a box with a non-finite coordinate, without area or wholly outside its
    image, and a ``<size>`` that is not a whole number of pixels in 1..MAX_IMAGE_SIDE, are refused
    (a DataError naming the file and the object). ``problems``: see `load_yolo`.
    """
    root = Path(root)
    ann_dir = root / "Annotations" if _is_dir(root / "Annotations") else root
    jpeg = root / "JPEGImages"
    img_dir = Path(images) if images is not None else jpeg if _is_dir(jpeg) else None
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if _is_file(split_file):
        ids = [ln.split()[0] for ln in _read_text(split_file, "image set").splitlines() if ln.strip()]
        xml_files = [ann_dir / f"{i}.xml" for i in ids]
        for i, f in enumerate(xml_files, 1):
            if not _is_file(f):
                raise DataError(f"{split_file}:{i}: annotation not found: {_short(str(f), 300)}")
    else:
        xml_files = sorted(ann_dir.glob("*.xml"))
    if not xml_files:
        raise DataError(f"{root}: no VOC .xml annotations found")
    parsed = []
    for f in xml_files:
        try:
            parsed.append((f, _parse_voc_xml(f, img_dir, keep_difficult, problems=problems)))
        except DataError as e:
            if problems is None:
                raise
            kind = "image" if str(e).startswith(("missing image", "unreadable image")) else "syntax"
            problems.append(Problem(kind, str(e), f))
    return _voc_dataset(parsed, names, root, problems)


def load_voc_beside(image_files: list[Path], names: list[str] | None = None, source: Path | None = None,
                    keep_difficult: bool = False, xml_files: dict[Path, Path] | None = None,
                    problems: list[Problem] | None = None) -> DetectionDataset:
    """Images with a VOC ``.xml`` beside each (LabelImg, CVAT "XML beside the image") -> `DetectionDataset`.

    ``xml_files`` maps an image to its XML (default: `find_label_files`); an image without one is a
    negative (no boxes), as Ultralytics treats an image without a label file. ``problems``: see
    `load_yolo`.
    """
    image_files = [Path(f) for f in image_files]
    xml_files = xml_files if xml_files is not None else find_label_files(image_files)[1]
    parsed: list[tuple[Path, tuple]] = []
    for img in image_files:
        xml = xml_files.get(img)
        try:
            if xml is None:
                w, h = image_size(img)
                parsed.append((img, (img, w, h, [], np.zeros((0, 4), np.float32))))
            else:
                parsed.append((xml, _parse_voc_xml(xml, img.parent, keep_difficult, image=img, problems=problems)))
        except DataError as e:
            if problems is None:
                raise
            kind = "image" if str(e).startswith(("missing image", "unreadable image")) else "syntax"
            problems.append(Problem(kind, str(e), xml or img))
    ds = _voc_dataset(parsed, names, Path(source or "."), problems)
    ds.image_ids = default_image_ids(ds.samples)
    return ds


def _voc_dataset(parsed: list[tuple[Path, tuple]], names: list[str] | None, source: Path,
                 problems: list[Problem] | None = None) -> DetectionDataset:
    """Samples of parsed VOC files ``[(xml, (image, w, h, object names, boxes))]``; class names are
    ``names`` or (not given) VOC's 20 when every name found is one of them, else the names found, sorted."""
    if names is None:
        found = sorted({n for _, p in parsed for n in p[3]})
        names = list(VOC_NAMES) if set(found) <= set(VOC_NAMES) else found
    pos = {n: i for i, n in enumerate(names)}
    samples = []
    for f, (file, w, h, objs, boxes) in parsed:
        keep = []
        for k, n in enumerate(objs):
            if n in pos:
                keep.append(k)
            else:
                report(problems, Problem("class", f"{f}: unknown class {_short(n)} (not in the {len(names)} "
                                                  f"names: {_short(', '.join(names), 80)})", f))
        cls = np.asarray([pos[objs[k]] for k in keep], dtype=np.int64)
        samples.append(DetectionSample(file, w, h, boxes[keep].reshape(-1, 4), cls))
    return DetectionDataset(samples, list(names), "voc", source)


def _parse_voc_xml(path: Path, img_dir: Path | None, keep_difficult: bool, image: Path | None = None,
                   problems: list[Problem] | None = None) -> tuple[Path, int, int, list[str], np.ndarray]:
    """One VOC XML -> ``(image, width, height, object names, xyxy boxes)``; ``image``: the image it
    belongs to when known (the one it lies beside), else found from ``<filename>``. ``problems``: see
    `_parse_yolo_lines` (a bad object is recorded and skipped; a file that is not XML still raises)."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as ET
    from defusedxml import DefusedXmlException

    try:
        tree = ET.parse(path)
    except ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else "?"
        raise DataError(f"{path}:{line}: malformed XML ({str(e).split(':')[0]})") from None
    except DefusedXmlException as e:
        raise DataError(f"{path}: refused unsafe XML ({type(e).__name__})") from None
    except (OSError, ValueError, RecursionError) as e:
        raise DataError(f"{path}: unreadable XML ({type(e).__name__})") from None
    root = tree.getroot()
    if root.tag != "annotation":
        raise DataError(f"{path}: not a VOC annotation (root element <{str(root.tag)[:40]}>)")
    filename = (root.findtext("filename") or "").strip()
    file = image if image is not None else _voc_image(path, filename, img_dir)
    w_text, h_text = (root.findtext(f"size/{side}") for side in ("width", "height"))
    if (w_text or "").strip() or (h_text or "").strip():
        w, h = (checked_side(t or "", f"{path}: <size><{side}>") for t, side in ((w_text, "width"),
                                                                                  (h_text, "height")))
        if not _is_file(file):
            raise DataError(f"missing image: {file} (named by {path})")
    else:   # no size written: read it from the image
        w, h = image_size(file)
    objs, boxes, where = [], [], []
    for k, obj in enumerate(root.iter("object"), 1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            report(problems, Problem("syntax", f"{path}: <object> {k} has no <name>", path))
            continue
        at = f"{path}: <object> {k} ({_short(name)})"
        if not keep_difficult and (obj.findtext("difficult") or "0").strip() == "1":
            continue
        bb = obj.find("bndbox")
        if bb is None:
            report(problems, Problem("syntax", f"{at} has no <bndbox>", path))
            continue
        texts = [bb.findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")]
        values = [finite_text(t) for t in texts]
        if any(v is None for v in values):
            bad = next(i for i, v in enumerate(values) if v is None)
            tag = ("xmin", "ymin", "xmax", "ymax")[bad]
            text = (texts[bad] or "").strip()
            report(problems, Problem("nan" if _is_float(text) else "syntax",
                                     f"{at}: bndbox needs finite numbers xmin/ymin/xmax/ymax, got <{tag}> "
                                     f"{_short(text)}", path))
            continue
        x1, y1, x2, y2 = values
        if x2 < x1 or y2 < y1:  # type: ignore[operator]
            report(problems, Problem("area", f"{at}: xmax/ymax smaller than xmin/ymin", path))
            continue
        objs.append(name)
        boxes.append(values)
        where.append(at)
    kept, idx = valid_boxes(np.asarray(boxes, dtype=np.float64), w, h, where, problems, path)
    return file, w, h, [objs[i] for i in idx], kept


def _voc_image(xml: Path, filename: str, img_dir: Path | None) -> Path:
    dirs = [d for d in (img_dir, xml.parent, xml.parent.parent / "JPEGImages") if d is not None]
    candidates = [d / filename for d in dirs] if filename else []
    candidates += [d / (xml.stem + ext) for d in dirs for ext in IMG_FORMATS]
    found = next((f for f in candidates if _is_file(f)), None)
    if found is not None:
        return found
    raise DataError(f"missing image: {filename or xml.stem} (named by {xml})")


# --------------------------------------------------------------------------------------------------
# converters

def to_coco_json(dataset: DetectionDataset | list[DetectionSample], names: list[str] | None = None,
                 path: str | os.PathLike | None = None) -> dict:
    """The dataset as a COCO instances dict (written atomically to ``path`` when given)."""
    if not isinstance(dataset, DetectionDataset):
        if names is None:
            raise ValueError("to_coco_json(samples, names): names are required with a list of samples")
        dataset = DetectionDataset(list(dataset), list(names), "yolo", Path("."))
    images, annotations = coco_instances(dataset.samples, dataset.image_ids, dataset.category_ids, ndigits=3)
    out = {
        "info": {"description": f"converted by cnnlab from {dataset.source}"},
        "images": images, "annotations": annotations,
        "categories": [{"id": int(cid), "name": n, "supercategory": ""}
                       for cid, n in zip(dataset.category_ids, dataset.names, strict=True)],
    }
    if path is not None:
        from cnnlab.io import write_json

        write_json(path, out)
    return out


def coco_instances(samples: list[DetectionSample], image_ids: Any, category_ids: Any,
                   ndigits: int | None = None) -> tuple[list[dict], list[dict]]:
    """COCO ``images`` and ``annotations`` of labelled samples (class k is category ``category_ids[k]``;
    other class ids are left out), numbers rounded to ``ndigits`` when given."""
    from cnnlab.detect.metrics import xyxy2xywh

    def num(v: Any) -> float:
        return float(v) if ndigits is None else round(float(v), ndigits)

    images, anns = [], []
    for s, img_id in zip(samples, image_ids, strict=True):
        images.append({"id": img_id, "file_name": s.image_path.name, "width": s.width, "height": s.height})
        for box, c in zip(xyxy2xywh(s.boxes), s.class_ids, strict=True):
            if 0 <= c < len(category_ids):
                anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(category_ids[c]),
                             "bbox": [num(v) for v in box], "area": num(float(box[2]) * float(box[3])),
                             "iscrowd": 0})
    return images, anns


def yolo_label_text(boxes: np.ndarray, class_ids: np.ndarray, width: int, height: int) -> str:
    """A YOLO label file's text: ``class cx cy w h`` per xyxy pixel box, normalised to the image size."""
    from cnnlab.detect.metrics import xyxy2yolo

    rows = xyxy2yolo(boxes, width, height)
    return "".join(f"{int(c)} " + " ".join(f"{float(v):.6f}" for v in r) + "\n"
                   for c, r in zip(class_ids, rows, strict=True))


def write_yolo_labels(dataset: DetectionDataset, out_dir: str | os.PathLike,
                      data_yaml: bool = True) -> Path:
    """Write one YOLO txt label file per image into ``out_dir`` (+ a names-only ``data.yaml``)."""
    from cnnlab.io import atomic_write_text, write_yaml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for s in dataset.samples:
        text = yolo_label_text(s.boxes, s.class_ids, s.width, s.height)
        atomic_write_text(out / f"{s.image_path.stem}.txt", text)
    if data_yaml:
        write_yaml(out / "data.yaml", {"names": dict(enumerate(dataset.names))})
    return out
