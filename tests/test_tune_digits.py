"""A real (tiny) search on the bundled digits dataset through cnnlab.train."""

from __future__ import annotations

import yaml

from cnnlab.config import TrainConfig
from cnnlab.experiments.tune import tune

DIGITS = {"dataset": "digits", "model": "mnist_cnn", "epochs": 2, "batch": 64, "optimizer": "adam",
          "lr": 1e-3, "threads": 1, "plots": False, "seed": 0}


def test_tune_on_digits_trains_real_runs_and_writes_a_runnable_best_yaml(tmp_path):
    import optuna

    space = {"lr": {"loguniform": [1e-3, 1e-2]}, "batch": {"choice": [32, 64]}}
    result = tune(DIGITS, space, sampler="random", trials=2, pruner="median", project=tmp_path, name="d",
                  plots=False, log=None)
    assert result.counts["complete"] == 2
    assert 0.3 < result.best_value <= 1.0
    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{result.run_dir / 'study.db'}")
    for t in study.trials:
        assert sorted(t.intermediate_values) == [1, 2]  # the pruning callback saw every epoch
        run = result.run_dir / t.user_attrs["run_dir"]
        assert (run / "weights" / "best.pt").is_file() and (run / "metrics.json").is_file()
        assert run.is_relative_to(result.run_dir)
        assert t.user_attrs["metrics"]["val_accuracy"] == t.value
    best = TrainConfig.from_yaml(result.best_config)  # ready for `cnnlab train --config best.yaml`
    assert best.lr == result.best_params["lr"] and best.batch == result.best_params["batch"]
    assert yaml.safe_load(result.best_config.read_text())["dataset"] == "digits"
