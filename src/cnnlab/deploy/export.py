"""``cnnlab.export``: a trained classifier to ONNX (fp32 / INT8 / FP16) or TorchScript, checked after export.

Every export is verified before it is moved into place: ONNX Runtime (or the reloaded TorchScript
module) runs the same inputs as PyTorch and the largest absolute difference of the logits is reported;
above the tolerance the export fails and no file is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.deploy.calibration import dataset_sample, run_dataset
from cnnlab.deploy.metadata import METADATA_KEY, TORCHSCRIPT_EXTRA, build_metadata, dumps
from cnnlab.deploy.source import torch_source
from cnnlab.errors import ModelError, UserError, first_line
from cnnlab.io import atomic_path
from cnnlab.sources import Resolved

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
INT8_MODES = ("dynamic", "static")
MIN_OPSET = 13
CHECK_BATCH = 3  # not the batch used while exporting, so the dynamic batch axis is exercised


@dataclass
class ExportResult:
    """What ``export`` wrote and how well it agrees with PyTorch."""

    path: Path
    format: str
    precision: str                   # fp32, fp16, int8-dynamic, int8-static
    max_abs_diff: float              # logits, exported vs PyTorch, on the check inputs
    tolerance: float | None          # None for INT8 (reported, not enforced)
    checks: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def lines(self) -> list[str]:
        """Human-readable summary (what the CLI prints)."""
        tol = f" (tolerance {self.tolerance:.1e})" if self.tolerance is not None else ""
        out = [f"exported {self.format} ({self.precision}) -> {self.path} ({self.size_bytes / 1e6:.2f} MB)",
               f"check: max abs difference vs PyTorch {self.max_abs_diff:.3g}{tol} on "
               f"{self.checks.get('check_inputs', '')}"]
        if "top1_agreement" in self.checks:
            out.append(f"check: top-1 agreement with PyTorch {100 * self.checks['top1_agreement']:.1f} %")
        if "accuracy_fp32" in self.checks:
            c = self.checks
            out.append(f"accuracy on {c['accuracy_samples']} {c['accuracy_split']} images: PyTorch fp32 "
                       f"{100 * c['accuracy_fp32']:.2f} %, {self.precision} {100 * c['accuracy_exported']:.2f} % "
                       f"(loss {100 * c['accuracy_loss']:.2f} points)")
        return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' deprecation and tracer warnings (they are about PyTorch, not the model)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _agreement(ref: np.ndarray, got: np.ndarray, precision: str, what: str) -> tuple[float, float | None]:
    """Max abs difference of the logits and the tolerance of ``precision`` (None: not enforced)."""
    diff = float(np.abs(ref - got).max())
    tol = {"fp32": 1e-3, "fp16": 3e-2}.get(precision)
    tol = tol * max(1.0, float(np.abs(ref).max())) if tol else None
    if tol is not None and not diff <= tol:
        raise ModelError(f"{what} disagrees with PyTorch: max abs difference {diff:.3g} > "
                         f"tolerance {tol:.3g}; nothing written")
    return diff, tol


def default_output(src: Resolved, fmt: str, precision: str) -> Path:
    """``<run>/weights/best.onnx`` (beside the checkpoint, as Ultralytics does) or ``<name>.onnx`` here."""
    suffix = {"fp32": "", "fp16": ".fp16", "int8-dynamic": ".int8-dynamic", "int8-static": ".int8"}[precision]
    ext = ".onnx" if fmt == "onnx" else ".torchscript"
    if src.run_dir is not None:
        return src.run_dir / "weights" / f"best{suffix}{ext}"
    return Path(f"{src.name.replace('/', '_')}{suffix}{ext}")


def _torch_logits(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(x)).float().numpy()


def _example(src: Resolved) -> Any:
    """The (seeded) batch of 2 the exporters trace with."""
    import torch

    return torch.randn(2, *src.input_shape, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------------ ONNX
def _export_onnx_fp32(src: Resolved, path: Path, opset: int) -> None:
    import torch

    try:
        with _quiet():
            torch.onnx.export(src.model, (_example(src),), str(path), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["logits"], do_constant_folding=True,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as e:  # unsupported operators, bad opsets: one line, not a tracer dump
        raise ModelError(f"ONNX export of {src.name} failed: {first_line(e)[:300]}") from None


def _set_onnx_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {METADATA_KEY: dumps(meta)})
    model.doc_string = f"cnnlab {meta.get('precision')} export of {meta.get('model_spec', {}).get('name', '')}"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    from cnnlab.deploy.runtime import load_onnx_classifier

    clf = load_onnx_classifier(path, providers="cpu")  # the reference check, whatever $CNNLAB_PROVIDERS says
    return np.concatenate([clf(x[i:i + 256]) for i in range(0, len(x), 256)])


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def _sample(src: Resolved, dataset: str | None, data_dir: str | os.PathLike | None, n: int, split: str,
            seed: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    """``n`` images of ``dataset`` (default: the run's own, with its options) as model input, labels and
    the dataset's name; None when no dataset is known."""
    name, ddir, options = run_dataset(src.config)
    if not (dataset or name):
        return None
    x, y = dataset_sample(dataset or name, src.preprocessing, n, split=split, data_dir=data_dir or ddir,
                          options=None if dataset else options, seed=seed)
    return x, y, dataset or name


def _eval_sample(src: Resolved, dataset: str | None, data_dir: str | os.PathLike | None, n: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    for split in ("test", "val") if n > 0 else ():
        try:
            sample = _sample(src, dataset, data_dir, n, split, seed)
        except UserError:
            continue
        return None if sample is None else (*sample[:2], split)
    return None


def export(source: Any, format: str = "onnx", output: str | os.PathLike | None = None, *,
           opset: int = 17, int8: str | None = None, fp16: bool = False, calib_samples: int = 256,
           calib_dataset: str | None = None, calib_data: np.ndarray | None = None,
           calib_method: str = "minmax", data_dir: str | os.PathLike | None = None,
           check_samples: int = 1000, seed: int = 0, **source_options: Any) -> ExportResult:
    """Export ``source`` (run folder, checkpoint, registry name or nn.Module) and verify the result.

    ONNX: opset ``opset`` (>= 13, default 17), dynamic batch axis, preprocessing and class names as JSON
    in ``metadata_props["cnnlab"]``. ``int8="dynamic"|"static"`` quantises with ONNX Runtime (static
    calibrates on ``calib_samples`` training images of the run's dataset, or ``calib_data``);
    ``fp16=True`` converts to float16. INT8 exports also report accuracy against PyTorch on up to
    ``check_samples`` test images when the dataset is known. ``source_options`` (classes, mean, std,
    img_size, in_chans, num_classes) describe a bare nn.Module or registry model.
    """
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {format!r} (choose from {', '.join(FORMATS)})")
    if int8 is not None and int8 not in INT8_MODES:
        raise UserError(f"--int8 must be one of {', '.join(INT8_MODES)}, got {int8!r}")
    if int8 and fp16:
        raise UserError("choose either --int8 or --fp16, not both")
    if fmt == "torchscript" and (int8 or fp16):
        raise UserError("--int8 and --fp16 apply to ONNX exports (use --format onnx)")
    if fmt == "onnx" and opset < MIN_OPSET:
        raise UserError(f"opset {opset} is too old; use {MIN_OPSET} or newer (17 recommended)")
    if calib_samples < 1:
        raise UserError("--calib-samples must be at least 1")
    with _as_found(source):
        return _export(source, fmt, output, opset=opset, int8=int8, fp16=fp16, calib_samples=calib_samples,
                       calib_dataset=calib_dataset, calib_data=calib_data, calib_method=calib_method,
                       data_dir=data_dir, check_samples=check_samples, seed=seed, **source_options)


@contextlib.contextmanager
def _as_found(source: Any) -> Iterator[None]:
    """Leave a caller's module (``source`` itself, or the model of a Resolved source) as it was found: each
    submodule's train/eval flag, and the device of its tensors when they were all on one device (the export
    runs it in eval mode on the CPU)."""
    module = source if hasattr(source, "modules") else getattr(source, "model", None)
    if not hasattr(module, "modules"):
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    devices = {t.device for t in [*module.parameters(), *module.buffers()]}
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        if len(devices) == 1 and {t.device for t in [*module.parameters(), *module.buffers()]} != devices:
            module.to(next(iter(devices)))


def _export(source: Any, fmt: str, output: str | os.PathLike | None, *, opset: int, int8: str | None, fp16: bool,
            calib_samples: int, calib_dataset: str | None, calib_data: np.ndarray | None, calib_method: str,
            data_dir: str | os.PathLike | None, check_samples: int, seed: int,
            **source_options: Any) -> ExportResult:
    src = torch_source(source, **source_options)
    src.model.eval()  # a Resolved source is handed over as it is (``_as_found`` restores the caller's mode)
    if not src.classes:  # a bare module: name the classes by index, as many as it has outputs
        src.classes = [str(i) for i in range(_torch_logits(src.model, np.zeros((1, *src.input_shape),
                                                                                np.float32)).shape[-1])]
    precision = f"int8-{int8}" if int8 else "fp16" if fp16 else "fp32"
    out = Path(output) if output else default_output(src, fmt, precision)
    if fmt == "onnx" and out.suffix != ".onnx":
        raise UserError(f"ONNX output should end in .onnx: {out}")
    where = src.name if hasattr(source, "forward") else str(src.run_dir or source)
    meta = build_metadata(src.classes, src.preprocessing, precision=precision, model_spec=src.spec, source=where)
    x_check = np.random.default_rng(seed).standard_normal((CHECK_BATCH, *src.input_shape)).astype(np.float32)
    if fmt == "torchscript":
        return _export_torchscript(src, out, meta, x_check)
    return _export_onnx(src, out, meta, precision, opset, x_check, calib_samples=calib_samples,
                        calib_dataset=calib_dataset, calib_data=calib_data, calib_method=calib_method,
                        data_dir=data_dir, check_samples=check_samples, seed=seed)


def _export_onnx(src: Resolved, out: Path, meta: dict[str, Any], precision: str, opset: int,
                 x_check: np.ndarray, *, calib_samples: int, calib_dataset: str | None,
                 calib_data: np.ndarray | None, calib_method: str, data_dir: Any, check_samples: int,
                 seed: int) -> ExportResult:
    from cnnlab.deploy import quantize

    checks: dict[str, Any] = {"opset": opset}
    with tempfile.TemporaryDirectory(prefix="cnnlab-export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        _export_onnx_fp32(src, fp32, opset)
        _set_onnx_metadata(fp32, {**meta, "precision": "fp32"})
        final = fp32
        calib = None
        if precision == "int8-static":
            if calib_data is not None:
                calib, what = np.asarray(calib_data, dtype=np.float32)[:calib_samples], "given array"
            elif sample := _sample(src, calib_dataset, data_dir, calib_samples, "train", seed):
                calib, what = sample[0], f"{len(sample[0])} {sample[2]} training images"
            else:
                raise UserError("static INT8 needs calibration images: export a run folder (its training "
                                "data is used), pass --calib-dataset NAME, or use --int8 dynamic")
            final = quantize.quantize_static_onnx(fp32, Path(tmp) / "int8.onnx", calib, method=calib_method)
            checks.update(calibration=what, calibration_method=calib_method)
            meta["quantization"] = {"mode": "static", "format": "QDQ", "calibration": what,
                                    "method": calib_method}
        elif precision == "int8-dynamic":
            final = quantize.quantize_dynamic_onnx(fp32, Path(tmp) / "int8.onnx")
            meta["quantization"] = {"mode": "dynamic"}
        elif precision == "fp16":
            final = quantize.convert_fp16_onnx(fp32, Path(tmp) / "fp16.onnx")
        if final is not fp32:
            _set_onnx_metadata(final, meta)

        # the check: the same inputs through PyTorch and ONNX Runtime
        ref = _torch_logits(src.model, x_check)
        got = _ort_logits(final, x_check)
        checks["check_inputs"] = f"{len(x_check)} random inputs of shape {list(x_check.shape[1:])}"
        if precision.startswith("int8"):
            sample = _eval_sample(src, calib_dataset, data_dir, check_samples, seed)
            if sample is not None:
                xs, ys, split = sample
                ref, got = _torch_logits(src.model, xs), _ort_logits(final, xs)
                checks.update(check_inputs=f"{len(ys)} {split} images", accuracy_samples=len(ys),
                              accuracy_split=split, accuracy_fp32=_accuracy(ref, ys),
                              accuracy_exported=_accuracy(got, ys))
                checks["accuracy_loss"] = checks["accuracy_fp32"] - checks["accuracy_exported"]
            elif calib is not None:
                ref, got = _torch_logits(src.model, calib), _ort_logits(final, calib)
                checks["check_inputs"] = f"{len(calib)} calibration images"
            checks["top1_agreement"] = float((ref.argmax(1) == got.argmax(1)).mean())
        diff, tol = _agreement(ref, got, precision, "exported model")
        if "accuracy_fp32" in checks:
            meta["reference_accuracy"] = {k: v for k, v in checks.items() if k.startswith("accuracy_")}
            _set_onnx_metadata(final, meta)
        with atomic_path(out) as tmp_out:
            shutil.copyfile(final, tmp_out)
    log.info("exported %s (%s): max abs diff %.3g", out, precision, diff)
    return ExportResult(path=out, format="onnx", precision=precision, max_abs_diff=diff, tolerance=tol,
                        checks=checks, metadata=meta)


# ------------------------------------------------------------------------------------ TorchScript
def _export_torchscript(src: Resolved, out: Path, meta: dict[str, Any], x_check: np.ndarray) -> ExportResult:
    import torch

    try:
        with _quiet(), torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.trace(src.model, _example(src), check_trace=False)
            traced = torch.jit.freeze(traced.eval()) if hasattr(torch.jit, "freeze") else traced
    except Exception as e:
        raise ModelError(f"TorchScript export of {src.name} failed: {first_line(e)[:300]}") from None
    with atomic_path(out) as tmp_out:
        with _quiet():
            torch.jit.save(traced, str(tmp_out), _extra_files={TORCHSCRIPT_EXTRA: dumps(meta)})
            reloaded = torch.jit.load(str(tmp_out), map_location="cpu")
        diff, tol = _agreement(_torch_logits(src.model, x_check), _torch_logits(reloaded, x_check), "fp32",
                               "TorchScript module")
    checks = {"check_inputs": f"{len(x_check)} random inputs of shape {list(x_check.shape[1:])}"}
    return ExportResult(path=out, format="torchscript", precision="fp32", max_abs_diff=diff, tolerance=tol,
                        checks=checks, metadata=meta)


def load_torchscript(path: str | os.PathLike) -> tuple[Any, dict[str, Any] | None]:
    """Load a TorchScript export and its cnnlab metadata (TorchScript runs only TorchScript ops)."""
    import torch

    from cnnlab.deploy.metadata import parse_metadata

    p = Path(path)
    if not p.is_file():
        raise UserError(f"TorchScript file not found: {p}")
    extra = {TORCHSCRIPT_EXTRA: ""}
    try:
        with _quiet():
            module = torch.jit.load(str(p), map_location="cpu", _extra_files=extra)
    except Exception as e:
        raise UserError(f"{p}: not a loadable TorchScript file ({first_line(e)[:200]})") from None
    return module.eval(), parse_metadata(extra[TORCHSCRIPT_EXTRA] or None)
