"""Plain data types of the detection contract (docs/architecture.md): `Detections` (what every
detector backend returns for one image), `DetectionSample` (one labelled image of a dataset) and
`ImageSize` (a detector's network input, width x height, from the CLI down to the backends).

Owned by the detection-evaluation work (issue 3); extend additively, keep the contract's fields.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cnnlab.errors import UserError

STRIDE = 32  # YOLO's largest stride: input sides are multiples of it


class ImageSize(NamedTuple):
    """A detector's network input in pixels: ``width`` x ``height`` (a tuple ``(w, h)``)."""

    width: int
    height: int

    @classmethod
    def parse(cls, value: ImageSize | int | str | tuple[int, int] | list[int]) -> ImageSize:
        """``320`` or ``"320"`` (square), ``"416x320"`` or ``(416, 320)`` (width, height); sides are
        checked to be positive multiples of 32. A bad value is a one-line UserError; an ImageSize
        (e.g. the fixed input of a foreign ONNX file) is returned as it is."""
        if isinstance(value, cls):
            return value
        try:
            if isinstance(value, str):
                parts = re.split(r"\s*[x×,]\s*", value.strip().lower())
                if len(parts) not in (1, 2):
                    raise ValueError
                w, h = int(parts[0]), int(parts[-1])
            elif isinstance(value, (tuple, list)):
                w, h = map(operator.index, value)   # exactly two
            elif isinstance(value, bool):
                raise ValueError
            else:
                w = h = operator.index(value)
        except (TypeError, ValueError):
            raise UserError(f"imgsz must be a size like 320 or 416x320 (width x height), got {value!r}") from None
        if w < STRIDE or h < STRIDE or w % STRIDE or h % STRIDE:
            raise UserError(f"imgsz must be a positive multiple of {STRIDE} (YOLO's largest stride), got {w}x{h}")
        return cls(int(w), int(h))

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width): the order of array shapes."""
        return self.height, self.width

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass
class Detections:
    """Boxes of one image, in original-image pixels, with scores, class ids and per-stage timing."""

    boxes: np.ndarray            # float32 (N, 4) xyxy in original-image pixels
    scores: np.ndarray           # float32 (N,)
    class_ids: np.ndarray        # int64 (N,)
    names: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # the BGR image, when known

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, np.int64).reshape(-1)
        n = len(self.boxes)
        if len(self.scores) != n or len(self.class_ids) != n:
            raise ValueError(f"Detections: {n} boxes but {len(self.scores)} scores and {len(self.class_ids)} "
                             "class ids")
        self.names = list(self.names)
        self.timing = dict(self.timing)

    @classmethod
    def empty(cls, names: list[str] | None = None, timing: dict[str, float] | None = None
              ) -> Detections:
        """No detections (an image where nothing was found)."""
        return cls([], [], [], names or [], timing or {})

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def name_of(self, class_id: int) -> str:
        """The class name of ``class_id`` (its number when the model has no name for it)."""
        cid = int(class_id)
        return self.names[cid] if 0 <= cid < len(self.names) else str(cid)

    def select(self, index: Any) -> Detections:
        """A new `Detections` with the rows picked by a boolean mask or an index array."""
        idx = np.asarray(index)
        if idx.dtype != bool:
            idx = idx.astype(np.int64).reshape(-1)
        return Detections(self.boxes[idx], self.scores[idx], self.class_ids[idx],
                          list(self.names), dict(self.timing), self.image)

    def filter(self, conf: float | None = None, classes: list[int] | None = None) -> Detections:
        """Keep detections with score >= ``conf`` and (optionally) a class id in ``classes``."""
        keep = np.ones(len(self), dtype=bool) if conf is None else self.scores >= conf
        if classes is not None:
            keep &= np.isin(self.class_ids, np.asarray(list(classes), dtype=np.int64))
        return self.select(keep)

    def to_dicts(self) -> list[dict]:
        """One plain dict per detection: class_id, name, score, box [x1, y1, x2, y2]."""
        return [
            {"class_id": int(c), "name": self.name_of(int(c)), "score": round(float(s), 6),
             "box": [round(float(v), 2) for v in b]}
            for b, s, c in zip(self.boxes, self.scores, self.class_ids, strict=True)
        ]

    @classmethod
    def from_dicts(cls, items: list[dict], names: list[str] | None = None) -> Detections:
        """Inverse of `to_dicts`."""
        return cls([d["box"] for d in items], [d["score"] for d in items], [d["class_id"] for d in items],
                   names or [])

    # -- looking at them (notebooks, scripts) ---------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """How many of each class, most frequent first: ``{"person": 3, "car": 1}``."""
        names, n = np.unique([self.name_of(int(c)) for c in self.class_ids], return_counts=True)
        return {str(k): int(v) for k, v in sorted(zip(names, n, strict=True), key=lambda kv: -kv[1])}

    def __repr__(self) -> str:
        """``Detections(3: person 0.91, person 0.72, car 0.55; 80 class names)`` (at most 5 listed)."""
        order = np.argsort(-self.scores, kind="stable")[:5]
        items = ", ".join(f"{self.name_of(int(self.class_ids[i]))} {float(self.scores[i]):.2f}" for i in order)
        more = f", +{len(self) - 5} more" if len(self) > 5 else ""
        img = f", image {self.image.shape[1]}x{self.image.shape[0]}" if self.image is not None else ""
        return f"Detections({len(self)}{': ' + items if items else ''}{more}; {len(self.names)} class names{img})"

    def _image(self, image: np.ndarray | None) -> np.ndarray:
        img = self.image if image is None else image
        if img is None:
            raise UserError("no image to draw on: pass image= (BGR array) or get the detections from a Detector")
        return img

    def plot(self, image: np.ndarray | None = None, conf: float | None = None, show_scores: bool = True
             ) -> np.ndarray:
        """The image (BGR; default: the one detected on) with boxes, class names and scores drawn
        (a new array; ``conf`` hides lower scores)."""
        from cnnlab.detect.draw import draw_detections

        shown = self if conf is None else self.filter(conf=conf)
        return draw_detections(self._image(image), shown, show_scores=show_scores)

    def save(self, path: str | Path, image: np.ndarray | None = None, conf: float | None = None) -> Path:
        """Write `plot` to ``path`` (its suffix picks the format: .jpg, .png...), atomically."""
        from cnnlab.detect.draw import write_image

        return write_image(path, self.plot(image, conf))

    def show(self, image: np.ndarray | None = None, conf: float | None = None) -> None:
        """Display `plot`: inline in a notebook, else in a matplotlib window (where one can open)."""
        rgb = np.ascontiguousarray(self.plot(image, conf)[..., ::-1])
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            from PIL import Image

            display(Image.fromarray(rgb))
            return
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(rgb.shape[1] / 100, rgb.shape[0] / 100))
        ax.imshow(rgb)
        ax.set_axis_off()
        ax.set_title(repr(self), fontsize=8)
        plt.show()

    def _repr_html_(self) -> str:
        """A notebook shows the image with the boxes (when known) and a table of the detections."""
        from cnnlab.notebook import html_table, png_data_uri

        rows = [[d["name"], round(d["score"], 3), ", ".join(f"{v:.0f}" for v in d["box"])]
                for d in sorted(self.to_dicts(), key=lambda d: -d["score"])[:20]]
        notes = [f"... and {len(self) - 20} more"] if len(self) > 20 else []
        picture = png_data_uri(self.plot()) if self.image is not None else None
        counts = ", ".join(f"{n} {k}" for k, n in self.counts().items())
        return html_table(rows, ("class", "score", "box x1, y1, x2, y2"), notes=notes, image=picture,
                          title=f"{len(self)} detections" + (f": {counts}" if counts else ""))


@dataclass
class DetectionSample:
    """One image of a labelled detection dataset: path, size, and its boxes (xyxy pixels)."""

    image_path: Path
    width: int
    height: int
    boxes: np.ndarray            # float32 (N, 4) xyxy pixels
    class_ids: np.ndarray        # int64 (N,)

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.width = int(self.width)
        self.height = int(self.height)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.class_ids = np.asarray(self.class_ids, np.int64).reshape(-1)
        if len(self.boxes) != len(self.class_ids):
            raise ValueError(f"DetectionSample {self.image_path}: {len(self.boxes)} boxes but "
                             f"{len(self.class_ids)} class ids")

    def __len__(self) -> int:
        return int(len(self.boxes))
