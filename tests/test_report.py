"""cnnlab report: Markdown + self-contained HTML from train, compare, tune and ablate folders."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import cnnlab
from cnnlab.errors import UserError
from cnnlab.experiments.report import report
from cnnlab.experiments.report_blocks import Report, Table, Text, md_text, render_html

# plots off: the report draws the curves and the confusion matrix from history.json and metrics.json
SHARED = {"dataset": "digits", "subset": 96, "epochs": 1, "batch": 32, "seed": 2, "verbose": 0,
          "validation_split": 0.2, "plots": False}


class PageParser(HTMLParser):
    """Checks balanced tags and collects headings, image sources and links."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.headings, self.srcs, self.hrefs, self._h = [], [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "img":
            self.srcs.append(attrs.get("src", ""))
        if tag in ("link", "script"):
            self.hrefs.append(attrs.get("href") or attrs.get("src") or tag)
        if tag == "a":
            self.hrefs.append(attrs.get("href", ""))
        if re.fullmatch(r"h[1-6]", tag):
            self._h = ""

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack[-3:]}"
        self.stack.pop()
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(self._h)
            self._h = None

    def handle_data(self, data):
        if self._h is not None:
            self._h += data


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.stack
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert all(h.startswith("#") for h in parser.hrefs)   # only in-page links: nothing external
    return parser


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """A real comparison folder with one finished entry (and one failed) on digits."""
    from cnnlab.experiments.compare import compare

    root = tmp_path_factory.mktemp("report")
    spec = {"shared": SHARED, "entries": ["lenet5", {"name": "bad", "model": "nope_net"}]}
    result = compare(spec, project=root, name="cmp", log=None)
    return result.run_dir, result.run_dir / result.rows[0]["run_dir"]


def test_report_on_a_train_run(comparison, tmp_path):
    _, run = comparison
    assert not (run / "curves.png").exists() and not (run / "confusion.png").exists()
    result = report(run, output=tmp_path / "rep", samples=6)
    md = result.markdown.read_text()
    for section in ("## Run lenet5", "### Metrics", "### Configuration", "### Training curves",
                    "### Confusion matrix", "### Sample predictions"):
        assert section in md, section
    assert "| epochs | 1 | 10 |" in md                         # options that differ from the defaults
    assert "```yaml" in md and "per-class accuracy" in md
    images = re.findall(r"!\[[^\]]*\]\((assets/[^)]+)\)", md)
    assert len(images) == 3 and all((result.output / p).is_file() for p in images)
    page = parse_page(result.html)
    assert len(page.srcs) == 3
    assert {"Metrics", "Configuration", "Training curves", "Confusion matrix", "Sample predictions"} <= set(page.headings)
    samples = md.split("### Sample predictions", 1)[1]
    assert len([line for line in samples.splitlines() if re.match(r"\| \d+ \|", line)]) == 6


