"""Optuna searches with a fast fake objective: grid coverage, resume, pruning, outputs, workers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from cnnlab.errors import UserError
from cnnlab.experiments.tune import tune

BASE = {"lr": 0.01, "epochs": 4, "optimizer": "sgd"}


def fake_train(config, callbacks, run_dir):
    """A 'training run': score peaks at lr=0.01, optimizer 'bad' costs 0.5; reports every epoch."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    score = 0.9 - 0.1 * (math.log10(config["lr"]) + 2) ** 2 - (0.5 if config["optimizer"] == "bad" else 0.0)
    epochs = int(config["epochs"])
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    for epoch in range(1, epochs + 1):
        for cb in callbacks:
            cb.on_epoch_end(None, epoch, {"val_accuracy": score * epoch / epochs, "loss": 1.0 / epoch})
    return {"val_accuracy": score, "loss": 1.0 / epochs, "epochs_run": epochs}


class Crash(RuntimeError):
    pass


def crashing_train(config, callbacks, run_dir):
    """fake_train, but the 4th run started in this process dies (a killed search)."""
    crashing_train.calls += 1
    if crashing_train.calls == 4:
        raise Crash("killed")
    return fake_train(config, callbacks, run_dir)


crashing_train.calls = 0


def _trials(run_dir):
    import optuna

    study = optuna.load_study(study_name=f"cnnlab-tune-{Path(run_dir).name}",
                              storage=f"sqlite:///{Path(run_dir) / 'study.db'}")
    return [t for t in study.get_trials() if not t.user_attrs.get("cnnlab_surplus")]


def _key(params):
    return tuple(sorted(params.items()))


def test_grid_sampler_covers_the_grid_exactly_once(tmp_path):
    space = {"lr": {"grid": [0.001, 0.01, 0.1]}, "optimizer": {"grid": ["sgd", "adam"]}}
    result = tune(BASE, space, sampler="grid", pruner="none", project=tmp_path, name="g", train_fn=fake_train,
                  plots=False, log=None)
    trials = _trials(result.run_dir)
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(_key(t.params) for t in trials) == sorted(
        _key({"lr": lr, "optimizer": o}) for lr in (0.001, 0.01, 0.1) for o in ("sgd", "adam"))
    assert result.best_params in ({"lr": 0.01, "optimizer": "sgd"}, {"lr": 0.01, "optimizer": "adam"})
    # running it again finds the grid done and runs nothing more
    again = tune(BASE, space, sampler="grid", pruner="none", project=tmp_path, name="g", train_fn=fake_train,
                 plots=False, log=None)
    assert again.counts["complete"] == 6 and len(_trials(result.run_dir)) == 6
    with pytest.raises(UserError, match="grid has 6 points"):
        tune(BASE, space, sampler="grid", trials=3, project=tmp_path, name="g2", train_fn=fake_train, log=None)


