"""Ablation studies with a fast fake objective: factorial cells, k stratified folds, resume, outputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnnlab.errors import UserError
from cnnlab.experiments.ablate import ablate, factorial, parse_factors

FACTORS_YAML = """
augmentation:
  on:  {augment: {rotation_range: 15, horizontal_flip: true}}
  off: {augment: null}
dropout:
  on:  {model_kwargs.dropout: 0.25}
  off: {model_kwargs.dropout: 0.0}
l2:
  on:  {weight_decay: 5.0e-4}
  off: {weight_decay: 0.0}
"""
BASE = {"dataset": "digits", "model": "lenet5", "epochs": 2, "seed": 3, "model_kwargs": {"width": 1}}
LABELS = np.repeat(np.arange(4), [30, 20, 12, 9])  # imbalanced classes, 71 samples


def fake_train(config, callbacks, run_dir):
    """Score = fixed effects of the switches + a per-fold wobble; records the fold it validated on."""
    from cnnlab.data.splits import kfold_splits

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _, val = kfold_splits(LABELS, config["folds"], seed=config["seed"])[config["fold"]]
    (run_dir / "val_idx.json").write_text(json.dumps(val.tolist()))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    score = 0.80 + (0.05 if config.get("augment") else 0.0) \
        + (0.01 if config["model_kwargs"].get("dropout") else 0.0) \
        - (0.02 if config.get("weight_decay") else 0.0) + 0.005 * config["fold"]
    return {"val_accuracy": score, "val_loss": 1 - score}


def test_factors_yaml_on_off_keys_and_full_factorial():
    factors = parse_factors(yaml.safe_load(FACTORS_YAML))  # YAML 1.1 reads on/off as booleans
    assert [f.name for f in factors] == ["augmentation", "dropout", "l2"]
    assert list(factors[0].levels) == ["on", "off"]
    cells = factorial(factors)
    assert len(cells) == 8 and len({c.slug for c in cells}) == 8
    cfg = cells[-1].config(BASE)
    assert cfg["augment"] is None and cfg["model_kwargs"] == {"width": 1, "dropout": 0.0}
    assert cells[0].config(BASE)["augment"] == {"rotation_range": 15, "horizontal_flip": True}
    with pytest.raises(UserError, match="at least two levels"):
        parse_factors({"l2": {"on": {"weight_decay": 1e-4}}})
    with pytest.raises(UserError, match="mapping of option"):
        parse_factors({"l2": {"on": 3, "off": {}}})


def test_ablation_folds_are_disjoint_stratified_and_shared_by_cells(tmp_path):
    result = ablate(BASE, yaml.safe_load(FACTORS_YAML), folds=3, project=tmp_path, name="f",
                    train_fn=fake_train, plots=False, log=None)
    run = result.run_dir
    assert run == tmp_path / "ablate" / "f"
    per_cell = {}
    for cell_dir in sorted((run / "cells").iterdir()):
        folds = [json.loads((cell_dir / f"fold{k}" / "val_idx.json").read_text()) for k in range(3)]
        cfgs = [yaml.safe_load((cell_dir / f"fold{k}" / "config.yaml").read_text()) for k in range(3)]
        assert [(c["folds"], c["fold"]) for c in cfgs] == [(3, 0), (3, 1), (3, 2)]
        flat = [i for f in folds for i in f]
        assert len(flat) == len(set(flat)) == len(LABELS)  # disjoint, and together all of the training set
        overall = Counter(LABELS.tolist())
        for f in folds:  # stratified: each class within one sample of its share
            counts = Counter(LABELS[f].tolist())
            for cls, n in overall.items():
                assert abs(counts[cls] - n / 3) <= 1
        per_cell[cell_dir.name] = folds
    assert len(per_cell) == 8
    assert all(f == next(iter(per_cell.values())) for f in per_cell.values())  # same folds in every cell


def test_table_marks_best_cell_with_mean_and_std(tmp_path):
    result = ablate(BASE, yaml.safe_load(FACTORS_YAML), folds=3, project=tmp_path, name="t",
                    train_fn=fake_train, log=None)
    assert result.best == "augmentation=on, dropout=on, l2=off"
    row = next(r for r in result.cells if r["best"])
    assert row["mean"] == pytest.approx(0.865) and row["std"] == pytest.approx(0.005)  # sample std of 3 folds
    md = (result.run_dir / "ablation.md").read_text()
    assert "| augmentation=on, dropout=on, l2=off | on | on | off | 0.8650 ± 0.0050 |" in md
    assert sum(line.rstrip().endswith("| * |") for line in md.splitlines()) == 1
    csv_rows = (result.run_dir / "ablation.csv").read_text().splitlines()
    assert len(csv_rows) == 9 and csv_rows[0].startswith("cell,augmentation,dropout,l2,mean ± std,mean,std")
    assert result.files["box_plot"].read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["best"] == result.best and len(summary["cells"]) == 8


def test_ablation_resumes_skipping_finished_cell_folds(tmp_path):
    calls = []

    def flaky(config, callbacks, run_dir):
        calls.append((json.dumps(config.get("augment")), config["fold"]))
        if len(calls) == 5:
            raise KeyboardInterrupt  # the user stopped it
        return fake_train(config, callbacks, run_dir)

    factors = {"augmentation": {"on": {"augment": {"rotation_range": 10}}, "off": {"augment": None}},
               "l2": {"on": {"weight_decay": 1e-3}, "off": {"weight_decay": 0.0}}}
    with pytest.raises(KeyboardInterrupt):
        ablate(BASE, factors, folds=2, project=tmp_path, name="r", train_fn=flaky, plots=False, log=None)
    assert len(json.loads((tmp_path / "ablate" / "r" / "results.json").read_text())) == 4
    calls.clear()
    result = ablate(BASE, factors, folds=2, project=tmp_path, name="r", train_fn=fake_train, plots=False, log=None)
    assert all(r["n"] == 2 for r in result.cells)
    rerun = []
    result = ablate(BASE, factors, folds=2, project=tmp_path, name="r",
                    train_fn=lambda *a: rerun.append(a) or fake_train(*a), plots=False, log=None)
    assert rerun == []  # all finished: nothing trains again
    with pytest.raises(UserError, match="different folds"):
        ablate(BASE, factors, folds=3, project=tmp_path, name="r", train_fn=fake_train, log=None)


def test_cli_ablate(cli, tmp_path, monkeypatch):
    import cnnlab.experiments.ablate as ablate_mod

    monkeypatch.setattr(ablate_mod, "cnnlab_train", fake_train)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "factors.yaml").write_text(FACTORS_YAML)
    code, out, err = cli("ablate", "cfg.yaml", "--factors", "factors.yaml", "--folds", "2", "--project", "p",
                         "--no-plots")
    assert code == 0, err
    assert "best cell: augmentation=on, dropout=on, l2=off" in out
    assert (tmp_path / "p" / "ablate" / "exp" / "ablation.csv").is_file()
    code, out, err = cli("ablate", "cfg.yaml", "--factors", "factors.yaml", "--folds", "1")
    assert code == 2 and "--folds must be >= 2" in err
