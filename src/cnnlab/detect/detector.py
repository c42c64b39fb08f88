"""``Detector``: one YOLO detector API over three backends, with the same pre- and post-processing.

    det = Detector(cfg="yolo-fastest-1.1.cfg", weights="yolo-fastest-1.1.weights",
                   names="coco.names", backend="opencv", imgsz="416x320")
    found = det(cv2.imread("street.jpg"))          # Detections in original-image pixels
    blob, meta = det.preprocess(img); raw = det.infer(blob); found = det.postprocess(raw, meta)

The three stages are separate so a real-time pipeline can time and overlap them.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from cnnlab.darknet.cfg import UnsupportedCfg
from cnnlab.detect.backends import backend_class, create_backend
from cnnlab.detect.processing import ImageMeta, guess_format, postprocess_output, preprocess_image
from cnnlab.detect.types import Detections, ImageSize
from cnnlab.errors import UserError
from cnnlab.sources import identify, resolve


class Detector:
    """A YOLO detector: Darknet cfg+weights, a cnnlab checkpoint/run folder, or a YOLO ONNX export
    (found and loaded by ``cnnlab.sources``; ``self.source`` is the resolved model).

    ``imgsz`` is the network input (``320``, ``"416x320"`` or ``(width, height)``; see ``ImageSize``);
    ``None`` uses the model's own size (the cfg's [net] width/height, the checkpoint's or the ONNX
    input). An ONNX file with a fixed input size always runs at that size. ``names`` (a list, an
    ``{id: name}`` mapping or a names file) replace the model's class names. ``conf`` thresholds
    objectness * class probability; ``iou`` is the class-aware NMS threshold; ``letterbox`` keeps the
    aspect ratio (grey border) instead of a plain resize (``None``: what the model recorded — ONNX
    metadata or checkpoint — else True). ``threads`` caps the backend's CPU threads (None: the backend's
    choice). ``backend``: ``auto`` (the fastest installed for the model: opencv for a Darknet-family model
    OpenCV runs as is, onnxruntime for an ONNX file or when OpenCV cannot, else torch; a CUDA device:
    torch; see `cnnlab.detect.backends.auto_choices`), ``torch``, ``opencv`` or ``onnxruntime``.
    """

    def __init__(self, cfg: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                 model: str | os.PathLike | None = None, names: str | os.PathLike | Sequence[str] | None = None,
                 backend: str = "auto", imgsz: ImageSize | int | str | tuple[int, int] | None = None,
                 conf: float = 0.25, iou: float = 0.45, letterbox: bool | None = None, device: str = "auto",
                 max_det: int = 300, threads: int | None = None) -> None:
        for what, v in (("conf", conf), ("iou", iou)):
            if not 0.0 <= v <= 1.0:
                raise UserError(f"{what} must be in [0, 1], got {v}")
        if max_det < 1:
            raise UserError(f"max_det must be >= 1, got {max_det}")
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        located = identify(model, task="detect", cfg=cfg, weights=weights)
        requested = ImageSize.parse(imgsz) if imgsz is not None else None
        auto = backend.strip().lower() == "auto"
        cls = None if auto else backend_class(backend)
        if cls is not None:
            cls.check_source(located)   # before loading: the torch backend cannot run an .onnx
        try:
            self.source = resolve(located, task="detect", classes=names)
        except UnsupportedCfg as e:  # cnnlab cannot build the cfg: OpenCV reads the files itself
            if (cls is not None and cls.name != "opencv") or located.kind != "darknet":
                raise
            from cnnlab.sources.detect import darknet_files_only

            self.source = darknet_files_only(located, names, str(e))
            try:
                self.backend = create_backend("opencv", self.source, requested, device, threads)
            except UserError:
                if auto:      # OpenCV cannot read it either: cnnlab's own reason is the clearer error
                    raise e from None
                raise
            if auto:
                self.backend.reason = "auto: a Darknet cfg only OpenCV builds"
            warnings.warn(f"{e}; cnnlab cannot build this cfg, so OpenCV runs it as it reads it (the torch and "
                          "onnxruntime backends cannot)", UserWarning, stacklevel=2)
        else:
            self.backend = create_backend(backend, self.source, requested, device, threads)
        self.imgsz: ImageSize = self.backend.fixed_size or requested or self.source.imgsz or ImageSize(416, 416)
        self.names = list(self.source.classes)
        self.letterbox = bool(next(v for v in (letterbox, self.source.letterbox, True) if v is not None))
        self.output_format = self.backend.output_format or ""
        import torchvision.ops  # noqa: F401  (NMS; imported now so the first frame's timing is fair)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def backend_line(self) -> str:
        """One line naming the backend, why it was chosen (``auto``), its threads and the input size:
        what `detect`, `detect-eval`, `stream` and `sweep` print."""
        w, h = self.imgsz
        return f"{self.backend.describe()}, input {w}x{h}"

    # -- the three stages -------------------------------------------------------------------------
    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, ImageMeta]:
        """Letterbox (or resize) to the input size, BGR->RGB, /255: ``(blob (1,3,H,W) float32, meta)``."""
        return preprocess_image(image_bgr, self.imgsz, self.letterbox)

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        """Run the backend on a blob; raw outputs in ``self.output_format``."""
        raw = self.backend.infer(blob)
        if not self.output_format:  # a foreign ONNX export: decide its layout once from the shape
            self.output_format = guess_format(np.asarray(raw[0]).shape, len(self.names))
        return raw

    def postprocess(self, raw: list[np.ndarray], meta: ImageMeta) -> Detections:
        """Decode, threshold at ``conf``, class-aware NMS at ``iou``, boxes back to the original image."""
        if not self.output_format:
            self.output_format = guess_format(np.asarray(raw[0]).shape, len(self.names))
        return postprocess_output(raw, self.output_format, meta, self.names, self.conf, self.iou, self.max_det)

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        """Detect objects in one BGR image; ``timing`` holds milliseconds per stage."""
        t0 = time.perf_counter()
        blob, meta = self.preprocess(image_bgr)
        t1 = time.perf_counter()
        raw = self.infer(blob)
        t2 = time.perf_counter()
        det = self.postprocess(raw, meta)
        det.timing = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                      "postprocess": (time.perf_counter() - t2) * 1e3}
        det.image = image_bgr      # for det.plot() / save() / show() (a reference, not a copy)
        return det

    def stream(self, source: int | str | os.PathLike | Any, **options: Any) -> Iterator[Any]:
        """Detect frame by frame: yields a `cnnlab.detect.pipeline.FrameResult` per frame of ``source``
        (a video file, a camera index, a stream URL, an image folder or a FrameSource), as it is
        processed; ``r.detections`` (with ``.plot()``), ``r.image``, ``r.annotated``, ``r.stats``.

            for r in det.stream("street.mp4", max_frames=100):
                print(r.index, r.detections)

        The capture is released when the loop ends, breaks or the generator is closed. ``options`` go
        to `cnnlab.detect.pipeline.Pipeline` (max_fps, duration, max_frames, capture, web="HOST:PORT"...).
        """
        from cnnlab.detect.pipeline.stream import stream_results

        return stream_results(self, source, **options)

    def warmup(self, runs: int = 1) -> None:
        """Run the model on a blank image (first calls allocate and are slow)."""
        img = np.full((*self.imgsz.hw, 3), 114, np.uint8)
        for _ in range(runs):
            self(img)

    def __repr__(self) -> str:
        return (f"Detector(backend={self.backend_name!r}, model={self.source.describe()!r}, imgsz={self.imgsz}, "
                f"classes={len(self.names)}, conf={self.conf}, iou={self.iou}, letterbox={self.letterbox})")
