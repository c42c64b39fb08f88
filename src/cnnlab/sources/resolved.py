"""``Resolved``: a loaded model of either task with everything a command needs to feed and describe it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError


@dataclass
class Resolved:
    """A model ready to use, whatever it came from.

    ``model`` is a torch module (eval mode, on the requested device, for what the resolver built;
    a module you pass in is used as it is), an ONNX Runtime classifier (``runtime`` "onnxruntime"),
    a TorchScript module ("torchscript"), or None for a detector ONNX file ("onnx": the detector
    backend, onnxruntime or OpenCV, opens ``path``).
    """

    task: str                                   # "classify" | "detect"
    kind: str                                   # see cnnlab.sources.KINDS
    model: Any
    runtime: str                                # "torch" | "onnxruntime" | "torchscript" | "onnx"
    classes: list[str]
    source: str                                 # what was loaded: a file path or a model name
    name: str                                   # short label: the architecture, file stem or model name
    path: Path | None = None                    # the model file (checkpoint, .onnx, .cfg, TorchScript)
    run_dir: Path | None = None
    spec: dict[str, Any] | None = None          # cnnlab model spec (name, num_classes, in_chans, ...)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # classifiers: how images become the input (cnnlab.deploy.metadata.Preprocess)
    preprocessing: Any = None
    defaults_assumed: bool = False              # preprocessing is a default, not what the model was trained with
    # detectors
    imgsz: Any = None                           # cnnlab.detect.types.ImageSize the model was made for
    fixed_imgsz: bool = False                   # the model only runs at imgsz (a static ONNX input)
    letterbox: bool | None = None               # preprocessing recorded with the model
    num_classes: int | None = None              # classes the model predicts (None: unknown)
    output_format: str = ""                     # detector ONNX layout (darknet | yolov5 | yolov8; "": guess)
    weights: Path | None = None                 # Darknet .weights beside the cfg

    # -- classifiers --------------------------------------------------------------------------------
    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self._pre().mean)

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self._pre().std)

    @property
    def img_size(self) -> int | None:
        return self._pre().img_size

    @property
    def in_chans(self) -> int:
        return int(self._pre().in_chans)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        pre = self._pre()
        if not pre.img_size:
            raise UserError(f"{self.name}: unknown input size; pass img_size (e.g. --input 3x32x32)")
        return (int(pre.in_chans), int(pre.img_size), int(pre.img_size))

    def _pre(self) -> Any:
        if self.preprocessing is None:
            raise UserError(f"{self.name} is a detector: it has no classifier preprocessing")
        return self.preprocessing

    # -- both ---------------------------------------------------------------------------------------
    def describe(self) -> str:
        """The source in one short phrase (a path, ``cfg + weights`` or a name)."""
        return f"{self.source} + {self.weights}" if self.weights is not None else self.source
