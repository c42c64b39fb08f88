"""Pictures a person would keep: training curves, confusion matrices and sweep plots (figure inspection)."""

from __future__ import annotations

import math

import numpy as np
import torch


def _history(n=5):
    return [{"epoch": e, "accuracy": 0.5 + 0.08 * e, "val_accuracy": 0.45 + 0.07 * e, "loss": 1 / e,
             "val_loss": 1.2 / e, "lr": 0.05 * (1 + math.cos(math.pi * e / n))} for e in range(1, n + 1)]


def test_curves_have_integer_epochs_an_lr_panel_and_the_best_epoch(tmp_path):
    from cnnlab.tasks.classify.metrics import curves_figure, plot_curves

    fig = curves_figure(_history(3), best_epoch=2, monitor="val_accuracy")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Accuracy", "Loss", "Learning rate"]
    for ax in fig.axes:
        fig.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks   # no 1.5, 2.5 epochs
        labels = ax.get_legend_handles_labels()[1]
        assert "best epoch 2 (val_accuracy)" in labels
    lr_line = fig.axes[2].lines[0]
    np.testing.assert_allclose(lr_line.get_ydata(), [h["lr"] for h in _history(3)])
    assert plot_curves(_history(3), tmp_path / "curves.png", best_epoch=2).is_file()


def test_confusion_colour_bar_says_colours_are_row_shares_and_numbers_counts():
    from cnnlab.tasks.classify.metrics import confusion_figure

    m = torch.tensor([[8, 2], [1, 29]])
    fig = confusion_figure(m, ["cat", "dog"])
    bar_ax = fig.axes[1]
    assert "row-normalised" in bar_ax.get_ylabel()
    ax = fig.axes[0]
    assert "counts" in ax.get_xlabel()
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "29", "8"]
    np.testing.assert_allclose(ax.images[0].get_array()[0], [0.8, 0.2])


def test_sweep_plot_legends_stay_off_the_bars_and_no_line_joins_settings():
    from cnnlab.detect.pipeline.sweep import sweep_figure
    from cnnlab.detect.pipeline.timing import STAGES

    rows = []
    for cap in ("320x240", "640x480"):
        for size in (320, 416):
            r = {"capture": cap, "imgsz": size, "max_fps": 15.0, "mAP50": 0.5, "mAP50_95": 0.3,
                 "achieved_fps": 12.0, "frame_ms": 30.0}
            r.update({f"{s}_ms": 2.0 for s in STAGES})
            rows.append(r)
    fig = sweep_figure(rows)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for line in ax.lines:                       # categorical cells: markers only
            assert line.get_linestyle() in ("None", "none", ""), line.get_label()
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        area = ax.get_window_extent(renderer)
        assert box.y1 <= area.y0 + 1, "legend overlaps the plotting area"
    assert sum(ax.get_legend() is not None for ax in fig.axes) == 2


def test_detector_curves_mark_the_best_epoch(tmp_path, monkeypatch):
    from cnnlab.detect.train.plots import plot_detect_curves
    from cnnlab.plots import pyplot

    hist = [{"epoch": e, "box_loss": 1 / e, "obj_loss": 1 / e, "cls_loss": 1 / e, "val_box_loss": 1.1 / e,
             "val_obj_loss": 1 / e, "val_cls_loss": 1 / e, "mAP50": m, "mAP50_95": m / 2, "fitness": m,
             "lr": 0.01} for e, m in ((1, 0.1), (2, 0.3), (3, 0.25))]
    captured = []
    import cnnlab.detect.train.plots as plots

    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=100: (captured.append(fig), real(fig, path, dpi))[1])
    assert plot_detect_curves(hist, tmp_path / "results.png").is_file()
    fig = captured[0]
    for ax in fig.axes:
        assert "best epoch 2 (fitness)" in ax.get_legend_handles_labels()[1]
    pyplot().close(fig)
