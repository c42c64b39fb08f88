"""CLI commands of the deploy group: ``export`` and ``benchmark`` (thin layers over ``cnnlab.deploy``).

torch, onnx and onnxruntime are imported only inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli.common import console


def export_command(
    source: str = typer.Argument(..., help="Run folder, checkpoint (.pt) or model name."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Output file (default: <run>/weights/best.onnx, or <name>.onnx)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (>= 13; 17 recommended)."),
    int8: str | None = typer.Option(None, "--int8", help="INT8 quantisation with ONNX Runtime: dynamic or static."),
    fp16: bool = typer.Option(False, "--fp16", help="Float16 weights and compute (float32 input/output)."),
    calib_samples: int = typer.Option(256, "--calib-samples", help="Training images for static INT8 calibration."),
    calib_dataset: str | None = typer.Option(None, "--calib-dataset",
                                             help="Dataset for calibration (default: the run's own)."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax, entropy or percentile."),
    check_samples: int = typer.Option(1000, "--check-samples",
                                      help="Test images used to report INT8 accuracy against PyTorch."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Data root (default $CNNLAB_DATA, then the cache)."),
) -> None:
    """Export a classifier to ONNX or TorchScript and check it against PyTorch on the same inputs."""
    from cnnlab.deploy.export import export

    result = export(source, format=format, output=output, opset=opset, int8=int8, fp16=fp16,
                    calib_samples=calib_samples, calib_dataset=calib_dataset, calib_method=calib_method,
                    check_samples=check_samples, data_dir=data_dir)
    for line in result.lines():
        console.print(line)


def benchmark_command(
    source: str = typer.Argument(..., help="Model name (random weights), run folder, checkpoint, .onnx or TorchScript file."),
    batch: str = typer.Option("1,8,32", "--batch", "-b", help="Batch sizes, comma-separated."),
    threads: str | None = typer.Option(None, "--threads", "-t", help="Thread counts, comma-separated (default 1 and all cores)."),
    runtimes: str = typer.Option("torch,onnxruntime", "--runtimes", "-r",
                                 help="torch, compile, onnxruntime, onnxruntime-int8, onnxruntime-int8-dynamic, "
                                      "onnxruntime-fp16 (compile and INT8 take a minute to prepare)."),
    iters: str = typer.Option("auto", "--iters", help="Timed calls per cell, or 'auto' (>= --min-time s and >= 20 calls)."),
    min_time: float = typer.Option(0.5, "--min-time", help="Seconds of timed calls per cell with --iters auto."),
    input_size: str | None = typer.Option(None, "--input", "-i", help="Input CxHxW, e.g. 3x224x224 (default: the model's)."),
    num_classes: int = typer.Option(10, "--num-classes", help="Classes of a model built from its name."),
    providers: str | None = typer.Option(None, "--providers",
                                         help="ONNX Runtime providers, e.g. tensorrt,cuda or auto (default cpu)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON."),
    md_out: Path | None = typer.Option(None, "--md", help="Write the results as a Markdown report."),
) -> None:
    """Latency p50/p90/p99 and throughput per runtime x batch size x thread count."""
    from cnnlab.deploy.benchmark import benchmark

    result = benchmark(source, batch=batch, threads=threads, runtimes=runtimes, iters=iters, min_time=min_time,
                       input_size=input_size, num_classes=num_classes, providers=providers, json=json_out,
                       md=md_out, progress=True)
    console.print(result.markdown(), markup=False)
    for path in (json_out, md_out):
        if path:
            console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("export")(export_command)
    app.command("benchmark")(benchmark_command)
