"""CLI commands of the 'data' group: ``datasets`` (list, download), ``augment-preview`` and ``data check``."""

from __future__ import annotations

import typer

from cnnlab.cli.common import console


def _floats(text: str | None, what: str) -> list[float] | float | None:
    """Parse ``0.3`` or ``0.8,1.0`` into a float or a [lo, hi] list."""
    if text is None:
        return None
    from cnnlab.errors import UserError

    try:
        parts = [float(p) for p in text.replace(" ", "").split(",") if p]
    except ValueError:
        raise UserError(f"{what}: expected a number or LO,HI, got {text!r}") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts
    raise UserError(f"{what}: expected a number or LO,HI, got {text!r}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    datasets_app = typer.Typer(help="List the datasets (where they are read from, present or not); "
                                    "`datasets download NAME` fetches one.", no_args_is_help=False)

    @datasets_app.callback(invoke_without_command=True)
    def datasets(ctx: typer.Context,
                 data_dir: str | None = typer.Option(None, "--data-dir", help="Data root (default $CNNLAB_DATA, "
                                                        "then ~/.cache/cnnlab/data).")) -> None:
        """List the datasets with where they would be read from and whether they are present."""
        if ctx.invoked_subcommand is not None:
            return
        from rich.table import Table

        from cnnlab.data.registry import dataset_status, list_datasets
        from cnnlab.paths import data_root

        table = Table(title=f"datasets (data root: {data_root(data_dir)})")
        for col in ("name", "present", "splits", "location", "description"):
            table.add_column(col, overflow="fold")
        for name in list_datasets():
            row = dataset_status(name, data_dir)
            style = {"yes": "green", "built-in": "green", "no": "red"}.get(row["present"], "yellow")
            table.add_row(name, f"[{style}]{row['present']}[/]", "/".join(row["splits"]), row["location"],
                          row["description"])
        console.print(table)

    @datasets_app.command("download")
    def download(name: str = typer.Argument(..., help="Dataset name, e.g. mnist, cifar10."),
                 data_dir: str | None = typer.Option(None, "--data-dir", help="Data root to download into."),
                 mirror: list[str] | None = typer.Option(None, "--mirror", help="Mirror base URL to try "
                                                            "first (repeatable; also $CNNLAB_DATA_MIRRORS).")) -> None:
        """Download a dataset's official files (md5-verified) and check that they decode."""
        from cnnlab.data.registry import download_dataset

        files = download_dataset(name, data_dir, mirrors=mirror or None)
        for f in files:
            console.print(f"[green]ok[/] {f}", soft_wrap=True)

    app.add_typer(datasets_app, name="datasets")

    data_app = typer.Typer(help="Check a labelled detection dataset (`data check data.yaml`).", no_args_is_help=True)

    @data_app.command("check")
    def check(data: str = typer.Argument(..., help="data.yaml, or a folder of images with their label files."),
              split: list[str] | None = typer.Option(None, "--split", help="Only this split (repeatable; "
                                                         "default: every split of the data.yaml)."),
              images: bool = typer.Option(True, "--images/--no-images", help="Decode every image (finds "
                                               "truncated/corrupt files) or read only their headers."),
              strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
              limit: int = typer.Option(30, "--limit", help="Issues shown per kind (all go to --json)."),
              json_out: str | None = typer.Option(None, "--json", help="Also write the report to this JSON "
                                                       "file.")) -> None:
        """Lint a detection dataset before training: labels without images and images without labels, boxes
        out of range / NaN / without area, duplicate boxes, class-id and name problems, unreadable or
        truncated images, and boxes per class. Exit code 1 when errors are found (2: bad usage)."""
        from cnnlab.detect.check import check_detection_data

        report = check_detection_data(data, splits=split or None, check_images=images)
        _print_report(report, limit)
        if json_out:
            from cnnlab.io import write_json

            write_json(json_out, report.to_dict())
        if report.errors or (strict and report.warnings):
            raise typer.Exit(1)

    app.add_typer(data_app, name="data")

    @app.command("augment-preview")
    def augment_preview_cmd(
        dataset: str = typer.Option("digits", "--dataset", "-d", help="Dataset name or image folder."),
        data_dir: str | None = typer.Option(None, "--data-dir", help="Data root (or the folder for 'folder')."),
        split: str = typer.Option("train", "--split"),
        config: str | None = typer.Option(None, "--config", help="YAML with augmentation options "
                                             "(top level or under 'augment')."),
        preset: str | None = typer.Option(None, "--preset", help="none, standard, keras_course, textbook, "
                                             "mixup, cutmix."),
        rotation_range: float | None = typer.Option(None, "--rotation-range", help="Degrees."),
        width_shift_range: float | None = typer.Option(None, "--width-shift-range", help="Fraction of width."),
        height_shift_range: float | None = typer.Option(None, "--height-shift-range"),
        zoom_range: str | None = typer.Option(None, "--zoom-range", help="Z or LO,HI."),
        brightness_range: str | None = typer.Option(None, "--brightness-range", help="LO,HI multiplier."),
        horizontal_flip: bool | None = typer.Option(None, "--horizontal-flip/--no-horizontal-flip"),
        vertical_flip: bool | None = typer.Option(None, "--vertical-flip/--no-vertical-flip"),
        fill_mode: str | None = typer.Option(None, "--fill-mode", help="nearest, reflect, constant, wrap."),
        crop_padding: int | None = typer.Option(None, "--crop-padding", help="Pad then random-crop (px)."),
        cutout: int | None = typer.Option(None, "--cutout", help="Cutout square side (px)."),
        cutout_prob: float | None = typer.Option(None, "--cutout-prob"),
        mixup_alpha: float | None = typer.Option(None, "--mixup-alpha"),
        cutmix_alpha: float | None = typer.Option(None, "--cutmix-alpha"),
        mix_prob: float | None = typer.Option(None, "--mix-prob"),
        img_size: int | None = typer.Option(None, "--img-size", help="Image size for folder datasets."),
        output: str = typer.Option("augment_preview.png", "--output", "-o", help="PNG to write."),
        n: int = typer.Option(8, "--n", help="Samples per row."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Save a grid image: original samples and one row per configured augmentation."""
        from cnnlab.data.augment import AugmentConfig
        from cnnlab.data.preview import augment_preview
        from cnnlab.errors import UserError
        from cnnlab.io import read_yaml

        spec: dict = {}
        if preset:
            spec["preset"] = preset
        if config:
            loaded = read_yaml(config) or {}
            section = loaded.get("augment", loaded) if isinstance(loaded, dict) else None
            section = {"preset": section} if isinstance(section, str) else section
            if not isinstance(section, dict):
                raise UserError(f"{config}: expected a mapping of augmentation options (top level or under "
                                "'augment', which may also be a preset name)")
            spec.update(section)
        flags = {"rotation_range": rotation_range, "width_shift_range": width_shift_range,
                 "height_shift_range": height_shift_range, "zoom_range": _floats(zoom_range, "--zoom-range"),
                 "brightness_range": _floats(brightness_range, "--brightness-range"),
                 "horizontal_flip": horizontal_flip, "vertical_flip": vertical_flip, "fill_mode": fill_mode,
                 "crop_padding": crop_padding, "cutout": cutout, "cutout_prob": cutout_prob,
                 "mixup_alpha": mixup_alpha, "cutmix_alpha": cutmix_alpha, "mix_prob": mix_prob}
        spec.update({k: v for k, v in flags.items() if v is not None})
        if not spec:
            spec = {"preset": "standard"}
            console.print("no augmentation options given: previewing the 'standard' preset")
        cfg = AugmentConfig.from_dict(spec)
        options = {"img_size": img_size} if img_size else {}
        path = augment_preview(dataset, cfg, out=output, n=n, split=split, data_dir=data_dir, seed=seed, **options)
        console.print(f"saved {path} (rows: original, {', '.join(cfg.enabled_ops())}"
                      f"{', all combined' if len(cfg.enabled_ops()) > 1 else ''})", soft_wrap=True)


def _print_report(report, limit: int) -> None:   # noqa: ANN001 (a cnnlab.detect.check.DataReport)
    """The issues (at most ``limit`` of each kind), the boxes per class and split, and a verdict line."""
    from rich.table import Table

    if report.issues:
        table = Table(title=f"issues in {report.source}")
        for col in ("severity", "kind", "split", "problem"):
            table.add_column(col, overflow="fold")
        shown: dict[str, int] = {}
        for i in report.issues:
            shown[i.kind] = shown.get(i.kind, 0) + 1
            if shown[i.kind] <= limit:
                style = "red" if i.severity == "error" else "yellow"
                table.add_row(f"[{style}]{i.severity}[/]", i.kind, i.split, i.message)
        hidden = {k: n - limit for k, n in shown.items() if n > limit}
        console.print(table)
        if hidden:
            console.print("not shown: " + ", ".join(f"{n} more {k}" for k, n in hidden.items())
                          + " (--limit N, or --json FILE for all)", soft_wrap=True)
    if report.counts:
        splits = list(report.counts)
        table = Table(title="boxes per class" + (f" (layout: {', '.join(f'{s} {k}' for s, k in report.layouts.items())})"
                                                 if report.layouts else ""))
        table.add_column("class")
        for sp in splits:
            table.add_column(sp, justify="right")
        for name in report.names:
            table.add_row(name, *(str(report.counts[sp]["per_class"].get(name, 0)) for sp in splits))
        table.add_row("[bold]boxes[/]", *(str(report.counts[sp]["boxes"]) for sp in splits))
        table.add_row("[bold]images[/]", *(str(report.counts[sp]["images"]) for sp in splits))
        table.add_row("[bold]labelled images[/]", *(str(report.counts[sp]["labelled"]) for sp in splits))
        console.print(table)
    errors, warns = len(report.errors), len(report.warnings)
    verdict = "[green]ok[/]" if not errors else f"[red]{errors} error(s)[/]"
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(report.kinds().items()))
    console.print(f"{verdict}, {warns} warning(s)" + (f": {kinds}" if kinds else ""), soft_wrap=True)
