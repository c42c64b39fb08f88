"""Reports: ``cnnlab report RUN...`` turns run folders into Markdown and a self-contained HTML page.

    cnnlab report runs/classify/exp runs/compare/backbones --title "CIFAR-10 backbones"
    cnnlab.report(["runs/classify/exp"], output="reports/exp")

Any mix of train runs, comparison folders (``cnnlab compare``), tuning searches (``cnnlab tune``) and
ablations (``cnnlab ablate``) goes into one report: configuration, result tables, curves, confusion
matrix and sample predictions with their images (the run's model on its own held-out images).
``report.md`` links its figures from ``assets/``; ``report.html`` embeds them, so the HTML file alone
can be mailed or uploaded.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import UserError
from cnnlab.experiments.report_blocks import Report, Text, render_html, render_markdown
from cnnlab.io import atomic_write_text


@dataclass
class ReportResult:
    """What :func:`report` returns: the folder and its two files, and which runs went in."""

    output: Path
    markdown: Path
    html: Path
    runs: list[tuple[str, Path]]

    def __fspath__(self) -> str:
        return str(self.html)


def report(
    runs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike | None = None,
    title: str | None = None,
    *,
    samples: int = 16,
    details: bool = True,
    project: str | os.PathLike = "runs",
) -> ReportResult:
    """Write ``report.md`` (+ ``assets/``) and a self-contained ``report.html`` about ``runs``.

    ``runs`` are train run folders, comparison, tuning or ablation folders (or files inside a train
    run). ``output`` defaults to ``<project>/report/<first run's name>`` (a fresh folder each time).
    ``samples`` is the number of held-out images whose predictions are shown per train run (0: none);
    ``details`` adds each comparison entry's own section after the comparison table.
    """
    from cnnlab.experiments.report_runs import detect_kind, section

    items = [runs] if isinstance(runs, (str, os.PathLike)) else list(runs)
    if not items:
        raise UserError("no run folders given")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise UserError(f"samples must be a whole number >= 0, got {samples!r}")
    found = [detect_kind(r) for r in items]   # every input is checked before anything is written
    if output is None:
        from cnnlab.runs import new_run_dir

        out_dir = new_run_dir(project, "report", found[0][1].resolve().name or "report")
    else:
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"--output {out_dir} is a file, not a folder")
        out_dir.mkdir(parents=True, exist_ok=True)
    from cnnlab import __version__

    names = ", ".join(f"{kind} {folder.name}" for kind, folder in found)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    sources = ", ".join(str(folder) for _, folder in found)
    doc = Report(title or f"cnnlab report: {names}",
                 [Text(f"Generated {stamp} by cnnlab {__version__} from {sources}.")])
    os.environ.setdefault("MPLBACKEND", "Agg")
    with tempfile.TemporaryDirectory(prefix="cnnlab-report-") as tmp:
        for kind, folder in found:
            doc.blocks += section(kind, folder, Path(tmp), samples=samples, details=details)
        md = render_markdown(doc, out_dir)
        page = render_html(doc)
    md_path = atomic_write_text(out_dir / "report.md", md)
    html_path = atomic_write_text(out_dir / "report.html", page)
    return ReportResult(out_dir, md_path, html_path, found)
