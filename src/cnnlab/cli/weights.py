"""CLI ``weights``: list the known pretrained weights and ``weights get NAME`` (opt-in download, sha256)."""

from __future__ import annotations

import typer

from cnnlab.cli.common import console

DATA_DIR = typer.Option(None, "--data-dir", help="Data root (default $CNNLAB_DATA, then ~/.cache/cnnlab/data).")


def register(app: typer.Typer) -> None:
    """Add the ``weights`` group to the main app."""
    weights_app = typer.Typer(help="Known pretrained weights (YOLOv3-tiny, YOLOv4-tiny, Yolo-Fastest, cnnlab's "
                                   "fast recipes): `weights` lists them, `weights get NAME` downloads one "
                                   "(sha256-checked), `weights pack RUN` makes one to publish.")

    @weights_app.callback(invoke_without_command=True)
    def weights(ctx: typer.Context, data_dir: str | None = DATA_DIR) -> None:
        """List the known weights, where they go and whether they are present."""
        if ctx.invoked_subcommand is not None:
            return
        from rich.table import Table

        from cnnlab.data.weights import KNOWN, weights_status

        table = Table(title="known weights (cnnlab weights get NAME)")
        for col in ("name", "files", "present", "checksum", "description"):
            table.add_column(col)
        for name, w in KNOWN.items():
            rows = weights_status(name, data_dir)
            present = sum(bool(r["present"]) for r in rows)
            checks = sorted({str(r["checksum"]) for r in rows})
            table.add_row(name, ", ".join(str(r["file"]) for r in rows),
                          f"[{'green' if present == len(rows) else 'red'}]{present}/{len(rows)}[/]",
                          ", ".join(checks), w.description)
        console.print(table)

    @weights_app.command("get")
    def get(name: str = typer.Argument(..., help="A known model, e.g. yolo-fastest-1.1, yolov4-tiny."),
            data_dir: str | None = DATA_DIR,
            trust_new: bool = typer.Option(False, "--trust-new", help="Download files without a pinned "
                                           "checksum and record their sha256 (trust on first use)."),
            force: bool = typer.Option(False, "--force", help="Download again even if present."),
            quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.")) -> None:
        """Download a known model's files into the data root (yolo/), verified by sha256, atomically."""
        from cnnlab.data.weights import get_weights

        for path in get_weights(name, data_dir, trust_new=trust_new, force=force, quiet=quiet):
            console.print(f"[green]ok[/] {path}", soft_wrap=True)

    @weights_app.command("pack")
    def pack(run: str = typer.Argument(..., help="A run folder or checkpoint (its best weights)."),
             name: str | None = typer.Option(None, "--name", help="File name without .pt (default: the run's)."),
             output: str = typer.Option(".", "--output", "-o", help="Folder to write NAME.pt into."),
             no_ema: bool = typer.Option(False, "--no-ema", help="Pack the training weights, not the EMA ones.")
             ) -> None:
        """Write a run's weights as a slim inference checkpoint to publish, with its sha256 to pin."""
        from cnnlab.data.weights import pack_weights

        info = pack_weights(run, output, name=name, use_ema=not no_ema)
        console.print(f"[green]ok[/] {info['path']} ({int(info['bytes']) / 1e6:.2f} MB)", soft_wrap=True)
        console.print(f"sha256 {info['sha256']}", soft_wrap=True)

    app.add_typer(weights_app, name="weights")
