"""``cnnlab train`` and ``cnnlab detect-train``: options generated from the config schema
(``cnnlab.cli.schema``), both reading ``--config FILE`` and flags the same way; thin layers over
``cnnlab.train`` and ``cnnlab.train_detector``."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer

from cnnlab.cli.common import console
from cnnlab.config.classify import TrainConfig
from cnnlab.config.detect import DetectTrainConfig
from cnnlab.errors import UserError

CONFIG = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None,
                           default=typer.Option(None, "--config", "-c", help="YAML file of run options "
                                                "(flags override it; a run folder's config.yaml works)."))
RESUME = inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None,
                           default=typer.Option(None, "--resume", help="Continue an interrupted run exactly: its "
                                                "run folder (or weights/last.pt). Only --epochs, --device, "
                                                "--threads, --workers, --verbose, --plots, --tensorboard, "
                                                "--patience, --time may change."))

NPROC = inspect.Parameter("nproc", inspect.Parameter.KEYWORD_ONLY, annotation=int | None,
                          default=typer.Option(None, "--nproc", help="Train data-parallel in N processes on "
                                               "this machine (runs torchrun for you; CPU: gloo, CUDA: one GPU "
                                               "each). --batch is the global batch.", rich_help_panel="Run"))
DEVICES = inspect.Parameter("devices", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                            default=typer.Option(None, "--devices", help="CUDA devices to train on, e.g. 0,1: "
                                                 "one process per device under torchrun (like device=0,1 in "
                                                 "Ultralytics).", rich_help_panel="Run"))


def _launched(command: list[str], options: dict[str, Any], nproc: int | None, devices: str | None,
              check: Any = None) -> bool:
    """With --nproc N > 1 or several --devices: run the command again under torchrun and exit with its
    code (True); with one device: train on it here (False). ``check(n)`` first finds the mistakes a
    run can find at once, so they are one line here rather than one per process."""
    if nproc is None and devices is None:
        return False
    from cnnlab.engine.launch import launch, option_args, plan

    n, ids = plan(nproc, devices)
    if ids is not None:
        from cnnlab.devices import resolve_device

        resolve_device(f"cuda:{max(ids)}")  # no CUDA, or no such GPU: one line here, not one per process
        options["device"] = "cuda" if n > 1 else f"cuda:{ids[0]}"
    if n == 1:
        return False
    if check is not None:
        check(n)
    code = launch([*command, *option_args(options)], n, ids)
    raise typer.Exit(code)


def _check_resume(resume: Path, fmt: str, nproc: int) -> None:
    """The run to resume has a checkpoint trained on ``nproc`` processes."""
    from cnnlab.engine.distributed import check_resume_world
    from cnnlab.engine.run import find_last
    from cnnlab.io import torch_load_safe

    run_dir, last = find_last(resume, fmt)
    ckpt = torch_load_safe(last, mmap=True)
    if isinstance(ckpt, dict):
        check_resume_world(ckpt.get("world_size"), str(run_dir), now=nproc)


def _cleanup() -> None:
    """Leave the process group of a distributed run (no-op otherwise)."""
    import sys

    if "torch.distributed" in sys.modules:
        from cnnlab.engine.distributed import cleanup

        cleanup()


def _train(options: dict[str, Any], config: Path | None, resume: Path | None, ctx: typer.Context,
           nproc: int | None = None, devices: str | None = None) -> None:
    from cnnlab.config.schema import parse_cli_overrides

    options = {**parse_cli_overrides(list(ctx.args), TrainConfig), **options}
    if resume is not None and config is not None:
        raise UserError("--resume continues a run with its own config; drop --config")
    command = ["train"] + (["--config", str(config)] if config is not None else []) \
        + (["--resume", str(resume)] if resume is not None else [])
    def check(n: int) -> None:
        if resume is not None:
            _check_resume(resume, "cnnlab.classify", n)
        else:
            from cnnlab.tasks.classify.run import check_run, resolve_config

            check_run(resolve_config(config, **options))

    if _launched(command, options, nproc, devices, check):  # pragma: no cover - raises typer.Exit
        return
    from cnnlab.tasks.classify.run import train

    try:
        result = train(resume=resume, **options) if resume is not None else train(config, **options)
    finally:
        _cleanup()
    if _main_rank():
        print_metrics(result.metrics, f"results ({result.run_dir})")


def _main_rank() -> bool:
    import os

    return os.environ.get("RANK", "0") in ("", "0")


def _detect_train(options: dict[str, Any], config: Path | None, resume: Path | None, data: Path | None,
                  quiet: bool, nproc: int | None = None, devices: str | None = None) -> None:
    from cnnlab.config.schema import read_options

    command = ["detect-train"] + ([str(data)] if data is not None else []) \
        + (["--config", str(config)] if config is not None else []) \
        + (["--resume", str(resume)] if resume is not None else []) + (["--quiet"] if quiet else [])
    def check(n: int) -> None:
        if resume is not None:
            _check_resume(resume, "cnnlab.detect", n)
        else:
            from cnnlab.tasks.detect.run import check_detect_run

            base = read_options(config) if config is not None else {}
            if data is not None:
                base["data"] = str(data)
            check_detect_run(DetectTrainConfig.from_dict({**base, **options}, source="detect-train options"))

    if _launched(command, options, nproc, devices, check):  # pragma: no cover - raises typer.Exit
        return
    from cnnlab.tasks.detect.run import train_detector

    if quiet:
        options["verbose"] = 2
    if resume is not None:
        if config is not None or data is not None:
            raise UserError("--resume continues a run with its own data and config; drop DATA and --config")
        try:
            result = train_detector(resume=resume, **options)
        finally:
            _cleanup()
    else:
        base = read_options(config) if config is not None else {}
        if data is None and not base.get("data") and "data" not in options:
            raise UserError("no dataset given: cnnlab detect-train DATA (a data.yaml, YOLO folder, COCO json or "
                            "VOC folder), or --resume RUN")
        try:
            result = train_detector(data, config=base, **options)
        finally:
            _cleanup()
    if not _main_rank():
        return
    m = result.metrics
    maps = " ".join(f"{k} {m[k]:.4f}" if m.get(k) is not None else f"{k} n/a" for k in ("mAP50", "mAP50_95"))
    console.print(f"best epoch {m['best_epoch']}: {maps} ({m['train_seconds']:.0f}s of training)")
    console.print(f"results saved to [bold]{result.run_dir}[/]; try: cnnlab detect IMAGE --model {result.run_dir}")


# accuracy first; throughput and timing last
METRIC_ORDER = ("test_accuracy", "test_top5_accuracy", "test_loss", "val_accuracy", "val_top5_accuracy", "val_loss",
                "accuracy", "top5_accuracy", "loss", "best_epoch", "epochs", "train_time_s", "images",
                "images_per_s", "seconds")


def print_metrics(metrics: dict[str, Any], title: str) -> None:
    """The headline numbers of a run or an evaluation as a table."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key in METRIC_ORDER:
        v = metrics.get(key)
        if v is not None:
            table.add_row(key, (f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}") if isinstance(v, float) else str(v))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``detect-train`` to the main app."""
    from cnnlab.cli.schema import config_command

    ctx = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    train_cmd = config_command(
        TrainConfig, _train, [ctx, CONFIG, RESUME, NPROC, DEVICES],
        "Train a classifier; writes <project>/classify/<name>/ (config, history, metrics, weights, plots).\n\n"
        "Every option can also come from --config FILE, or be written name=value (Ultralytics style).")
    app.command("train", context_settings={"allow_extra_args": True})(train_cmd)

    data = inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Path | None,
                             default=typer.Argument(None, help="data.yaml, YOLO images folder, COCO .json or "
                                                    "VOC folder."))
    quiet = inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                              default=typer.Option(False, "--quiet", "-q", help="Epoch lines only, no progress "
                                                   "bar (same as --verbose 2)."))
    detect_cmd = config_command(
        DetectTrainConfig, _detect_train, [data, CONFIG, RESUME, quiet, NPROC, DEVICES],
        "Train a YOLO detector on labelled boxes (YOLO, COCO or VOC); writes <project>/detect/<name>.",
        skip=("data",))
    app.command("detect-train")(detect_cmd)
