"""CLI: ``cnnlab summary``, ``cnnlab arith`` and ``cnnlab visualize kernels|features|gradcam``."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli.common import console

visualize_app = typer.Typer(
    name="visualize",
    help="Draw a model's kernels, feature maps or Grad-CAM heat maps as PNG images.",
    no_args_is_help=True,
)

SOURCE_HELP = "A run folder, a checkpoint file, or a model name (random init, e.g. lenet5, timm/resnet10t)."
IMAGE_HELP = ("Image file; default: one of a run's own held-out images, else china.jpg (scikit-learn's bundled "
              "photos china.jpg and flower.jpg work offline).")
OVERWRITE_HELP = "Replace an existing PNG (default: write name-2.png, name-3.png... beside it)."


def _default_out(source: str, kind: str) -> Path:
    """``<run>/visualize/<kind>.png`` for a run, else ``<model>_<kind>.png`` in the current folder."""
    p = Path(source)
    if p.is_dir():
        return p / "visualize" / f"{kind}.png"
    if p.is_file():
        run = p.parent.parent if p.parent.name == "weights" else p.parent
        return run / "visualize" / f"{p.stem}_{kind}.png"
    return Path(f"{source.replace('/', '_')}_{kind}.png")


def _wrote(out: Path, asked: Path) -> None:
    """``wrote PATH``, saying so when an existing picture was kept and the new one numbered."""
    kept = f" ({Path(asked).name} exists and was kept; --overwrite replaces it)" if Path(out) != Path(asked) else ""
    console.print(f"wrote {out}{kept}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""

    @app.command("summary")
    def summary_cmd(
        source: str = typer.Argument(..., help=SOURCE_HELP),
        input: str = typer.Option(None, "--input", "-i",
                                  help="Input size CxHxW, e.g. 3x32x32 (default: the run's or model's)."),
        batch: int = typer.Option(1, "--batch", "-b", help="Batch size for the memory figures."),
        num_classes: int = typer.Option(10, "--num-classes", help="Number of classes when building a model by name."),
        depth: int = typer.Option(None, "--depth", help="Collapse layers deeper than this into their parent."),
        json_path: Path = typer.Option(None, "--json", help="Also write the summary as JSON here."),
        markdown: Path = typer.Option(None, "--md", help="Also write the summary as Markdown here."),
    ) -> None:
        """Layer table: output shapes, parameters, MACs/FLOPs and memory (fp32/fp16)."""
        from cnnlab.inspect.summary import summary
        from cnnlab.io import atomic_write_text

        result = summary(source, input_size=input, batch=batch, num_classes=num_classes, max_depth=depth)
        console.print(result.to_rich_table())
        if json_path:
            result.save_json(json_path)
            console.print(f"wrote {json_path}")
        if markdown:
            atomic_write_text(markdown, result.to_markdown())
            console.print(f"wrote {markdown}")

    @app.command("arith")
    def arith_cmd(
        n: int = typer.Option(..., "--n", help="Input size N (pixels per side)."),
        f: int = typer.Option(..., "--f", help="Kernel (window) size F."),
        s: int = typer.Option(1, "--s", help="Stride S."),
        p: str = typer.Option("0", "--p", help="Padding P per side, or 'same' / 'valid'."),
        c: int = typer.Option(None, "--c", help="Input channels C (for parameters)."),
        k: int = typer.Option(None, "--k", help="Number of filters K (for parameters)."),
        pool: bool = typer.Option(False, "--pool", help="A pooling layer: no parameters, K = C."),
        no_bias: bool = typer.Option(False, "--no-bias", help="Convolution without bias terms."),
    ) -> None:
        """Conv/pool arithmetic: output size (N + 2P - F)/S + 1 and parameters F*F*C*K + K."""
        from cnnlab.inspect.arith import conv_arith

        r = conv_arith(n, f, s, p, c=c, k=k, pool=pool, bias=not no_bias)
        pad = f"same (total {r.pad_total}: {r.p} before, {r.pad_total - r.p} after)" if r.pad_total is not None \
            else str(r.p)
        console.print(f"{r.kind}: N={n} F={f} S={s} P={pad}")
        if r.pad_total is None:
            console.print(f"output size: ({n} + 2*{r.p} - {f}) / {s} + 1 = [bold]{r.out}[/]")
        else:
            console.print(f"output size: ceil({n} / {s}) = [bold]{r.out}[/]")
        if r.note:
            console.print(f"[yellow]note:[/] {r.note}")
        if r.c is not None and r.k is not None:
            console.print(f"output volume: {r.out} x {r.out} x {r.k}")
        if pool:
            console.print("parameters: 0 (pooling has none)")
        elif r.params is not None:
            formula = f"{f}*{f}*{c}*{k}" + ("" if no_bias else f" + {k}")
            console.print(f"parameters: {formula} = [bold]{r.params:,}[/]")
            if r.macs is not None:
                console.print(f"multiply-accumulates: {r.out}*{r.out}*{k}*{f}*{f}*{c} = {r.macs:,}")
        elif not pool:
            console.print("[dim]give --c and --k for the parameter count[/]")

    @visualize_app.command("kernels")
    def kernels_cmd(
        source: str = typer.Argument(..., help=SOURCE_HELP),
        layer: str = typer.Option(None, "--layer", "-l", help="Conv layer name (default: the first conv)."),
        output: Path = typer.Option(None, "--output", "-o", help="PNG path."),
        max_kernels: int = typer.Option(64, "--max-kernels", help="Draw at most this many kernels."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Kernels of the first convolution (or --layer) as a labelled grid (one panel per filter)."""
        from cnnlab.inspect.visualize import save_kernels

        asked = output or _default_out(source, "kernels")
        out = save_kernels(source, asked, layer=layer, max_kernels=max_kernels, overwrite=overwrite)
        _wrote(out, asked)

    @visualize_app.command("features")
    def features_cmd(
        source: str = typer.Argument(..., help=SOURCE_HELP),
        image: str = typer.Argument(None, help=IMAGE_HELP),
        layer: str = typer.Option(None, "--layer", "-l", help="Layer name from the model (default: first conv)."),
        output: Path = typer.Option(None, "--output", "-o", help="PNG path."),
        max_maps: int = typer.Option(64, "--max-maps", help="Draw at most this many maps."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Feature maps of a layer for an image: the input beside a grid of labelled channel maps."""
        from cnnlab.inspect.visualize import save_features

        asked = output or _default_out(source, "features")
        out = save_features(source, asked, image=image, layer=layer, max_maps=max_maps, overwrite=overwrite)
        _wrote(out, asked)

    @visualize_app.command("gradcam")
    def gradcam_cmd(
        source: str = typer.Argument(..., help=SOURCE_HELP),
        image: str = typer.Argument(None, help=IMAGE_HELP),
        class_idx: int = typer.Option(None, "--class", help="Class index (default: the top class)."),
        layer: str = typer.Option(None, "--layer", "-l",
                                  help="Layer name (default: the last layer with spatial maps)."),
        output: Path = typer.Option(None, "--output", "-o", help="PNG path."),
        overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    ) -> None:
        """Grad-CAM of a class: original | heat map (colour bar) | overlay, titled with class and score."""
        from cnnlab.inspect.visualize import save_gradcam

        asked = output or _default_out(source, "gradcam")
        out, res = save_gradcam(source, asked, image=image, class_idx=class_idx, layer=layer, overwrite=overwrite)
        label = f" ({res.class_name})" if res.class_name and res.class_name != str(res.class_idx) else ""
        console.print(f"class {res.class_idx}{label}, probability {res.probability:.3f}, logit {res.score:.3f}, "
                      f"layer {res.layer}; image: {res.caption}")
        _wrote(out, asked)

    app.add_typer(visualize_app, name="visualize")
