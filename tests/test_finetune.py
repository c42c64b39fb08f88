"""Fine-tuning in the trainer: freezing, two phases, per-group learning rates, re-heading a cnnlab run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.engine.checkpoint import load_checkpoint
from cnnlab.errors import UserError
from cnnlab.models.transfer import load_pretrained, split_head

BASE = dict(dataset="digits", model="lenet5", batch=64, optimizer="sgd", lr=0.05, seed=0, verbose=0,
            threads=1, subset=256)


def _head_prefix() -> str:
    """State-dict prefix of lenet5's classifier (its last layer with parameters)."""
    from cnnlab.models import create_model

    model = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    head = split_head(model)[1][0]
    return next(n for n, m in model.named_modules() if m is head) + "."


def _body(state: dict) -> dict:
    prefix = _head_prefix()
    return {k: v for k, v in state.items() if not k.startswith(prefix)}


def test_two_phases_freeze_then_unfreeze(tmp_path):
    init = cnnlab.train(**BASE, epochs=1, project=tmp_path, name="init")
    start = load_checkpoint(init.run_dir / "weights" / "last.pt")["model"]
    run = cnnlab.train(**BASE, epochs=1, unfreeze="none", unfreeze_epochs=1, unfreeze_lr=0.01,
                       freeze="all", weights=str(init.run_dir / "weights" / "last.pt"),
                       project=tmp_path, name="ft", save_period=1)
    e1 = load_checkpoint(run.run_dir / "weights" / "epoch1.pt")
    e2 = load_checkpoint(run.run_dir / "weights" / "last.pt")
    head = [k for k in start if k not in _body(start)]
    assert head, "lenet5's classifier is its last layer"
    for k, v in _body(start).items():  # phase 1: body frozen, weights and BN statistics unchanged
        assert torch.equal(e1["model"][k], v), k
    assert any(not torch.equal(e1["model"][k], start[k]) for k in head)
    assert any(not torch.equal(e2["model"][k], v) for k, v in _body(start).items())  # phase 2 trains it
    assert e1["phase"] == 1 and e2["phase"] == 2
    hist = run.history
    assert [round(h["lr"], 6) for h in hist] == [0.05, 0.01]


def test_resume_across_the_phase_boundary_is_exact(tmp_path):
    cfg = dict(BASE, epochs=2, freeze="all", unfreeze="none", unfreeze_epochs=2, unfreeze_lr=0.02)
    full = cnnlab.train(**cfg, project=tmp_path, name="full")

    class StopAfter(cnnlab.train.Callback if hasattr(cnnlab.train, "Callback") else object):
        def __init__(self, n):
            self.n = n

        def on_train_begin(self, trainer):
            pass

        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == self.n:
                raise KeyboardInterrupt

        def on_train_end(self, trainer, logs):
            pass

        def state_dict(self):
            return {}

    for stop in (2, 3):  # at the boundary and inside phase 2
        with pytest.raises(KeyboardInterrupt):
            cnnlab.train(**cfg, project=tmp_path, name=f"cut{stop}", callbacks=[StopAfter(stop)])
        resumed = cnnlab.train(resume=tmp_path / "classify" / f"cut{stop}")
        a = load_checkpoint(full.run_dir / "weights" / "last.pt")["model"]
        b = load_checkpoint(resumed.run_dir / "weights" / "last.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a), f"resume after epoch {stop} differs"


def test_backbone_lr_makes_two_groups(tmp_path):
    from cnnlab.config import TrainConfig
    from cnnlab.engine.optim import create_optimizer
    from cnnlab.models import create_model

    model = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    opt = create_optimizer(model, TrainConfig(lr=0.1, backbone_lr=0.01))
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"head": 0.1, "backbone": 0.01}
    head_params = {id(p) for m in split_head(model)[1] for p in m.parameters()}
    for g in opt.param_groups:
        assert all((id(p) in head_params) == (g["name"] == "head") for p in g["params"])


def _grey_folder(root, classes=3, per_class=12):
    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / "train" / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            img = np.full((8, 8), 40 + 70 * c, np.uint8) + rng.integers(0, 20, (8, 8), dtype=np.uint8)
            Image.fromarray(img, "L").save(d / f"{i}.png")
    return root


def test_rehead_a_cnnlab_run_for_another_dataset(tmp_path, cli):
    source = cnnlab.train(**BASE, epochs=1, project=tmp_path, name="src")
    folder = _grey_folder(tmp_path / "shapes")
    run = cnnlab.train(dataset=str(folder), model="lenet5", dataset_options={"in_chans": 1}, img_size=8,
                       epochs=1, batch=8, pretrained=str(source.run_dir), freeze="all", verbose=0,
                       threads=1, project=tmp_path, name="re")
    src = load_checkpoint(source.run_dir / "weights" / "best.pt")["model"]
    new = load_checkpoint(run.run_dir / "weights" / "last.pt")["model"]
    for k, v in _body(src).items():
        assert torch.equal(new[k], v), k  # body kept (and frozen)
    w = _head_prefix() + "weight"
    assert new[w].shape[0] == 3 and src[w].shape[0] == 10

    from cnnlab.models import create_model

    other = create_model("mnist_cnn", num_classes=3, in_chans=1, img_size=8)
    with pytest.raises(UserError, match="do not fit this model"):
        load_pretrained(other, str(source.run_dir))
    code, _, err = cli("train", "--dataset", "digits", "--model", "lenet5", "--epochs", "1",
                       "--freeze", "stage9", "--project", str(tmp_path))
    assert code == 2 and "no stage 'stage9'" in err


def test_familiar_backbone_trains_on_unit_scale_pixels(tmp_path):
    """An alias (``mobilenet_025``) trains the ``transfer`` model, fed [0, 1] pixels (its ``input_norm``)."""
    run = cnnlab.train(**{**BASE, "subset": 64, "model": "mobilenet_025"}, model_kwargs={"input_size": 32},
                       epochs=1, project=tmp_path, name="tl")
    ckpt = load_checkpoint(run.run_dir / "weights" / "last.pt")
    assert ckpt["model_spec"]["name"] == "transfer"
    assert ckpt["model_spec"]["kwargs"]["backbone"] == "mobilenet_025"
    assert ckpt["preprocess"]["mean"] == [0.0] and ckpt["preprocess"]["std"] == [1.0]
