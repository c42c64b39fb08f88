"""Training diagnostics, lr-find, ensembles and knob comparisons on the bundled digits (tiny, fast runs)."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.engine.diagnostics import activation_stats, first_last_grad_ratio, load_diagnostics
from cnnlab.errors import UserError
from cnnlab.experiments.ensemble import EnsembleModel, parse_weights
from cnnlab.experiments.lr_find import suggest

FAST = {"dataset": "digits", "batch": 64, "optimizer": "sgd", "lr": 0.05, "verbose": 0, "threads": 1,
        "model": "plain_cnn", "model_kwargs": {"depth": 6, "width": 4}}


def test_activation_stats_count_saturated_and_dead_units():
    y = torch.zeros(4, 3, 2, 2)
    y[:, 0] = 1.0          # channel 0 alive, 1 and 2 dead (ReLU output 0 everywhere)
    s = activation_stats(nn.ReLU(), y)
    assert s["saturated"] == pytest.approx(2 / 3) and s["dead"] == pytest.approx(2 / 3)
    sig = torch.full((2, 2, 3), 0.5)
    sig[:, 1] = 0.999      # channel 1 saturated everywhere
    s = activation_stats(nn.Sigmoid(), sig)
    assert s["saturated"] == pytest.approx(0.5) and s["dead"] == pytest.approx(0.5)
    assert math.isnan(activation_stats(nn.LeakyReLU(), y)["saturated"])   # no flat region


def test_diagnostics_show_the_vanishing_gradient(tmp_path):
    runs = {}
    for act, init in (("sigmoid", "xavier_normal"), ("relu", "he_normal")):
        runs[act] = cnnlab.train(FAST, epochs=1, activation=act, init=init, diagnostics=4, tensorboard=True,
                                 project=tmp_path, name=act)
    d = runs["sigmoid"].run_dir
    for f in ("diagnostics.csv", "diagnostics.json", "diagnostics.png"):
        assert (d / f).is_file(), f
    assert any(p.name.startswith("events.out") for p in (d / "tensorboard").iterdir())
    rows = list(csv.DictReader((d / "diagnostics.csv").open()))
    steps = sorted({int(r["step"]) for r in rows})
    assert steps[0] == 1 and all(s % 4 == 0 for s in steps[1:])      # step 1, then every 4 steps
    convs = [r for r in rows if r["type"] == "Conv2d" and r["step"] == "1"]
    assert len(convs) == 6 and all(float(r["grad_norm"]) > 0 and float(r["weight_norm"]) > 0 for r in convs)
    ratios = [float(r["update_ratio"]) for r in convs]
    assert all(0 < q < 1 for q in ratios)
    diag = {k: load_diagnostics(r.run_dir) for k, r in runs.items()}
    # sigmoid: the first layer's gradient is orders of magnitude below the last one's; ReLU + He: not
    assert first_last_grad_ratio(diag["sigmoid"]) < 1e-2
    assert first_last_grad_ratio(diag["relu"]) > 10 * first_last_grad_ratio(diag["sigmoid"])
    assert set(diag["sigmoid"]["saturated"]) and all(n.startswith("features.") for n in diag["sigmoid"]["saturated"])
    # the model spec holds the knobs: evaluate rebuilds the same net
    assert cnnlab.evaluate(d)["accuracy"] == pytest.approx(runs["sigmoid"].metrics["test_accuracy"])


def test_diagnostics_survive_a_resume(tmp_path):
    from cnnlab.engine.callbacks import Callback

    class StopAfterFirst(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cnnlab.train(FAST, epochs=2, diagnostics=5, project=tmp_path, name="r", callbacks=[StopAfterFirst()])
    run = tmp_path / "classify" / "r"
    first = load_diagnostics(run)["steps"]
    cnnlab.train(resume=run)
    steps = load_diagnostics(run)["steps"]
    assert steps[: len(first)] == first and steps[-1] > first[-1] and len(set(steps)) == len(steps)


def test_lr_find_suggestion_rule():
    lrs = [10 ** (-6 + 0.1 * i) for i in range(61)]        # 1e-6 .. 1
    loss = [2.3 - 2.0 / (1 + math.exp(-(math.log10(lr) + 3) * 3)) for lr in lrs]   # falls around 1e-3
    loss = [v if lr < 0.1 else v + (lr - 0.1) * 50 for v, lr in zip(loss, lrs, strict=True)]  # blows up at 0.1+
    suggestion, min_lr, steepest = suggest(lrs, loss)
    assert min_lr == pytest.approx(0.1, rel=0.3) and suggestion == pytest.approx(min_lr / 10)
    assert steepest == pytest.approx(1e-3, rel=0.3)
    with pytest.raises(UserError):
        suggest([1e-3, 1e-2], [1.0, 2.0])


def test_lr_find_writes_curve_and_suggests(tmp_path, cli):
    res = cnnlab.lr_find(FAST, start_lr=1e-4, end_lr=10, steps=40, project=tmp_path, name="lr")
    assert res.run_dir == tmp_path / "lr_find" / "lr" and res.files["plot"].read_bytes()[:4] == b"\x89PNG"
    assert len(res.lrs) == len(res.losses) <= 40 and res.lrs == sorted(res.lrs)
    assert res.lrs[0] <= res.suggestion * 10 <= res.lrs[-1] and res.suggestion == pytest.approx(res.min_loss_lr / 10)
    assert (res.run_dir / "lr_find.csv").read_text().startswith("step,lr,loss,smoothed_loss")
    code, out, err = cli("lr-find", "-d", "digits", "-m", "plain_cnn", "--steps", "12", "--start-lr", "1",
                         "--end-lr", "0.1", "--project", str(tmp_path))
    assert code == 2 and "start_lr < end_lr" in err and len(err.strip().splitlines()) == 1


def test_ensemble_model_averages_probabilities():
    torch.manual_seed(0)
    a, b = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    ens = EnsembleModel([a, b], [1, 3], [[0.5], [0.0]], [[0.5], [1.0]])
    x = torch.randn(5, 1, 2, 2)
    # member b takes pixels in [0, 1]: the ensemble maps a's normalisation (x*0.5+0.5) to b's
    want = 0.25 * a(x).softmax(1) + 0.75 * b(x * 0.5 + 0.5).softmax(1)
    assert torch.allclose(ens(x).exp(), want, atol=1e-6)
    assert parse_weights("1, 2", 2) == [1.0, 2.0] and parse_weights(None, 3) == [1.0] * 3
    for bad in ("1,x", "1", "-1,2", "0,0"):
        with pytest.raises(UserError):
            parse_weights(bad, 2)


def test_ensemble_of_runs_and_onnx(tmp_path, cli):
    pytest.importorskip("onnxruntime")
    runs = [cnnlab.train(FAST, epochs=2, seed=s, init="he_normal", project=tmp_path, name=f"s{s}").run_dir
            for s in range(3)]
    res = cnnlab.ensemble(runs, output=tmp_path / "ens", onnx=tmp_path / "ens.onnx")
    m = res.metrics
    accs = [r["accuracy"] for r in res.members]
    assert m["images"] == 360 and m["best_member_accuracy"] == max(accs)
    assert m["gain_over_best"] == pytest.approx(m["accuracy"] - max(accs))
    assert 0 <= m["vote_accuracy"] <= 1 and (tmp_path / "ens" / "ensemble.md").is_file()
    onnx_ev = cnnlab.evaluate(tmp_path / "ens.onnx", dataset="digits")
    assert onnx_ev["accuracy"] == pytest.approx(m["accuracy"], abs=1 / 360)
    code, out, err = cli("ensemble", str(runs[0]), str(runs[1]), "--weights", "1,2,3")
    assert code == 2 and "3 weights for 2 members" in err
    code, out, err = cli("ensemble", str(runs[0]), str(runs[1]), "--weights", "2,1", "--json", "e.json")
    assert code == 0 and "gain over the best member" in out


def test_compare_over_knobs_shows_diagnostics_side_by_side(tmp_path):
    spec = {"name": "acts", "shared": {**FAST, "epochs": 1, "diagnostics": 5},
            "entries": [{"name": "sigmoid", "activation": "sigmoid"}, {"name": "elu", "activation": "elu"},
                        {"name": "maxout", "activation": "maxout"}]}
    res = cnnlab.compare(spec, project=tmp_path, log=None)
    assert [r["status"] for r in res.rows] == ["done"] * 3
    params = [r["params_total"] for r in res.rows]
    assert params[0] == params[1] < params[2]           # maxout doubles the conv widths
    assert res.files["diagnostics"].is_file() and "diagnostics.png" in res.files["table_md"].read_text()
    report = cnnlab.report([res.run_dir], output=tmp_path / "rep", samples=0)
    assert "diagnostics" in report.markdown.read_text()


def test_bad_options_are_one_line(cli):
    code, out, err = cli("train", "-d", "digits", "--activation", "sigmod")
    assert code == 2 and "did you mean sigmoid" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("train", "-d", "digits", "--whiten", "pca")
    assert code == 2 and "whiten must be" in err
    code, out, err = cli("train", "-d", "digits", "-m", "mobilenet_v1", "--norm", "group", "--epochs", "1")
    assert code == 2 and "fixed layers" in err
