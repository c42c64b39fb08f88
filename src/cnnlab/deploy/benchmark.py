"""``cnnlab.benchmark``: latency percentiles and throughput per runtime x batch size x thread count.

Runtimes: PyTorch eager (``torch``), ``torch.compile`` (``compile``), ONNX Runtime fp32
(``onnxruntime``), INT8 static QDQ (``onnxruntime-int8``), INT8 dynamic (``onnxruntime-int8-dynamic``)
and FP16 (``onnxruntime-fp16``). A cell that cannot run (e.g. torch.compile failing, a torch runtime for
an ``.onnx`` file) is reported in its row, never a crash of the whole benchmark.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.deploy.device import device_info, library_versions
from cnnlab.deploy.timing import measure
from cnnlab.errors import UserError

RUNTIMES = ("torch", "compile", "onnxruntime", "onnxruntime-int8", "onnxruntime-int8-dynamic",
            "onnxruntime-fp16")
# the default finishes in seconds on a small model: torch.compile (a minute of compiling) and INT8 (a
# calibration pass over real images) are asked for by name
DEFAULT_RUNTIMES = ("torch", "onnxruntime")
ALIASES = {"eager": "torch", "pytorch": "torch", "torch-eager": "torch", "torch.compile": "compile",
           "inductor": "compile", "ort": "onnxruntime", "onnx": "onnxruntime", "int8": "onnxruntime-int8",
           "ort-int8": "onnxruntime-int8", "onnxruntime-int8-static": "onnxruntime-int8",
           "int8-dynamic": "onnxruntime-int8-dynamic", "fp16": "onnxruntime-fp16",
           "ort-fp16": "onnxruntime-fp16"}
TORCH_RUNTIMES = ("torch", "compile")
COLUMNS = ["runtime", "batch", "threads", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "images_per_s",
           "vs_torch", "cv", "iters", "status"]
CALIBRATION_SAMPLES = 64


@dataclass
class BenchmarkResult:
    """Header (machine, versions, model) and one row per runtime x batch x threads."""

    header: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"header": self.header, "results": self.rows}

    def markdown(self) -> str:
        """A Markdown report: header as a list, then the table."""
        h = self.header
        lines = [f"### Benchmark: {h['model']}", "",
                 f"- source: `{h['source']}`; input {'x'.join(map(str, h['input_shape']))}"
                 + (f"; {h['params']:,} parameters" if h.get("params") else ""),
                 f"- device: {h['device']}",
                 "- versions: " + ", ".join(f"{k} {v}" for k, v in h["versions"].items()),
                 f"- onnxruntime providers: {', '.join(h['providers'])}",
                 f"- timing: {h['timing']}"]
        if h.get("calibration"):
            lines.append(f"- INT8 calibration: {h['calibration']}")
        lines += ["", markdown_table(self.rows)]
        noisy = [r for r in self.rows if r.get("noisy")]
        if noisy:
            from cnnlab.deploy.timing import NOISY_CV, NOISY_TAIL

            lines.append(f"{len(noisy)} noisy cell(s) (marked `(noisy)`: latency cv > {NOISY_CV:g} or p99 > "
                         f"{NOISY_TAIL:g} x p50): the machine was busy or threads competed; measure again on "
                         "an idle machine before quoting them.\n")
        return "\n".join(lines)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The result rows as a GitHub Markdown table."""
    names = {"p50_ms": "p50 ms", "p90_ms": "p90 ms", "p99_ms": "p99 ms", "mean_ms": "mean ms",
             "images_per_s": "images/s", "vs_torch": "vs torch", "cv": "cv"}
    out = ["| " + " | ".join(names.get(c, c) for c in COLUMNS) + " |",
           "|" + "|".join("---:" if c not in ("runtime", "status") else "---" for c in COLUMNS) + "|"]
    for r in rows:
        shown = {**r, "status": f"{r['status']} (noisy)" if r.get("noisy") else r.get("status")}
        out.append("| " + " | ".join(_fmt(shown.get(c)) for c in COLUMNS) + " |")
    return "\n".join(out) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v).replace("|", "/")


