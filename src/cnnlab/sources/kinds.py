"""What a model source is: :func:`identify` turns a path, a name or an object into a :class:`Located`.

This is the one place that decides between a run folder, a checkpoint (classification or detection,
told apart by the checkpoint's ``format``), an ONNX file, a Darknet cfg + weights pair, a TorchScript
archive, a registered model name and a module. Nothing heavy is loaded here except a peek at a
checkpoint's ``format`` (memory-mapped, so the tensors are not read).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import ModelError, UserError

CLASSIFY, DETECT = "classify", "detect"
TASKS = (CLASSIFY, DETECT)

KINDS = ("classify-run", "detect-run", "classify-checkpoint", "detect-checkpoint", "onnx", "darknet",
         "torchscript", "model-name", "module")

# checkpoint formats written by cnnlab.engine.checkpoint and cnnlab.detect.checkpoint
FORMATS = {"cnnlab.classify": CLASSIFY, "cnnlab.detect": DETECT}
RUN_CHECKPOINTS = ("weights/best.pt", "weights/last.pt", "best.pt")
NAMES_FILES = ("*.names", "names.yaml", "names.yml", "data.yaml", "data.yml", "classes.txt")
EXPECTED = "a run folder, a .pt checkpoint, an .onnx file, a Darknet .cfg (+ .weights) or a model name"


@dataclass(frozen=True)
class Located:
    """An identified model source: its ``kind`` (one of :data:`KINDS`), its task and its files."""

    kind: str
    task: str | None                    # "classify" | "detect"; None for an ONNX file not yet opened
    path: Path | None = None            # the model file: checkpoint, .onnx, .cfg or TorchScript archive
    weights: Path | None = None         # Darknet .weights (kind "darknet")
    run_dir: Path | None = None         # the run folder the model belongs to
    names_file: Path | None = None      # class names found beside a Darknet/ONNX model
    name: str | None = None             # registered model name (kind "model-name")
    module: Any = None                  # the nn.Module given (kind "module")

    def describe(self) -> str:
        """The source in one short phrase (a path, ``cfg + weights`` or a name)."""
        if self.kind == "darknet":
            return f"{self.path} + {self.weights}"
        if self.path is not None:
            return str(self.path)
        return self.name or type(self.module).__name__


def identify(source: Any = None, *, task: str | None = None, cfg: str | os.PathLike | None = None,
             weights: str | os.PathLike | None = None) -> Located:
    """Say what ``source`` is; anything missing, ambiguous or unknown is a one-line UserError.

    ``cfg``/``weights`` name a Darknet model instead of ``source``. ``task`` ("classify" or
    "detect") is what the caller needs: a source of the other task is refused here.
    """
    if task is not None and task not in TASKS:
        raise UserError(f"unknown task {task!r} (choose {' or '.join(TASKS)})")
    if cfg is not None or weights is not None:
        if source is not None:
            raise UserError("give either --model or --cfg/--weights, not both")
        if cfg is None or weights is None:
            raise UserError("a Darknet model needs both --cfg and --weights")
        loc = Located("darknet", DETECT, path=_need_file(cfg, "cfg file"), weights=_need_file(weights, "weights file"))
    elif source is None:
        raise UserError(f"no model given: pass {EXPECTED}" + (" (or --cfg and --weights)" if task == DETECT else ""))
    else:
        loc = _identify(source, task)
    return _check_task(loc, task)


def _identify(source: Any, task: str | None) -> Located:
    if isinstance(source, Located):
        return source
    if not isinstance(source, (str, os.PathLike)):
        from torch import nn

        if not isinstance(source, nn.Module):
            raise UserError(f"expected {EXPECTED}, got a {type(source).__name__}")
        from cnnlab.darknet.model import DarknetModel

        detector = isinstance(source, DarknetModel) or getattr(source, "anchor_free", False)
        return Located("module", DETECT if detector else CLASSIFY, module=source)
    from cnnlab.paths import find_path

    path = Path(source).expanduser()
    if not path.exists() and path.suffix:  # a bare file name under the data root's weights/ or yolo/
        path = find_path(source, "weights") or path
    if path.is_dir():
        return _folder(path, task)
    if path.is_file():
        return _file(path, task)
    text = str(source)
    if not text.startswith("timm/") and (any(ch in text for ch in "/\\") or path.suffix):
        raise UserError(f"model not found: {text} (expected {EXPECTED})")
    from cnnlab.data.weights import RECIPE_WEIGHTS, recipe_checkpoint

    if text in RECIPE_WEIGHTS:  # a cnnlab recipe's published weights, once downloaded
        return _file(recipe_checkpoint(text), task)
    return _model_name(text)


def _need_file(path: str | os.PathLike, what: str) -> Path:
    from cnnlab.paths import find_file

    p = find_file(path, what.split()[0], what=what)
    if not p.is_file():
        raise UserError(f"{what} not found: {p} (a folder)")
    return p


def _file(path: Path, task: str | None) -> Located:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return Located("onnx", task or onnx_task(path), path=path)
    if suffix in (".cfg", ".weights"):
        cfg, weights = path.with_suffix(".cfg"), path.with_suffix(".weights")
        if not (cfg.is_file() and weights.is_file()):
            missing = weights if suffix == ".cfg" else cfg
            raise UserError(f"no {missing.suffix} beside {path} (expected {missing.name}); "
                            "pass --cfg and --weights")
        return Located("darknet", DETECT, path=cfg, weights=weights, names_file=names_beside(path.parent))
    if is_torchscript(path):
        return Located("torchscript", CLASSIFY, path=path)
    found = checkpoint_task(path)
    return Located(f"{found}-checkpoint", found, path=path, run_dir=run_dir_of(path))


def _folder(folder: Path, task: str | None) -> Located:
    """A run folder (``weights/best.pt``, ``weights/last.pt``), or a folder with one .onnx or one cfg+weights pair."""
    for rel in RUN_CHECKPOINTS:
        ckpt = folder / rel
        if ckpt.is_file():
            found = checkpoint_task(ckpt)
            return Located(f"{found}-run", found, path=ckpt, run_dir=folder)
    names = names_beside(folder)
    cfgs = sorted(folder.glob("*.cfg"))
    weights = sorted(folder.glob("*.weights"))
    if cfgs and weights:
        pairs = [(c, c.with_suffix(".weights")) for c in cfgs if c.with_suffix(".weights").is_file()]
        if len(pairs) == 1:
            return Located("darknet", DETECT, path=pairs[0][0], weights=pairs[0][1], names_file=names)
        if len(cfgs) == 1 and len(weights) == 1:
            return Located("darknet", DETECT, path=cfgs[0], weights=weights[0], names_file=names)
        raise UserError(f"{folder} holds several cfg/weights files ({', '.join(c.name for c in cfgs)}); "
                        "pass --cfg and --weights")
    onnx = sorted(folder.glob("*.onnx"))
    if len(onnx) == 1:
        return Located("onnx", task or onnx_task(onnx[0]), path=onnx[0], names_file=names)
    if len(onnx) > 1:
        raise UserError(f"{folder} holds several .onnx files ({', '.join(p.name for p in onnx[:3])}); pass one")
    if (folder / "config.yaml").is_file():
        raise UserError(f"{folder}: run folder without a checkpoint (no weights/best.pt or weights/last.pt)")
    raise UserError(f"{folder} holds no model (weights/best.pt, a .onnx file, or a .cfg with its .weights)")


def _model_name(text: str) -> Located:
    from cnnlab.models import get_entry, is_model_name

    if not is_model_name(text):
        try:
            get_entry(text)
        except ModelError as e:
            raise ModelError(f"model not found: no file or folder {text!r}, and {e}") from None
    return Located("model-name", CLASSIFY, name=text)


def _check_task(loc: Located, task: str | None) -> Located:
    if task is None or loc.task in (None, task):
        return loc
    what = {CLASSIFY: "a classifier", DETECT: "a detector"}
    use = "cnnlab detect / detect-eval / stream" if loc.task == DETECT else "cnnlab evaluate / predict / export"
    raise UserError(f"{loc.describe()} is {what[loc.task]}, not {what[task]} (use {use})")


# ------------------------------------------------------------------------------------------ peeks
def checkpoint_task(path: Path) -> str:
    """``classify`` or ``detect`` from a checkpoint's ``format`` (memory-mapped: tensors are not read)."""
    from cnnlab.io import torch_load_safe

    ckpt = torch_load_safe(path, mmap=True)
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if not isinstance(fmt, str) or fmt not in FORMATS:  # a list or dict "format" is not hashable
        shown = repr(fmt[:60]) if isinstance(fmt, str) else "None" if fmt is None else f"a {type(fmt).__name__}"
        got = f"format {shown}" if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}"
        raise UserError(f"{path}: not a cnnlab checkpoint ({got}; expected {' or '.join(FORMATS)})")
    return FORMATS[fmt]


