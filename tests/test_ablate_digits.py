"""A real (tiny) 2-cell ablation on the bundled digits dataset, 2 folds, through cnnlab.train."""

from __future__ import annotations

import yaml

from cnnlab.experiments.ablate import ablate

DIGITS = {"dataset": "digits", "model": "mnist_cnn", "epochs": 1, "batch": 64, "optimizer": "adam",
          "lr": 2e-3, "threads": 1, "plots": False, "seed": 0}


def test_ablate_on_digits_cross_validates_each_cell(tmp_path):
    factors = {"l2": {"on": {"weight_decay": 1e-3}, "off": {"weight_decay": 0.0}}}
    result = ablate(DIGITS, factors, folds=2, project=tmp_path, name="d", plots=False, log=None)
    assert [r["n"] for r in result.cells] == [2, 2]
    assert result.best in ("l2=on", "l2=off")
    for r in result.cells:
        assert all(0.2 < s <= 1.0 for s in r["scores"])
    runs = sorted(p.parent for p in (result.run_dir / "cells").rglob("config.yaml"))
    assert len(runs) == 4
    folds = sorted((c["folds"], c["fold"], c["weight_decay"]) for c in
                   (yaml.safe_load((r / "config.yaml").read_text()) for r in runs))
    assert folds == [(2, 0, 0.0), (2, 0, 0.001), (2, 1, 0.0), (2, 1, 0.001)]