# ------------------------------------------------------------------------------------- parsing
def parse_int_list(value: str | int | Sequence[int], what: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]`` (positive, de-duplicated, in order)."""
    items = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else list(value)
    try:
        out = list(dict.fromkeys(int(str(item).strip()) for item in items))
    except ValueError:
        raise UserError(f"{what}: expected comma-separated integers, got {value!r}") from None
    for n in out:
        if n < 1:
            raise UserError(f"{what}: values must be >= 1, got {n}")
    if not out:
        raise UserError(f"{what}: give at least one value")
    return out


def parse_runtimes(value: str | Sequence[str]) -> list[str]:
    """Runtime names (with aliases such as ``eager``, ``ort``, ``int8``) -> canonical names."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        name = ALIASES.get(item.strip().lower(), item.strip().lower())
        if not name:
            continue
        if name not in RUNTIMES:
            raise UserError(f"unknown runtime {item!r} (choose from {', '.join(RUNTIMES)})")
        if name not in out:
            out.append(name)
    if not out:
        raise UserError("give at least one runtime")
    return out


def parse_iters(value: str | int | None) -> int | None:
    """``auto`` (time-based) -> None; a number -> that many timed iterations."""
    if value is None or str(value).lower() == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise UserError(f"--iters: expected 'auto' or a number, got {value!r}") from None
    if n < 1:
        raise UserError("--iters must be >= 1")
    return n


def parse_input(value: str | Sequence[int] | None) -> tuple[int, int, int] | None:
    """``3x224x224`` (CxHxW) -> (3, 224, 224)."""
    from cnnlab.inspect.summary import parse_input_size

    return None if value is None else parse_input_size(value, exact=True)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------- the model
@dataclass
class _Subject:
    """What is measured: a torch model and/or an ONNX file, with the input shape."""

    name: str
    source: str
    input_shape: tuple[int, int, int]
    torch_model: Any | None = None
    torch_note: str = ""            # why torch runtimes are unavailable
    onnx_path: Path | None = None
    onnx_quantized: bool = False
    params: int | None = None
    calibration: np.ndarray | None = None
    calibration_note: str = ""


RANDOM_CALIBRATION = f"{CALIBRATION_SAMPLES} random inputs (no dataset; fine for timing, not for accuracy)"


