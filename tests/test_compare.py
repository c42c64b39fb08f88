"""cnnlab compare: one table in three formats, failing entries, resume (done / half-finished / changed)."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import cnnlab.api
from cnnlab.engine.callbacks import Callback
from cnnlab.errors import UserError
from cnnlab.experiments.compare import COLUMNS, TimeBudget, compare, entry_dir
from cnnlab.experiments.compare_spec import load_spec, parse_seconds, parse_spec

SHARED = {"dataset": "digits", "subset": 96, "epochs": 1, "batch": 32, "seed": 1, "verbose": 0,
          "validation_split": 0.2}


class Counter:
    """Wraps cnnlab.api.train and records every call (config overrides and resume argument)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, config=None, callbacks=(), resume=None, **kw):
        self.calls.append({"config": config, "resume": resume})
        return self.inner(config, callbacks=callbacks, resume=resume, **kw)


class TableParser(HTMLParser):
    """Collects the rows of the HTML table (lists of cell texts) and checks tags are balanced."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.rows, self.stack, self._row, self._cell = [], [], None, None

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()
        if tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def test_compare_writes_one_table_reports_failures_and_skips_done_entries(tmp_path, monkeypatch):
    spec = {"name": "t", "shared": SHARED,
            "entries": ["lenet5", {"name": "broken", "model": "no_such_model"}]}
    result = compare(spec, project=tmp_path, log=None)
    run_dir = tmp_path / "compare" / "t"
    assert result.run_dir == run_dir and result.counts == {"trained": 1, "resumed": 0, "skipped": 0, "failed": 1}

    # CSV: one row per entry, the documented columns
    columns, rows = _csv_rows(run_dir / "comparison.csv")
    assert columns == COLUMNS + ["run_dir"]
    assert [r["entry"] for r in rows] == ["lenet5", "broken"]
    ok, bad = rows
    assert ok["status"] == "done" and ok["best"] == "*"
    assert int(ok["params_total"]) == int(ok["params_trainable"]) > 1000
    assert float(ok["mflops"]) > 0 and 0.0 <= float(ok["test_accuracy"]) <= 1.0
    assert float(ok["train_time_s"]) > 0 and float(ok["eval_time_s"]) > 0 and float(ok["train_images_per_s"]) > 0
    for key in ("train_accuracy", "train_loss", "val_accuracy", "val_loss", "test_loss", "test_top5_accuracy"):
        assert ok[key] != "", key
    assert bad["status"] == "failed" and "no_such_model" in bad["note"] and "\n" not in bad["note"]
    assert (run_dir / ok["run_dir"] / "metrics.json").is_file()
    assert (run_dir / ok["run_dir"]).resolve().parent.parent == run_dir.resolve()

    # Markdown: header with the columns and two rows
    md = (run_dir / "comparison.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |" and len(table) == 4
    assert "curves.png" in md and (run_dir / "curves.png").stat().st_size > 1000

    # HTML: parses, same header and rows, the figure embedded
    html = (run_dir / "comparison.html").read_text()
    parser = TableParser()
    parser.feed(html)
    assert not parser.stack
    assert parser.rows[0] == COLUMNS and [r[0] for r in parser.rows[1:]] == ["lenet5", "broken"]
    assert "data:image/png;base64," in html

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["kind"] == "cnnlab.compare" and summary["best"] == "lenet5"

    # running the same spec again: the done entry is skipped, only the failed one is retried
    metrics_file = run_dir / ok["run_dir"] / "metrics.json"
    mtime = metrics_file.stat().st_mtime_ns
    counter = Counter(cnnlab.api.train)
    monkeypatch.setattr(cnnlab.api, "train", counter)
    again = compare(spec, project=tmp_path, log=None)
    assert again.counts == {"trained": 0, "resumed": 0, "skipped": 1, "failed": 1}
    assert [c["config"]["model"] for c in counter.calls] == ["no_such_model"]
    assert metrics_file.stat().st_mtime_ns == mtime


class StopAfterFirstEpoch(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        raise KeyboardInterrupt


def test_half_finished_entry_resumes_from_last_checkpoint(tmp_path, monkeypatch):
    spec = {"shared": {**SHARED, "epochs": 2}, "entries": [{"name": "a", "model": "lenet5"}]}
    with pytest.raises(KeyboardInterrupt):
        compare(spec, project=tmp_path, name="r", callbacks=[StopAfterFirstEpoch()], log=None)
    run_dir = tmp_path / "compare" / "r"
    edir = entry_dir(run_dir, load_spec(spec).entries[0])
    assert (edir / "weights" / "last.pt").is_file()
    # metrics.json is written every epoch, marked as still training (issue 16)
    assert json.loads((edir / "metrics.json").read_text())["status"] == "training"
    first_epoch = json.loads((edir / "history.json").read_text())[0]

    counter = Counter(cnnlab.api.train)
    monkeypatch.setattr(cnnlab.api, "train", counter)
    result = compare(spec, project=tmp_path, name="r", log=None)
    assert result.counts["resumed"] == 1 and len(counter.calls) == 1
    assert Path(counter.calls[0]["resume"]) == edir
    history = json.loads((edir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and history[0]["loss"] == first_epoch["loss"]
    assert result.rows[0]["status"] == "done" and result.rows[0]["epochs"] == 2


def _fake_train(config=None, callbacks=(), resume=None, **kw):
    """Writes a run folder the way cnnlab.train does (config, history, metrics) without training."""
    run = Path(config["project"]) / "classify" / config["name"]
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "history.csv").write_text("epoch,val_accuracy,epoch_time\n1,0.5,1.0\n2,0.6,1.0\n")
    metrics = {"model": config["model"], "epochs": 2, "params_trainable": 10, "params_non_trainable": 2,
               "accuracy": 0.7, "loss": 0.9, "val_accuracy": 0.6, "test_accuracy": config["lr"],
               "test": {"images": 100, "images_per_s": 50.0}, "train_time_s": 2.0}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return SimpleNamespace(run_dir=run, metrics=metrics)


def test_changed_entry_is_trained_again_and_overrides_apply_to_all(tmp_path, monkeypatch):
    counter = Counter(_fake_train)
    monkeypatch.setattr(cnnlab.api, "train", counter)
    spec = {"shared": {"dataset": "digits", "lr": 0.1},
            "entries": [{"name": "a", "model": "lenet5"}, {"name": "b", "model": "lenet5", "lr": 0.2}]}
    first = compare(spec, project=tmp_path, name="c", log=None)
    assert first.best == "b" and len(counter.calls) == 2
    row = first.rows[0]
    assert row["params_total"] == 12 and row["eval_time_s"] == pytest.approx(2.0)
    assert "FLOPs not counted" in row["note"]          # the fake run has no checkpoint to trace
    spec["entries"][1]["lr"] = 0.05
    second = compare(spec, project=tmp_path, name="c", log=None)
    assert second.counts == {"trained": 1, "resumed": 0, "skipped": 1, "failed": 0}
    assert counter.calls[-1]["config"]["lr"] == 0.05 and second.best == "a"
    compare(spec, project=tmp_path, name="c", log=None, epochs=3)   # an override changes every entry
    assert [c["config"]["epochs"] for c in counter.calls[-2:]] == [3, 3]


def test_time_budget_stops_before_the_budget_is_exceeded():
    logs = []
    trainer = SimpleNamespace(train_time=0.0, history=[], epochs=10, stop_training=False, log=logs.append)
    budget = TimeBudget(10.0)
    for epoch in range(1, 11):
        trainer.train_time += 3.0
        trainer.history.append({"epoch": epoch})
        budget.on_epoch_end(trainer, epoch, {})
        if trainer.stop_training:
            break
    assert budget.stopped_epoch == 3 and trainer.train_time == 9.0 and logs
    assert parse_seconds("2m") == 120 and parse_seconds("90s") == 90 and parse_seconds(5) == 5.0


def test_spec_shorthands_and_budgets():
    spec = parse_spec({"base": {"dataset": "digits"}, "time_budget": "1m",
                       "entries": ["lenet5", {"name": "wide", "model": "lenet5", "model_kwargs.width": 2,
                                              "time_budget": 30}]})
    a, b = spec.entries
    assert a.name == "lenet5" and spec.entry_config(a)["model"] == "lenet5"
    assert spec.entry_config(b)["model_kwargs"] == {"width": 2}
    assert spec.budget(a) == 60 and spec.budget(b) == 30


@pytest.mark.parametrize("text, message", [
    ("[1, 2", "invalid YAML"),
    ("just text", "must be a mapping"),
    ("shared: {dataset: digits}", "'entries' must be a non-empty list"),
    ("entries: [lenet5]\nepochs: 3", "unknown key"),
    ("entries: [{name: a, model: lenet5, epoch: 3}]", "did you mean epochs"),
    ("entries: [lenet5, lenet5]", "two entries are named"),
    ("entries: [{name: a, model: lenet5, time_budget: soon}]", "time_budget"),
    ("entries: [{name: a, model: lenet5, batch: 0}]", "batch must be >= 1"),
])
def test_malformed_specs_are_one_line_user_errors(tmp_path, cli, text, message):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_spec(path)
    code, out, err = cli("compare", str(path))
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "compare").exists()


def test_cli_compare_applies_extra_options_to_every_entry(tmp_path, cli, monkeypatch):
    counter = Counter(_fake_train)
    monkeypatch.setattr(cnnlab.api, "train", counter)
    path = tmp_path / "spec.yaml"
    path.write_text("shared: {dataset: digits, lr: 0.1}\nentries: [lenet5, {name: b, model: lenet5, lr: 0.3}]\n")
    code, out, err = cli("compare", str(path), "--name", "viacli", "--epochs", "2")
    assert code == 0, err
    assert [c["config"]["epochs"] for c in counter.calls] == [2, 2]
    assert "| lenet5 | lenet5 | done |" in out and "best: b" in out
    assert (tmp_path / "runs" / "compare" / "viacli" / "comparison.html").is_file()
    assert cnnlab.compare is compare  # the lazy public name