def onnx_task(path: Path) -> str:
    """``classify`` or ``detect`` from an ONNX file's metadata, else from its output rank (3-D: YOLO)."""
    meta = onnx_metadata(path)
    if "cnnlab" in meta:
        return CLASSIFY
    if "cnnlab_format" in meta:
        return DETECT
    import json

    return DETECT if len(json.loads(meta["_output_shape"])) == 3 else CLASSIFY


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, plus ``_input_shape``/``_output_shape`` (JSON lists)."""
    import json

    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends for non-ONNX files
        raise UserError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    for key, values in (("_input_shape", proto.graph.input), ("_output_shape", proto.graph.output)):
        dims = values[0].type.tensor_type.shape.dim if values else []
        meta[key] = json.dumps([d.dim_value if d.HasField("dim_value") else None for d in dims])
    return meta


def is_torchscript(path: str | os.PathLike) -> bool:
    """True when ``path`` is a TorchScript archive (a zip holding ``code/`` and ``constants.pkl``)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder of a checkpoint file: the folder above ``weights/``, or one holding config.yaml."""
    for parent in (checkpoint.parent, checkpoint.parent.parent):
        if (parent / "config.yaml").is_file():
            return parent
    return checkpoint.parent.parent if checkpoint.parent.name == "weights" else None


def names_beside(folder: Path) -> Path | None:
    """A class-names file in ``folder`` (``*.names``, ``names.yaml``, ``data.yaml``, ``classes.txt``)."""
    for pattern in NAMES_FILES:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None