def _random_calibration(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((CALIBRATION_SAMPLES, *shape)).astype(np.float32)


def _subject(source: Any, input_shape: tuple[int, int, int] | None, num_classes: int, workdir: Path,
             need_onnx: bool, seed: int) -> _Subject:
    import torch

    from cnnlab.deploy.source import torch_source
    from cnnlab.sources import identify, resolve

    module = isinstance(source, torch.nn.Module)
    loc = identify(source, task="classify")
    if loc.kind in ("onnx", "torchscript"):
        src = resolve(loc)
        shape = input_shape or (src.input_shape if src.img_size else None)
        if shape is None:
            raise UserError(f"{loc.path}: the model does not fix its input size; pass --input CxHxW")
        if src.runtime == "onnxruntime":
            from cnnlab.deploy.quantize import is_quantized

            return _Subject(name=loc.path.name, source=str(loc.path), input_shape=shape, onnx_path=loc.path,
                            onnx_quantized=is_quantized(loc.path), calibration=_random_calibration(shape, seed),
                            calibration_note=RANDOM_CALIBRATION,
                            torch_note="an .onnx file has no PyTorch model (benchmark the run or checkpoint)")
    else:
        opts: dict[str, Any] = {} if module else {"num_classes": num_classes}
        if input_shape:
            opts.update(in_chans=input_shape[0], img_size=input_shape[1])
        src = torch_source(loc, **opts)
        shape = input_shape or src.input_shape
    src.preprocessing.in_chans, src.preprocessing.img_size = shape[0], shape[1]
    params = sum(int(t.numel()) for t in src.model.parameters())
    subj = _Subject(name=src.name, source=src.name if module else str(source), input_shape=shape,
                    torch_model=src.model, params=params)
    if need_onnx:
        subj.onnx_path, subj.calibration, subj.calibration_note = _to_onnx(src, shape, workdir, seed)
    return subj


def _to_onnx(src: Any, shape: tuple[int, int, int], workdir: Path,
             seed: int) -> tuple[Path | None, np.ndarray | None, str]:
    """Export the torch model once (checked); calibration images from the run's data, else random."""
    from cnnlab.deploy.calibration import dataset_sample, run_dataset
    from cnnlab.deploy.export import export

    calib, note = None, ""
    name, ddir, options = run_dataset(src.config)
    if name:
        try:
            calib, _ = dataset_sample(name, src.preprocessing, CALIBRATION_SAMPLES, data_dir=ddir,
                                      options=options, seed=seed)
            note = f"{len(calib)} {name} training images"
        except UserError as e:
            note = f"random inputs ({name} unavailable: {e})"
    if calib is None:
        calib = _random_calibration(shape, seed)
        note = note or RANDOM_CALIBRATION
    path = workdir / "model.onnx"
    export(src, output=path, check_samples=0)
    return path, calib, note


# ------------------------------------------------------------------------------------- runners
class _Runners:
    """Builds the callable for a (runtime, threads) pair, caching sessions and compiled models."""

    def __init__(self, subj: _Subject, workdir: Path, providers: Any) -> None:
        self.subj, self.workdir, self.providers = subj, workdir, providers
        self._files: dict[str, Path | Exception] = {}
        self._sessions: dict[tuple[str, int], Any] = {}
        self._compiled: dict[int, Any] = {}

    def unavailable(self, runtime: str) -> str | None:
        import torch

        s = self.subj
        if runtime in TORCH_RUNTIMES and s.torch_model is None:
            return s.torch_note
        if runtime == "compile" and isinstance(s.torch_model, torch.jit.ScriptModule):
            return "torch.compile does not take TorchScript modules"
        if runtime.startswith("onnxruntime") and s.onnx_path is None:
            return "no ONNX model"
        if runtime.startswith("onnxruntime-") and s.onnx_quantized:
            return "the ONNX model is already quantised (see the onnxruntime rows)"
        return None

    def _file(self, runtime: str) -> Path:
        from cnnlab.deploy import quantize

        s = self.subj
        assert s.onnx_path is not None
        if runtime == "onnxruntime":
            return s.onnx_path
        if runtime not in self._files:
            convert = {"onnxruntime-int8": lambda a, b: quantize.quantize_static_onnx(a, b, s.calibration),
                       "onnxruntime-int8-dynamic": quantize.quantize_dynamic_onnx,
                       "onnxruntime-fp16": quantize.convert_fp16_onnx}[runtime]
            try:
                self._files[runtime] = convert(s.onnx_path, self.workdir / f"{runtime}.onnx")
            except Exception as e:  # reported in each cell of this runtime
                self._files[runtime] = e
        f = self._files[runtime]
        if isinstance(f, Exception):
            raise f
        return f

    def make(self, runtime: str, threads: int, x: np.ndarray) -> Callable[[], object]:
        import torch

        if runtime in TORCH_RUNTIMES:
            torch.set_num_threads(threads)
            model = self.subj.torch_model
            if runtime == "compile":
                if threads not in self._compiled:
                    if self._compiled:  # compiled kernels fix their thread count at compile time
                        torch._dynamo.reset()
                    self._compiled = {threads: torch.compile(model, dynamic=False)}
                model = self._compiled[threads]
            xt = torch.from_numpy(x)

            def run_torch() -> object:
                with torch.inference_mode():
                    return model(xt)

            return run_torch
        from cnnlab.deploy.providers import create_session

        key = (runtime, threads)
        if key not in self._sessions:
            self._sessions[key] = create_session(self._file(runtime), self.providers, threads=threads)
        sess = self._sessions[key]
        feed = {sess.get_inputs()[0].name: x}
        return lambda: sess.run(None, feed)


def _short_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"[:160]


# ------------------------------------------------------------------------------------- benchmark
def benchmark(source: Any, batch: str | Sequence[int] = (1, 8, 32), threads: str | Sequence[int] | None = None,
              runtimes: str | Sequence[str] = DEFAULT_RUNTIMES, iters: str | int | None = "auto", *,
              min_time: float = 0.5, min_iters: int = 20, max_time: float = 30.0, warmup: int | None = None,
              input_size: str | Sequence[int] | None = None, num_classes: int = 10,
              providers: str | Sequence[str] | None = None, json: str | os.PathLike | None = None,
              md: str | os.PathLike | None = None, progress: bool = False, seed: int = 0) -> BenchmarkResult:
    """Measure ``source`` (registry name with random weights, run folder, checkpoint, .onnx or TorchScript).

    For every runtime x batch size x thread count: warm-up, then timed calls (``iters="auto"``: at least
    ``min_time`` seconds and ``min_iters`` calls); latency p50/p90/p99, images/s, the coefficient of
    variation ``cv`` and ``noisy`` for an unstable cell (see ``cnnlab.deploy.timing``). ``threads``
    defaults to 1 and all cores. ``progress``: a bar on a terminal, a line every few seconds when
    piped. Writes JSON (``json``) and Markdown (``md``) when asked.
    """
    import torch

    from cnnlab.engine.progress import Progress
    from cnnlab.io import atomic_write_text, write_json

    batches = parse_int_list(batch, "--batch")
    thread_list = parse_int_list(threads if threads is not None else [1, os.cpu_count() or 1], "--threads")
    rts = parse_runtimes(runtimes)
    n_iters = parse_iters(iters)
    shape = parse_input(input_size)
    if min_time <= 0:
        raise UserError("min_time must be positive")
    prev_threads = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as tmp:
        workdir = Path(tmp)
        need_onnx = any(r.startswith("onnxruntime") for r in rts)
        subj = _subject(source, shape, num_classes, workdir, need_onnx, seed)
        from cnnlab.deploy.providers import resolve_providers

        plist = resolve_providers(providers)
        header = {
            "model": subj.name, "source": subj.source, "input_shape": list(subj.input_shape),
            "params": subj.params, "device": device_info(), "platform": platform.platform(),
            "versions": library_versions(), "providers": [p[0] if isinstance(p, tuple) else p for p in plist],
            "batch": batches, "threads": thread_list, "runtimes": rts,
            "timing": (f"{n_iters} timed calls" if n_iters else
                       f"time-based: >= {min_time:g} s and >= {min_iters} calls per cell") + ", after warm-up",
            "calibration": subj.calibration_note if any(r == "onnxruntime-int8" for r in rts) else "",
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        runners = _Runners(subj, workdir, plist)
        rng = np.random.default_rng(seed)
        inputs = {b: rng.standard_normal((b, *subj.input_shape)).astype(np.float32) for b in batches}
        cells = [(r, b, t) for r in rts for t in thread_list for b in batches]
        bar = Progress("benchmark", len(cells), enabled=progress, every=5.0, unit="cells")
        bar.__enter__()
        try:
            for rt, b, t in cells:
                bar.note(f"{rt} batch {b} threads {t}")
                row: dict[str, Any] = {"runtime": rt, "batch": b, "threads": t,
                                       **dict.fromkeys(("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms",
                                                        "images_per_s", "iters"))}
                reason = runners.unavailable(rt)
                if reason:
                    row["status"] = f"skipped: {reason}"
                else:
                    try:
                        fn = runners.make(rt, t, inputs[b])
                        timing = measure(fn, b, iters=n_iters, min_time=min_time, min_iters=min_iters,
                                         max_time=max_time, warmup=warmup)
                        row.update(timing.to_dict(), status="ok")
                    except Exception as e:  # a failing cell (compile error, unsupported op) is a result
                        row["status"] = f"error: {_short_error(e)}"
                rows.append(row)
                bar.advance()
        finally:
            bar.__exit__(None, None, None)
            torch.set_num_threads(prev_threads)
    _add_speedups(rows)
    result = BenchmarkResult(header=header, rows=rows)
    if json:
        write_json(json, result.to_dict())
    if md:
        atomic_write_text(md, result.markdown())
    return result


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    """``vs_torch``: throughput relative to PyTorch eager at the same batch size and thread count."""
    base = {(r["batch"], r["threads"]): r.get("images_per_s") for r in rows if r["runtime"] == "torch"}
    for r in rows:
        ref = base.get((r["batch"], r["threads"]))
        r["vs_torch"] = r["images_per_s"] / ref if ref and r.get("images_per_s") else None
