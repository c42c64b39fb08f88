"""Many models (or one model under several settings) trained with the same data and budget, one table.

    cnnlab compare spec.yaml --name backbones
    cnnlab.compare("spec.yaml", name="backbones")

The spec (see :mod:`cnnlab.experiments.compare_spec`) holds shared training settings and a list of
entries. Every entry is trained with ``cnnlab.train`` into its own run folder inside
``<project>/compare/<name>/`` (``classify/<entry>``), then the folder gets one table as
``comparison.md``, ``comparison.csv`` and ``comparison.html`` (parameters, FLOPs, train / validation /
test accuracy and loss, top-5, training and evaluation time, images/s) and ``curves.png`` with every
entry's validation-accuracy curve (by epoch and by training time).

A failing entry is reported in the table (status + one-line reason) and the others go on. Running the
same spec again skips the entries already done, resumes a half-finished one from its ``last.pt`` and
retries failed ones; an entry whose settings changed is trained again.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.engine.callbacks import Callback
from cnnlab.errors import UserError
from cnnlab.experiments.compare_spec import CompareSpec, Entry, fingerprint, load_spec
from cnnlab.experiments.runner import relative
from cnnlab.experiments.tables import read_history
from cnnlab.io import atomic_write_text, read_json, write_json, write_yaml
from cnnlab.plots import pyplot, save_figure
from cnnlab.runs import run_finished

KIND = "cnnlab.compare"
RESULTS = "results.json"
SPEC_FILE = "compare.yaml"
SUMMARY = "summary.json"
TABLE = "comparison"
CURVES = "curves.png"
DIAGNOSTICS = "diagnostics.png"
ENTRY_TASK = "classify"   # cnnlab.train puts each entry's run in <compare folder>/classify/<entry>
# the extra columns of other tasks' comparisons, and the column that picks the best entry
TASK_COLUMNS = {"localize": ["val_iou", "val_correct"], "segment": ["val_pixel_accuracy", "val_miou"],
                "detect": ["mAP50", "mAP50_95", "precision", "recall"]}
TASK_BEST = {"localize": "val_correct", "segment": "val_miou", "detect": "mAP50_95"}
# the per-epoch value curves.png draws, by task (classification: validation accuracy)
TASK_CURVE = {"localize": "val_correct", "segment": "val_miou", "detect": "mAP50_95"}

COLUMNS = [
    "entry", "model", "status", "params_trainable", "params_total", "mflops", "epochs",
    "train_accuracy", "train_loss", "val_accuracy", "val_loss", "test_accuracy", "test_loss",
    "test_top5_accuracy", "train_time_s", "eval_time_s", "train_images_per_s", "eval_images_per_s",
    "best", "note",
]
COLUMN_HELP = {
    "params_trainable": "trainable parameters", "params_total": "all parameters",
    "mflops": "forward FLOPs per image, millions (cnnlab.inspect.summary)",
    "epochs": "epochs trained", "train_accuracy": "training accuracy of the last epoch",
    "train_loss": "training loss of the last epoch",
    "val_accuracy": "validation accuracy at the best epoch", "val_loss": "validation loss at the best epoch",
    "test_accuracy": "test accuracy of the best checkpoint", "test_loss": "test loss of the best checkpoint",
    "test_top5_accuracy": "test top-5 accuracy", "train_time_s": "seconds spent in training epochs",
    "eval_time_s": "seconds to evaluate the test split", "train_images_per_s": "training throughput",
    "eval_images_per_s": "evaluation throughput", "best": "* = highest test accuracy",
    "val_iou": "localize: mean IoU of the predicted boxes (validation)",
    "val_correct": "localize: class right and IoU >= 0.5 (validation)",
    "val_pixel_accuracy": "segment: pixel accuracy (validation)", "val_miou": "segment: mean IoU (validation)",
    "mAP50": "detect: mAP at IoU 0.5 of the best epoch (validation)",
    "mAP50_95": "detect: COCO mAP at IoU 0.5:0.95 of the best epoch (validation)",
    "precision": "detect: precision of the best epoch", "recall": "detect: recall of the best epoch",
}


def columns(sp: CompareSpec) -> list[str]:
    """The table's columns for the spec's task."""
    if sp.task not in TASK_COLUMNS:
        return COLUMNS
    i = COLUMNS.index("val_loss") + 1
    return COLUMNS[:i] + TASK_COLUMNS[sp.task] + COLUMNS[i:]


@dataclass
class CompareResult:
    """What :func:`compare` returns: the folder, one row per entry, the files written."""

    run_dir: Path
    rows: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)
    best: str | None = None
    counts: dict[str, int] = field(default_factory=dict)   # trained, resumed, skipped, failed

    def __fspath__(self) -> str:
        return str(self.run_dir)


class TimeBudget(Callback):
    """Stop training once the next epoch would take the run past ``seconds`` of training time.

    Training time is the trainer's ``train_time`` (epochs only, validation excluded), which a resumed
    run carries over. The first epoch always runs; after that the run stops when the time spent plus
    the mean epoch time so far would exceed the budget, so no entry gets more than its budget unless
    a single epoch is longer than the whole budget.
    """

    def __init__(self, seconds: float):
        if seconds <= 0:
            raise UserError(f"time budget must be > 0 seconds, got {seconds}")
        self.seconds = float(seconds)
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        spent = float(trainer.train_time)
        per_epoch = spent / max(1, len(trainer.history) or epoch)
        if epoch < trainer.epochs and spent + per_epoch > self.seconds:
            self.stopped_epoch = epoch
            trainer.stop_training = True
            trainer.log(f"time budget: stopping after epoch {epoch} ({spent:.1f}s of {self.seconds:.0f}s used)")


# -- the comparison -------------------------------------------------------------------------------------


def compare(
    spec: str | Path | Mapping[str, Any] | CompareSpec,
    *,
    project: str | Path = "runs",
    name: str | None = None,
    callbacks: Sequence[Callback] = (),
    log: Callable[[str], None] | None = print,
    **overrides: Any,
) -> CompareResult:
    """Train and evaluate every entry of ``spec``; write the table and the curves; resume finished work.

    ``spec`` is a YAML file, a mapping or a CompareSpec. The folder is ``<project>/compare/<name>``
    (``name``: the argument, else the spec's ``name``, else the spec file's stem, else ``compare``);
    the same name resumes. ``overrides`` (TrainConfig options) are applied to every entry on top of
    the spec's shared settings, e.g. ``compare("spec.yaml", epochs=1)``. ``callbacks`` are passed to
    every entry's training.
    """
    from cnnlab.experiments.compare_spec import validate
    from cnnlab.runs import new_run_dir

    say = log or (lambda _msg: None)
    sp = load_spec(spec)
    if overrides:
        from cnnlab.experiments.runner import task_entry

        task_entry(sp.task, 0).check_keys(overrides, "compare overrides")
        sp = dataclasses.replace(sp, shared={**sp.shared, **overrides})
        validate(sp)
    folder = name or sp.name or (Path(str(spec)).stem if isinstance(spec, (str, Path)) else None) or "compare"
    run_dir = new_run_dir(project, "compare", str(folder), exist_ok=True)
    write_yaml(run_dir / SPEC_FILE, sp.to_dict())
    results: dict[str, Any] = read_json(run_dir / RESULTS) if (run_dir / RESULTS).is_file() else {}
    counts = {"trained": 0, "resumed": 0, "skipped": 0, "failed": 0}
    n = len(sp.entries)
    say(f"comparison {run_dir}: {n} entries" + settings_text(sp, prefix=", "))
    for i, entry in enumerate(sp.entries, start=1):
        outcome = _run_entry(sp, entry, run_dir, results, list(callbacks), say, f"[{i}/{n}]")
        counts[outcome] += 1
        write_json(run_dir / RESULTS, results)  # after every entry: an interrupted comparison resumes here
    return write_outputs(run_dir, sp, results, counts)


def settings_text(sp: CompareSpec, prefix: str = "") -> str:
    keys = ("dataset", "subset", "epochs", "batch", "optimizer", "lr", "seed")
    parts = [f"{k} {sp.shared[k]}" for k in keys if k in sp.shared]
    if sp.time_budget:
        parts.append(f"time budget {sp.time_budget:g}s per entry")
    return (prefix + ", ".join(parts)) if parts else ""


def entry_dir(run_dir: Path, entry: Entry, task: str = ENTRY_TASK) -> Path:
    """Where ``entry``'s own run folder lives inside the comparison folder."""
    return Path(run_dir) / task / entry.slug


