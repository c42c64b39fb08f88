"""Optimiser and schedule registries: every entry builds and behaves as its definition says."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlab.config import TrainConfig
from cnnlab.engine.optim import OPTIMIZERS, SCHEDULES, Schedule, create_optimizer, l1_penalty
from cnnlab.errors import UserError


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_steps(name):
    m = model()
    opt = create_optimizer(m, TrainConfig(optimizer=name, lr=0.01, weight_decay=1e-4))
    before = [p.detach().clone() for p in m.parameters()]
    m(torch.randn(4, 1, 3, 3)).sum().backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 1e-4]  # biases and norm scales are not decayed


def test_nesterov_and_unknown():
    opt = create_optimizer(model(), TrainConfig(optimizer="sgd", nesterov=True, momentum=0.9))
    assert opt.defaults["nesterov"] is True
    with pytest.raises(UserError, match="did you mean adam"):
        create_optimizer(model(), TrainConfig(optimizer="adan"))


def lrs(cfg, steps_per_epoch, logs=None):
    m = model()
    opt = create_optimizer(m, cfg)
    sched = Schedule(opt, cfg, steps_per_epoch)
    out = []
    for e in range(cfg.epochs):
        for _ in range(steps_per_epoch):
            out.append(sched.lr)
            opt.step()
            sched.step_batch()
        sched.step_epoch(logs[e] if logs else {})
    return out


def test_piecewise_in_steps_like_the_course():
    cfg = TrainConfig(lr=0.005, epochs=5, schedule="piecewise", boundaries=[10, 25, 40], boundary_unit="steps",
                      factors=0.1)
    got = lrs(cfg, 10)
    assert got[9] == pytest.approx(0.005) and got[10] == pytest.approx(5e-4)
    assert got[25] == pytest.approx(5e-5) and got[40] == pytest.approx(5e-6)


def test_piecewise_in_epochs_and_step():
    got = lrs(TrainConfig(lr=1.0, epochs=4, schedule="piecewise", boundaries=[2], factors=[0.5]), 3)
    assert got[5] == 1.0 and got[6] == 0.5
    got = lrs(TrainConfig(lr=1.0, epochs=4, schedule="step", step_size=1, gamma=0.5), 2)
    assert got[::2] == pytest.approx([1, 0.5, 0.25, 0.125])


def test_cosine_with_warmup():
    cfg = TrainConfig(lr=1.0, epochs=10, schedule="cosine", warmup_epochs=2, warmup_start=0.0, min_lr=0.0)
    got = lrs(cfg, 10)
    assert got[0] == 0.0 and got[10] == pytest.approx(0.5)      # linear warm-up over 20 steps
    assert max(got) == pytest.approx(1.0) and got[-1] < 0.01    # then cosine to ~0
    assert got[60] == pytest.approx(0.5 * (1 + math.cos(math.pi * 40 / 80)))


def test_onecycle_peaks_at_max_lr():
    got = lrs(TrainConfig(lr=0.01, epochs=10, schedule="onecycle", max_lr=0.1, pct_start=0.3), 10)
    assert max(got) == pytest.approx(0.1) and got.index(max(got)) in (29, 30) and got[-1] < 1e-3


def test_plateau_reduces_after_patience():
    logs = [{"val_accuracy": a} for a in (0.5, 0.6, 0.6, 0.6, 0.6)]
    cfg = TrainConfig(lr=1.0, epochs=5, schedule="plateau", plateau_patience=1, plateau_factor=0.1)
    got = lrs(cfg, 2, logs)
    assert got[::2] == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1])


def test_schedule_state_round_trip():
    cfg = TrainConfig(lr=1.0, epochs=4, schedule="cosine", warmup_epochs=1)
    opt = create_optimizer(model(), cfg)
    s = Schedule(opt, cfg, 5)
    for _ in range(7):
        opt.step()
        s.step_batch()
    opt2 = create_optimizer(model(), cfg)
    s2 = Schedule(opt2, cfg, 5)
    s2.load_state_dict(s.state_dict())
    for o, sched in ((opt, s), (opt2, s2)):
        o.step()
        sched.step_batch()
    assert s.lr == s2.lr


def test_registry_complete_and_l1():
    assert set(SCHEDULES) >= {"constant", "piecewise", "step", "cosine", "onecycle", "plateau"}
    m = nn.Linear(2, 2)
    with torch.no_grad():
        m.weight.fill_(-0.5)
    assert float(l1_penalty(m).detach()) == pytest.approx(2.0)  # bias excluded
