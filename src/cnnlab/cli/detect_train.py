"""CLI commands ``detect-train`` and ``anchors``: thin layers over ``cnnlab.detect.train``.

torch and OpenCV are imported only inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli.common import console


def _parse_anchors(text: str | None) -> list[list[float]] | str | None:
    from cnnlab.errors import UserError

    if text is None:
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UserError(f"--anchors {text!r}: expected 'auto' or w,h,w,h,... numbers") from None
    if not vals or len(vals) % 2:
        raise UserError(f"--anchors {text!r}: expected an even number of values (w,h pairs)")
    return [[vals[i], vals[i + 1]] for i in range(0, len(vals), 2)]


def detect_train_command(
    data: Path | None = typer.Argument(None, help="data.yaml, YOLO images folder, COCO .json or VOC folder."),
    model: str | None = typer.Option(None, "--model", "-m",
                                     help="yolov3-tiny | yolov3 | a Darknet .cfg | a detection run folder / .pt "
                                          "(default yolov3-tiny)."),
    weights: Path | None = typer.Option(None, "--weights", "-w",
                                        help="Darknet .weights to start from (tensors whose shapes fit; "
                                             "heads re-initialised for the new classes)."),
    config: Path | None = typer.Option(None, "--config", help="YAML file of detect-train options."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs (default 30)."),
    batch: int | None = typer.Option(None, "--batch", help="Images per batch (default 16)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Network input size, a multiple of 32 (default 416)."),
    lr: float | None = typer.Option(None, "--lr", help="Initial learning rate (default 0.01)."),
    optimizer: str | None = typer.Option(None, "--optimizer", help="sgd, adam, adamw, nadam, rmsprop (default sgd)."),
    schedule: str | None = typer.Option(None, "--schedule", help="cosine, constant, step, piecewise, plateau..."),
    box_loss: str | None = typer.Option(None, "--box-loss", help="mse (YOLOv3), iou, giou, diou, ciou (default ciou)."),
    anchors: str | None = typer.Option(None, "--anchors", help="'auto' (k-means on the data) or w,h,w,h,..."),
    width_mult: float | None = typer.Option(None, "--width-mult", help="Channel multiplier of yolov3(-tiny)."),
    freeze: int | None = typer.Option(None, "--freeze", help="Keep the first N layers fixed."),
    mosaic: float | None = typer.Option(None, "--mosaic", help="Probability of a 4-image mosaic (default 1.0)."),
    multi_scale: bool | None = typer.Option(None, "--multi-scale/--single-scale",
                                            help="Random input size in [0.5, 1.5] x imgsz per batch."),
    augment: bool | None = typer.Option(None, "--augment/--no-augment", help="Training augmentations."),
    val: str | None = typer.Option(None, "--val", help="Validation split of the data.yaml (default val)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default 0)."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default cpu)."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    project: str | None = typer.Option(None, "--project", help="Parent folder of run folders (default runs)."),
    name: str | None = typer.Option(None, "--name", help="Run name: <project>/detect/<name> (default train)."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Reuse <project>/detect/<name> if it exists."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue a run: --model RUN, DATA=RUN or <project>/detect/<name>."),
    plots: bool | None = typer.Option(None, "--plots/--no-plots", help="Curves and sample images (default on)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Epoch lines only, no progress bar."),
) -> None:
    """Train a YOLO detector on labelled boxes (YOLO, COCO or VOC); writes <project>/detect/<name>."""
    from cnnlab.errors import UserError

    given = {"model": model, "epochs": epochs, "batch": batch, "imgsz": imgsz, "lr": lr, "optimizer": optimizer,
             "schedule": schedule, "box_loss": box_loss, "anchors": _parse_anchors(anchors),
             "width_mult": width_mult, "freeze": freeze, "mosaic": mosaic, "multi_scale": multi_scale,
             "augment": augment, "val": val, "seed": seed, "device": device, "threads": threads,
             "project": project, "name": name, "plots": plots}
    options = {k: v for k, v in given.items() if v is not None}
    if quiet:
        options["verbose"] = 2
    from cnnlab.tasks.detect.run import train_detector

    if resume:
        run = _run_to_resume(data, model, project or "runs", name or "train")
        keep = {k: v for k, v in options.items() if k in ("epochs", "device", "threads", "verbose", "plots")}
        result = train_detector(resume=run, **keep)
    else:
        base: dict = {}
        if config is not None:
            from cnnlab.io import read_yaml

            base = read_yaml(config) or {}
            if not isinstance(base, dict):
                raise UserError(f"{config}: expected a mapping of option: value")
        if data is None and not base.get("data"):
            raise UserError("no dataset given: cnnlab detect-train DATA (a data.yaml, YOLO folder, COCO json or "
                            "VOC folder), or --resume")
        base.update(options)
        if weights is not None:
            base["weights"] = str(weights)
        if exist_ok:
            base["exist_ok"] = True
        result = train_detector(str(data) if data is not None else None, config=base)
    m = result.metrics
    console.print(f"best epoch {m['best_epoch']}: mAP50 {m['mAP50']:.4f}, mAP50-95 {m['mAP50_95']:.4f} "
                  f"({m['train_seconds']:.0f}s of training)")
    console.print(f"results saved to [bold]{result.run_dir}[/]; try: cnnlab detect IMAGE --model {result.run_dir}")


def _run_to_resume(data: Path | None, model: str | None, project: str, name: str) -> Path:
    from cnnlab.errors import UserError

    for cand in (Path(model) if model else None, data):
        if cand is not None and (cand.is_dir() and (cand / "weights" / "last.pt").is_file()
                                 or cand.is_file() and cand.suffix == ".pt"):
            return cand
    default = Path(project) / "detect" / name
    if (default / "weights" / "last.pt").is_file():
        return default
    raise UserError(f"nothing to resume: pass --model RUN_FOLDER (no {default / 'weights' / 'last.pt'})")


def anchors_command(
    data: Path = typer.Argument(..., help="data.yaml, YOLO images folder, COCO .json or VOC folder."),
    n: int = typer.Option(9, "-n", "--num", help="Number of anchors (9 for yolov3, 6 for yolov3-tiny)."),
    imgsz: int = typer.Option(416, "--imgsz", help="Network input size the anchors are for."),
    split: str = typer.Option("train", "--split", help="Split of a data.yaml to measure."),
    seed: int = typer.Option(0, "--seed", help="Seed of the k-means initialisation."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the result to this JSON file."),
) -> None:
    """k-means anchors (distance 1 - IoU) for a dataset, as a Darknet cfg line."""
    from cnnlab.detect.train.anchors import anchors_cfg_text, dataset_anchors

    result = dataset_anchors(data, n=n, imgsz=imgsz, split=split, seed=seed)
    console.print(f"{result['boxes']} boxes in {result['images']} images at {imgsz}px -> {n} anchors:")
    console.print(anchors_cfg_text(result["anchors"]))
    console.print(f"mean best IoU {result['mean_iou']:.3f}, best possible recall {result['bpr']:.3f}")
    if "default_fitness" in result:
        d = result["default_fitness"]
        console.print(f"(YOLOv3 default anchors: mean best IoU {d['mean_iou']:.3f}, recall {d['bpr']:.3f})")
    if json_out is not None:
        from cnnlab.io import write_json

        write_json(json_out, result)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("detect-train")(detect_train_command)
    app.command("anchors")(anchors_command)