def _run_entry(sp: CompareSpec, entry: Entry, run_dir: Path, results: dict[str, Any],
               callbacks: list[Callback], say: Callable[[str], None], tag: str) -> str:
    """Train (or skip, or resume) one entry and store its record in ``results``; returns the outcome."""
    from cnnlab.experiments.runner import normalise_config, task_entry

    train = task_entry(sp.task, 1)
    config = normalise_config(sp.entry_config(entry), sp.task)
    budget = sp.budget(entry)
    fp = fingerprint(config, budget)
    edir = entry_dir(run_dir, entry, sp.task)
    prev = results.get(entry.slug) or {}
    same = prev.get("fingerprint") == fp
    if same and prev.get("status") == "done" and run_finished(edir):
        say(f"{tag} {entry.name}: already done, skipped")
        return "skipped"

    resume = same and prev.get("status") == "running" and _resumable(
        edir, int(config.get("epochs") or task_entry(sp.task, 0).default_of("epochs")))
    config.update(project=str(run_dir), name=entry.slug, exist_ok=True)
    timer = TimeBudget(budget) if budget else None
    cbs = ([timer] if timer else []) + callbacks
    results[entry.slug] = {"name": entry.name, "status": "running", "fingerprint": fp,
                           "model": config.get("model"), "run_dir": str(edir.relative_to(run_dir)),
                           "started": _dt.datetime.now().isoformat(timespec="seconds")}
    write_json(run_dir / RESULTS, results)
    start = time.perf_counter()
    try:
        if resume:
            say(f"{tag} {entry.name}: resuming {edir}")
            result = train(resume=edir, callbacks=cbs)
        else:
            if edir.exists():  # a stale run of other settings; always inside run_dir (a slug has no /)
                shutil.rmtree(edir)
            say(f"{tag} {entry.name}: training ({config.get('model')})")
            result = train(config, callbacks=cbs)
    except Exception as e:  # one entry's failure must not stop the comparison
        reason = one_line(e)
        say(f"{tag} {entry.name}: failed: {reason}")
        results[entry.slug].update(status="failed", reason=reason,
                                   wall_time_s=round(time.perf_counter() - start, 3))
        return "failed"
    record = entry_record(Path(result.run_dir), dict(result.metrics), config, timer, sp.task)
    record["wall_time_s"] = round(time.perf_counter() - start, 3)
    results[entry.slug].update(record, status="done", run_dir=relative(result.run_dir, run_dir))
    acc = record.get("test_accuracy", record.get("val_accuracy"))
    best_key = TASK_BEST.get(sp.task)
    extra = f", {best_key} {record[best_key]:.4f}" if best_key and isinstance(record.get(best_key), float) else ""
    say(f"{tag} {entry.name}: done" + (f", accuracy {acc:.4f}" if isinstance(acc, float) else "") + extra)
    return "resumed" if resume else "trained"