def test_resume_after_a_crash_repeats_no_finished_trial(tmp_path):
    space = {"lr": {"loguniform": [1e-4, 1.0]}, "optimizer": {"choice": ["sgd", "adam"]}}
    kwargs = dict(sampler="random", trials=8, pruner="none", project=tmp_path, name="r", plots=False, log=None)
    crashing_train.calls = 0
    with pytest.raises(Crash):
        tune(BASE, space, train_fn=crashing_train, **kwargs)
    before = _trials(tmp_path / "tune" / "r")
    finished = {t.number: t.params for t in before if t.state.name == "COMPLETE"}
    assert len(finished) == 3 and sum(t.state.name == "FAIL" for t in before) == 1
    failed = next(t for t in before if t.state.name == "FAIL")
    assert [t.params for t in before if t.state.name == "WAITING"] == [failed.params]  # queued again
    result = tune(BASE, space, train_fn=fake_train, **kwargs)
    after = _trials(result.run_dir)
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert len(complete) == 8
    for number, params in finished.items():  # finished trials kept as they were ...
        assert next(t for t in after if t.number == number).params == params
    assert len({_key(t.params) for t in complete}) == 8  # ... and none of them sampled again
    assert _key(failed.params) in {_key(t.params) for t in complete}  # the cut-off trial ran again
    rows = (result.run_dir / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + 9  # header + 8 complete + the failed one


def test_interrupted_grid_resumes_to_cover_every_point_once(tmp_path):
    space = {"lr": {"grid": [0.001, 0.01, 0.1]}, "optimizer": {"grid": ["sgd", "adam"]}}
    calls = []

    def interrupted(config, callbacks, run_dir):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third point
        return fake_train(config, callbacks, run_dir)

    kwargs = dict(sampler="grid", pruner="none", project=tmp_path, name="gi", plots=False, log=None)
    with pytest.raises(KeyboardInterrupt):
        tune(BASE, space, train_fn=interrupted, **kwargs)
    done_before = {t.number for t in _trials(tmp_path / "tune" / "gi") if t.state.name == "COMPLETE"}
    assert len(done_before) == 2
    seen = []
    tune(BASE, space, train_fn=lambda c, cb, d: seen.append(c) or fake_train(c, cb, d), **kwargs)
    assert len(seen) == 4  # only the 4 points not finished before
    complete = [t for t in _trials(tmp_path / "tune" / "gi") if t.state.name == "COMPLETE"]
    assert len(complete) == 6 and len({_key(t.params) for t in complete}) == 6


def test_resume_after_killed_process_reruns_only_the_cut_off_grid_point(tmp_path):
    """SIGKILL a search mid-trial: the next run re-queues that point and runs each grid point once."""
    marker = tmp_path / "third_trial_started"
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_tune_search import fake_train, BASE
        from cnnlab.experiments.tune import tune
        calls = []
        def slow(config, callbacks, run_dir):
            calls.append(1)
            if len(calls) == 3:
                open({str(marker)!r}, "w").close()
                time.sleep(60)
            return fake_train(config, callbacks, run_dir)
        tune(BASE, {{"lr": {{"grid": [0.001, 0.01, 0.1, 1.0]}}}}, sampler="grid", pruner="none",
             project={str(tmp_path)!r}, name="k", train_fn=slow, plots=False, log=None)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), "the search never reached its third trial"
    proc.kill()
    proc.wait()
    cut = _trials(tmp_path / "tune" / "k")
    assert sum(t.state.name == "COMPLETE" for t in cut) == 2 and sum(t.state.name == "RUNNING" for t in cut) == 1
    result = tune(BASE, {"lr": {"grid": [0.001, 0.01, 0.1, 1.0]}}, sampler="grid", pruner="none",
                  project=tmp_path, name="k", train_fn=fake_train, plots=False, log=None)
    trials = _trials(result.run_dir)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["lr"] for t in complete) == [0.001, 0.01, 0.1, 1.0]
    assert [t.state.name for t in trials].count("FAIL") == 1  # the cut-off trial, re-run as a new one
    for t in cut:
        if t.state.name == "COMPLETE":
            assert next(x for x in trials if x.number == t.number).datetime_complete == t.datetime_complete


def test_pruning_stops_a_clearly_bad_trial(tmp_path):
    space = {"optimizer": {"grid": ["sgd", "sgd2", "sgd3", "bad"]}}

    def train(config, callbacks, run_dir):
        cfg = {**config, "optimizer": "bad" if config["optimizer"] == "bad" else "sgd"}
        return fake_train(cfg, callbacks, run_dir)

    result = tune({**BASE, "epochs": 6}, space, sampler="grid", pruner="median", project=tmp_path, name="p",
                  train_fn=train, plots=False, log=None)
    trials = {t.params["optimizer"]: t for t in _trials(result.run_dir)}
    assert trials["bad"].state.name == "PRUNED"
    assert max(trials["bad"].intermediate_values) < 6  # stopped before its last epoch
    assert all(trials[o].state.name == "COMPLETE" for o in ("sgd", "sgd2", "sgd3"))
    assert result.counts["pruned"] == 1