def test_report_on_a_compare_folder_via_cli(comparison, tmp_path, cli):
    folder, _ = comparison
    out = tmp_path / "out"
    code, stdout, err = cli("report", str(folder), "--output", str(out), "--title", "<script>alert(1)</script> & co",
                            "--samples", "4")
    assert code == 0, err
    html = (out / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    page = parse_page(out / "report.html")
    assert "Comparison cmp" in page.headings and "Entry lenet5" in page.headings
    assert len(page.srcs) == 4     # comparison curves + the entry's curves, confusion matrix, samples
    md = (out / "report.md").read_text()
    assert md.startswith("# \\<script\\>alert(1)\\</script\\> & co")
    assert "| lenet5 | lenet5 | done |" in md and "| bad | nope_net | failed |" in md
    assert "report.html" in stdout


def _fake_train(config, callbacks, run_dir):
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    score = 0.9 - abs(config["lr"] - 0.01) - (0.05 if config.get("weight_decay") else 0.0) - 0.01 * config.get("fold", 0)
    for cb in callbacks:
        cb.on_epoch_end(None, 1, {"val_accuracy": score})
    return {"val_accuracy": score, "loss": 1.0 - score}


def test_report_on_tune_and_ablate_folders(tmp_path):
    from cnnlab.experiments.ablate import ablate
    from cnnlab.experiments.tune import tune

    base = {"dataset": "digits", "lr": 0.01, "epochs": 1}
    t = tune(base, {"lr": {"grid": [0.001, 0.01, 0.1]}}, sampler="grid", pruner="none", project=tmp_path,
             name="t", train_fn=_fake_train, plots=True, log=None)
    a = ablate(base, {"l2": {"on": {"weight_decay": 5e-4}, "off": {"weight_decay": 0.0}}}, folds=2,
               project=tmp_path, name="a", train_fn=_fake_train, log=None)
    result = report([t.run_dir, a.run_dir], output=tmp_path / "rep", title="search and ablation")
    md = result.markdown.read_text()
    assert "## Tuning t" in md and "### Trials" in md and "best configuration (best.yaml)" in md
    assert "## Ablation a" in md and "| best cell | l2=off |" in md
    assert len([line for line in md.split("### Trials", 1)[1].split("## Ablation")[0].splitlines()
                if re.match(r"\| \d+ \| complete", line)]) == 3
    page = parse_page(result.html)
    assert {"Tuning t", "Ablation a"} <= set(page.headings)
    assert len(page.srcs) >= 2     # at least one Optuna plot and the box plot
    assert cnnlab.report is report


def test_bad_inputs_are_one_line_errors(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "missing", tmp_path / "empty"):
        code, _, err = cli("report", str(target))
        assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    with pytest.raises(UserError, match="not a cnnlab run folder"):
        report([tmp_path / "empty"], output=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    with pytest.raises(UserError, match="no run folders"):
        report([])


def test_blocks_escape_markdown_and_html():
    assert md_text("a_b *c* <b>") == "a\\_b \\*c\\* \\<b\\>"
    cell = render_html(Report("<T>", [Table([{"x": "<i>&", "y": 0.123456}], ["x", "y"])]))
    assert "&lt;i&gt;&amp;" in cell and '<td class="num">0.1235</td>' in cell
    assert "<title>&lt;T&gt;</title>" in cell and "<i>" not in cell
    page = render_html(Report("T", [Text("1 < 2"), Table([{"a": "x\ny"}], ["a"])]))
    assert "<p>1 &lt; 2</p>" in page and "<td>x y</td>" in page


def test_html_comes_from_packaged_templates_listed_as_package_data():
    """The pages are Jinja2 templates shipped in the wheel (pyproject package-data), not Python strings."""
    import fnmatch
    from pathlib import Path

    import cnnlab

    tomllib = pytest.importorskip("tomllib")          # Python 3.11+

    root = Path(cnnlab.__file__).parent
    templates = sorted(p.relative_to(root).as_posix() for p in root.rglob("templates/*") if p.is_file())
    assert {"experiments/templates/report.html.j2", "experiments/templates/report.css",
            "detect/templates/live.html.j2", "templates/table.html.j2"} <= set(templates)
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    globs = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["cnnlab"]
    for t in templates:
        assert any(fnmatch.fnmatch(t, g) for g in globs), f"{t} is not package data"
    page = render_html(Report("T", [Text("x")]))
    css = (root / "experiments/templates/report.css").read_text()
    assert css.strip()[:40] in page                      # the stylesheet is inlined from its file
    import cnnlab.detect.web as web

    assert not hasattr(web, "PAGE")                      # the live page is a template too


def test_report_of_a_detection_run_shows_map_per_class_and_its_pictures(tmp_path):
    """A detect-train run is reported as a detection run (mAP, per-class AP, results.png, the validation
    detections), not as a classifier with "on ?" and the classifier's defaults."""
    from cnnlab.detect.train.scenes import write_scene_dataset
    from cnnlab.tasks.detect.run import train_detector

    data = write_scene_dataset(tmp_path / "scenes", n_train=8, n_val=4, size=64)
    run = train_detector(data, model="yolov3-tiny", width_mult=0.25, imgsz=64, epochs=1, batch=4,
                         project=tmp_path / "runs", name="det", verbose=0).run_dir
    res = report(run, output=tmp_path / "rep", samples=0)
    md = res.markdown.read_text()
    assert "detection: yolov3-tiny on " in md and "on ?" not in md
    assert "| mAP50 |" in md and "| class | images | instances | precision | recall | AP50 | AP50_95 |" in md
    for name in ("circle", "square", "triangle"):
        assert f"| {name} |" in md
    assert "| imgsz | 64 | 416 |" in md          # compared with the detection defaults
    assert "Training curves" in md and "Validation predictions" in md


def test_compare_of_detectors_one_table_with_map_curves_and_report(tmp_path):
    """``task: detect`` in a comparison: every entry through detect-train, mAP columns, the best by
    mAP50-95, mAP curves, a skip on the second call, and the comparison in a report."""
    from cnnlab.detect.train.scenes import write_scene_dataset
    from cnnlab.experiments.compare import compare

    data = write_scene_dataset(tmp_path / "scenes", n_train=8, n_val=4, size=64)
    spec = {"task": "detect", "shared": {"data": str(data), "model": "yolov3-tiny", "width_mult": 0.25, "imgsz": 64,
                                         "epochs": 2, "batch": 4, "verbose": 0, "plots": False},
            "entries": [{"name": "ciou", "box_loss": "ciou"}, {"name": "giou", "box_loss": "giou"}]}
    res = compare(spec, project=str(tmp_path / "runs"), name="det", log=None)
    assert [r["status"] for r in res.rows] == ["done", "done"]
    assert all(0 <= r["mAP50_95"] <= r["mAP50"] <= 1 and r["epochs"] == 2 for r in res.rows)
    best = max(res.rows, key=lambda r: r["mAP50_95"])
    assert best["best"] == "*" and res.best == best["entry"]
    assert (res.run_dir / "detect" / "ciou" / "weights" / "best.pt").is_file()
    table = (res.run_dir / "comparison.md").read_text()
    assert "mAP50_95" in table and "* = highest mAP50_95" in table and res.files["curves"].is_file()
    assert compare(spec, project=str(tmp_path / "runs"), name="det", log=None).counts["skipped"] == 2
    md = report(res.run_dir, output=tmp_path / "rep", samples=0).markdown.read_text()
    assert "mAP50_95" in md and "detection: yolov3-tiny" in md