def one_line(e: BaseException, limit: int = 240) -> str:
    """The first line of an exception's message (with its type unless it is a UserError)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if not isinstance(e, UserError):
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _resumable(edir: Path, epochs: int) -> bool:
    """True when ``edir`` holds an interrupted run that can continue (last.pt before the last epoch)."""
    from cnnlab.io import torch_load_safe

    last = edir / "weights" / "last.pt"
    if not last.is_file() or run_finished(edir):
        return False
    try:
        from cnnlab.engine.checkpoint import check_checkpoint

        ckpt = torch_load_safe(last)
        check_checkpoint(ckpt, last, resumable=True)
    except UserError:
        return False
    return ckpt["epoch"] < epochs


def entry_record(edir: Path, metrics: Mapping[str, Any], config: Mapping[str, Any],
                 timer: TimeBudget | None = None, task: str = "classify") -> dict[str, Any]:
    """The table values of a finished entry: metrics.json figures plus FLOPs and evaluation time."""
    trainable = metrics.get("params_trainable")
    frozen = metrics.get("params_non_trainable") or 0
    split = "test" if isinstance(metrics.get("test"), Mapping) else "val"
    ev = metrics.get(split) if isinstance(metrics.get(split), Mapping) else {}
    images, ips = ev.get("images"), ev.get("images_per_s")
    record: dict[str, Any] = {
        "model": metrics.get("model") or config.get("model"),
        "params_trainable": trainable,
        "params_total": None if trainable is None else int(trainable) + int(frozen),
        "epochs": metrics.get("epochs", metrics.get("epochs_done")),
        "epochs_planned": config.get("epochs"),
        "train_accuracy": metrics.get("accuracy"), "train_loss": metrics.get("loss"),
        "val_accuracy": metrics.get("val_accuracy"), "val_loss": metrics.get("val_loss"),
        "test_accuracy": metrics.get("test_accuracy"), "test_loss": metrics.get("test_loss"),
        "test_top5_accuracy": metrics.get("test_top5_accuracy"),
        "train_time_s": metrics.get("train_time_s", metrics.get("train_seconds")),
        "train_images_per_s": metrics.get("images_per_s"),
        "eval_split": split if ev else None,
        "eval_time_s": round(images / ips, 4) if images and ips and math.isfinite(ips) and ips > 0 else None,
        "eval_images_per_s": ips,
    }
    if task in TASK_COLUMNS:
        record.update({k: metrics.get(k) for k in TASK_COLUMNS[task]},
                      train_accuracy=metrics.get("accuracy", metrics.get("pixel_accuracy")))
    notes = []
    if timer is not None and timer.stopped_epoch is not None:
        total = int(config.get("epochs") or 0) + int(config.get("unfreeze_epochs") or 0)  # both phases
        notes.append(f"time budget {timer.seconds:g}s reached after {timer.stopped_epoch} of {total} epochs")
    try:
        if task != "classify":
            raise UserError("the FLOP counter reads classification runs")
        from cnnlab.inspect.summary import summary

        record["flops"] = int(summary(edir).flops)
        record["mflops"] = record["flops"] / 1e6
    except Exception as e:  # FLOPs are a nice-to-have; a model the counter cannot trace keeps its row
        record["flops"] = record["mflops"] = None
        notes.append(f"FLOPs not counted ({one_line(e, 120)})")
    record["note"] = "; ".join(notes)
    return record


# -- outputs -------------------------------------------------------------------------------------------


def table_rows(sp: CompareSpec, results: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """One row per spec entry (in spec order) and the name of the best finished entry."""
    rows = []
    for e in sp.entries:
        rec = dict(results.get(e.slug) or {})
        status = rec.get("status", "pending")
        if status == "running":
            status = "interrupted"
        row = {c: rec.get(c) for c in columns(sp)}
        row.update(entry=e.name, status=status, model=rec.get("model") or sp.entry_config(e).get("model"),
                   run_dir=rec.get("run_dir"))
        if status == "failed":
            row["note"] = rec.get("reason", "")
        rows.append(row)
    done = [r for r in rows if r["status"] == "done"]
    key = "test_accuracy" if any(isinstance(r.get("test_accuracy"), (int, float)) for r in done) else "val_accuracy"
    key = TASK_BEST.get(sp.task, key)
    scored = [r for r in done if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    best = max(scored, key=lambda r: r[key])["entry"] if scored else None
    for r in rows:
        r["best"] = "*" if r["entry"] == best else ""
    return rows, best


def write_outputs(run_dir: Path, sp: CompareSpec, results: Mapping[str, Any],
                  counts: dict[str, int] | None = None) -> CompareResult:
    """Write comparison.md/.csv/.html, curves.png and summary.json from the stored results."""
    from cnnlab.experiments.report_blocks import Image, Report, Table, Text, clean_rows, render_html
    from cnnlab.experiments.tables import to_csv, to_markdown

    run_dir = Path(run_dir)
    rows, best = table_rows(sp, results)
    cols = columns(sp)
    files: dict[str, Path] = {}
    curves = plot_val_curves(run_dir, rows, run_dir / CURVES, TASK_CURVE.get(sp.task))
    if curves is not None:
        files["curves"] = curves
    diagnostics = plot_entry_diagnostics(run_dir, rows, run_dir / DIAGNOSTICS)
    if diagnostics is not None:
        files["diagnostics"] = diagnostics
    title = f"Comparison {run_dir.name}"
    settings = settings_text(sp).strip()
    helps = {**COLUMN_HELP, **({"best": f"* = highest {TASK_BEST[sp.task]}"} if sp.task in TASK_BEST else {})}
    legend = "; ".join(f"{k}: {v}" for k, v in helps.items() if k in cols)

    files["table_csv"] = atomic_write_text(run_dir / f"{TABLE}.csv", to_csv(rows, cols + ["run_dir"]))
    md = [f"# {title}", ""]
    if settings:
        md += [f"Shared settings: {settings}.", ""]
    table = to_markdown(clean_rows(rows, cols, markdown=True), cols)
    md += [table.rstrip("\n"), "", f"Columns: {legend}.", ""]
    if curves is not None:
        md += [f"![validation accuracy of every entry]({CURVES})", ""]
    if diagnostics is not None:
        md += [f"![training diagnostics of every entry, side by side]({DIAGNOSTICS})", ""]
    files["table_md"] = atomic_write_text(run_dir / f"{TABLE}.md", "\n".join(md))
    page = Report(title, [Text(f"Shared settings: {settings}.")] if settings else [])
    page.blocks += [Table(rows, cols), Text(f"Columns: {legend}.", style="meta")]
    if curves is not None:
        page.blocks.append(Image(curves, "validation accuracy of every entry, by epoch and by training time"))
    if diagnostics is not None:
        page.blocks.append(Image(diagnostics, "training diagnostics of every entry: gradient norm and saturated "
                                              "activations per layer over time"))
    files["table_html"] = atomic_write_text(run_dir / f"{TABLE}.html", render_html(page))

    write_json(run_dir / SUMMARY, {
        "kind": KIND, "name": run_dir.name, "spec": sp.to_dict(), "best": best, "columns": cols,
        "entries": rows, "status": dict(Counter(r["status"] for r in rows)),
        "files": {k: p.name for k, p in files.items()},
        "updated": _dt.datetime.now().isoformat(timespec="seconds"),
    })
    return CompareResult(run_dir, rows, files, best, dict(counts or {}))


def plot_entry_diagnostics(run_dir: Path, rows: list[dict[str, Any]], path: Path) -> Path | None:
    """The entries' training diagnostics side by side (entries trained with ``diagnostics: N``)."""
    from cnnlab.engine.diagnostics import JSON, plot_diagnostics_grid

    runs = [(str(r["entry"]), Path(run_dir) / str(r["run_dir"])) for r in rows
            if r.get("status") == "done" and r.get("run_dir") and (Path(run_dir) / str(r["run_dir"]) / JSON).is_file()]
    return plot_diagnostics_grid(runs, path) if runs else None