def test_outputs_table_best_yaml_and_plots(tmp_path):
    space = {"lr": {"loguniform": [1e-3, 1e-1]}, "optimizer": ["sgd", "bad"], "augment.rotation_range": {"int": [0, 30]}}
    result = tune(BASE, space, sampler="tpe", trials=6, project=tmp_path, name="o", train_fn=fake_train, log=None)
    run = result.run_dir
    assert run == tmp_path / "tune" / "o"
    header = (run / "trials.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["trial", "state", "val_accuracy", "lr", "optimizer", "augment.rotation_range"]
    assert "| trial | state | val_accuracy |" in (run / "trials.md").read_text()
    best = yaml.safe_load(result.best_config.read_text())
    assert set(best) == {"lr", "epochs", "optimizer", "augment"}
    assert best["lr"] == pytest.approx(result.best_params["lr"])
    assert best["augment"] == {"rotation_range": result.best_params["augment.rotation_range"]}
    assert {"history", "importance", "parallel", "slice"} <= set(result.plots)
    for p in result.plots.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run / "tune.json").read_text())
    assert summary["kind"] == "cnnlab.tune" and summary["best"]["value"] == pytest.approx(result.best_value)
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 6
    # each trial's run folder sits under the search folder
    assert all((run / "trials" / f"trial_{i:04d}" / "config.yaml").is_file() for i in range(6))


def test_resuming_with_another_space_is_refused(tmp_path):
    tune(BASE, {"lr": {"grid": [0.01, 0.1]}}, sampler="grid", project=tmp_path, name="s", train_fn=fake_train,
         plots=False, log=None)
    with pytest.raises(UserError, match="different space"):
        tune(BASE, {"lr": {"grid": [0.01, 0.2]}}, sampler="grid", project=tmp_path, name="s",
             train_fn=fake_train, plots=False, log=None)


def test_missing_metric_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="available: epochs_run, loss, val_accuracy"):
        tune(BASE, {"lr": {"grid": [0.01]}}, sampler="grid", metric="val_top9", project=tmp_path, name="m",
             train_fn=fake_train, plots=False, log=None)


def test_two_local_workers_share_a_sqlite_grid(tmp_path):
    space = {"lr": {"grid": [0.001, 0.01, 0.1, 1.0]}}
    result = tune(BASE, space, sampler="grid", pruner="none", workers=2, project=tmp_path, name="w",
                  train_fn=fake_train, plots=False, log=None)
    trials = _trials(result.run_dir)
    assert sorted(t.params["lr"] for t in trials) == [0.001, 0.01, 0.1, 1.0]
    assert all(t.state.name == "COMPLETE" for t in trials)


def test_cli_tune_reports_budget_and_best(cli, tmp_path, monkeypatch):
    import cnnlab.experiments.tune as tune_mod

    monkeypatch.setattr(tune_mod, "cnnlab_train", fake_train)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "space.yaml").write_text("lr: {loguniform: [1e-3, 1e-1]}\noptimizer: [sgd, bad]\n")
    code, out, err = cli("tune", "cfg.yaml", "--space", "space.yaml", "--sampler", "random", "--trials", "5",
                         "--project", "p", "--name", "c", "--no-plots")
    assert code == 0, err
    assert "5 trials give a 22.6% chance" in out and "best val_accuracy" in out
    assert (tmp_path / "p" / "tune" / "c" / "best.yaml").is_file()
    code, out, err = cli("tune", "cfg.yaml", "--space", "space.yaml", "--trials", "x", "--project", "p")
    assert code == 2 and "--trials must be a number or 'auto'" in err
    code, out, err = cli("tune", "cfg.yaml", "--space", "space.yaml", "--storage", "redis://x", "--project", "p")
    assert code == 2 and "unsupported storage" in err


def test_cli_tune_with_a_base_config_naming_a_missing_dataset_creates_nothing(cli, tmp_path):
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({**BASE, "dataset": str(tmp_path / "no_such_folder")}))
    (tmp_path / "space.yaml").write_text("lr: {loguniform: [1e-3, 1e-1]}\n")
    code, out, err = cli("tune", "cfg.yaml", "--space", "space.yaml", "--trials", "2", "--project", "p")
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert "config: dataset folder not found" in err
    assert not (tmp_path / "p").exists()
