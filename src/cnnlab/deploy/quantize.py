"""INT8 and FP16 versions of ONNX models with ONNX Runtime's own tools.

- dynamic INT8: weights quantised ahead of time, activations at run time (no calibration data);
- static INT8: weights and activations quantised (QDQ format) with ranges measured on a calibration
  set (a ``CalibrationDataReader`` over training images), after ``quant_pre_process``;
- FP16: ``onnxruntime.transformers.float16`` (the converter of onnxconverter-common, shipped inside
  onnxruntime), keeping float32 inputs and outputs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import UserError

log = logging.getLogger(__name__)

QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
             "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "QLinearAdd"}


def is_quantized(path: str | os.PathLike) -> bool:
    """True when the ONNX model already contains quantised operators."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in QUANT_OPS for n in model.graph.node)


def _input_name(path: str | os.PathLike) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise UserError(f"{path}: expected one model input, found {len(names)}")
    return names[0]


def make_calibration_reader(input_name: str, data: np.ndarray, batch_size: int = 16) -> Any:
    """A ``CalibrationDataReader`` feeding ``data`` (float32 N x C x H x W, normalised) in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class ArrayCalibrationReader(CalibrationDataReader):
        """Feeds calibration batches to ONNX Runtime's range estimator."""

        def __init__(self) -> None:
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

        def rewind(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(
                {input_name: np.ascontiguousarray(data[i:i + batch_size], dtype=np.float32)}
                for i in range(0, len(data), batch_size))

    return ArrayCalibrationReader()


def pre_process(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """ONNX Runtime's recommended step before quantisation (shape inference + graph optimisation).

    Falls back to a plain copy when the pre-processing cannot handle the model.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    except Exception as e:  # the symbolic shape inference gives up on some graphs
        log.warning("quant_pre_process failed (%s); quantising the model as exported", e)
        shutil.copyfile(src, dst)
    return Path(dst)


def quantize_dynamic_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Dynamic INT8 quantisation (weights int8 per tensor, activations quantised on the fly)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        prep = pre_process(src, Path(tmp) / "prep.onnx")
        quantize_dynamic(str(prep), str(dst), weight_type=QuantType.QInt8)
    return Path(dst)


def quantize_static_onnx(src: str | os.PathLike, dst: str | os.PathLike, calibration: np.ndarray, *,
                         method: str = "minmax") -> Path:
    """Static INT8 quantisation in QDQ format (weights per channel): activation ranges from ``calibration``
    (N x C x H x W, fed in batches of 16)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if calibration is None or len(calibration) == 0:
        raise UserError("static quantisation needs calibration images")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise UserError(f"unknown calibration method {method!r} (choose from {', '.join(methods)})")
    with tempfile.TemporaryDirectory() as tmp:
        prep = pre_process(src, Path(tmp) / "prep.onnx")
        reader = make_calibration_reader(_input_name(prep), calibration)
        quantize_static(str(prep), str(dst), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True, calibrate_method=methods[method])
    return Path(dst)


def convert_fp16_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Float16 weights and compute, float32 inputs/outputs (casts at the edges)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True)
    OnnxModel.graph_topological_sort(half.graph)  # the converter appends its input casts at the end
    onnx.save(half, str(dst))
    return Path(dst)