def plot_val_curves(run_dir: Path, rows: list[dict[str, Any]], path: Path, metric: str | None = None
                    ) -> Path | None:
    """One figure: every entry's validation accuracy (or ``metric``) by epoch (left) and by training
    time (right)."""
    series = []
    for r in rows:
        if r.get("status") != "done" or not r.get("run_dir"):
            continue
        hist = read_history(Path(run_dir) / str(r["run_dir"]))
        if metric is not None:
            key = metric
        else:
            key = "val_accuracy" if any(h.get("val_accuracy") is not None for h in hist) else "accuracy"
        pts = [(h.get("epoch"), h.get(key), h.get("epoch_time")) for h in hist if h.get(key) is not None]
        if pts:
            series.append((r["entry"], key, pts))
    if not series:
        return None
    fig, (ax_e, ax_t) = pyplot().subplots(1, 2, figsize=(12, 4.5))
    for label, key, pts in series:
        epochs, values, times = zip(*pts, strict=True)
        elapsed = list(itertools.accumulate(float(t or 0.0) for t in times))
        name = f"{label} (train)" if key == "accuracy" else label
        ax_e.plot(epochs, values, marker="o", ms=3, label=name)
        ax_t.plot(elapsed, values, marker="o", ms=3, label=name)
    what = "validation accuracy" if metric is None else f"validation {metric}"
    for ax, x, xlabel in ((ax_e, "epoch", "epoch"), (ax_t, "training time", "training time (s)")):
        ax.set(xlabel=xlabel, ylabel=what, title=f"{what} by {x}")
        ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    ax_e.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_t.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)
