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


def _train(options: dict[str, Any], config: Path | None, resume: Path | None, ctx: typer.Context) -> None:
    from cnnlab.config.schema import parse_cli_overrides
    from cnnlab.tasks.classify.run import train

    options = {**parse_cli_overrides(list(ctx.args), TrainConfig), **options}
    if resume is not None:
        if config is not None:
            raise UserError("--resume continues a run with its own config; drop --config")
        result = train(resume=resume, **options)
    else:
        result = train(config, **options)
    print_metrics(result.metrics, f"results ({result.run_dir})")


def _detect_train(options: dict[str, Any], config: Path | None, resume: Path | None, data: Path | None,
                  quiet: bool) -> None:
    from cnnlab.config.schema import read_options
    from cnnlab.tasks.detect.run import train_detector

    if quiet:
        options["verbose"] = 2
    if resume is not None:
        if config is not None or data is not None:
            raise UserError("--resume continues a run with its own data and config; drop DATA and --config")
        result = train_detector(resume=resume, **options)
    else:
        base = read_options(config) if config is not None else {}
        if data is None and not base.get("data") and "data" not in options:
            raise UserError("no dataset given: cnnlab detect-train DATA (a data.yaml, YOLO folder, COCO json or "
                            "VOC folder), or --resume RUN")
        result = train_detector(data, config=base, **options)
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
        TrainConfig, _train, [ctx, CONFIG, RESUME],
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
        DetectTrainConfig, _detect_train, [data, CONFIG, RESUME, quiet],
        "Train a YOLO detector on labelled boxes (YOLO, COCO or VOC); writes <project>/detect/<name>.",
        skip=("data",))
    app.command("detect-train")(detect_cmd)
