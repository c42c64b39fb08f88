"""The techniques behind the fast recipes: the airbench-style net, patch-whitening init, the
triangular schedule, flip TTA in the run, and the speedrun report (mean ± CI, time to target)."""

from __future__ import annotations

import math

import pytest
import torch

from cnnlab.errors import UserError
from cnnlab.models import count_params, create_model


def test_airbench_layout_and_size():
    model = create_model("airbench")
    # whitening 3->24 (2x2, bias) + groups 64-256-256 (3x3, no bias) + BN shifts + head 256->10
    convs = 24 * 3 * 4 + 24 + 9 * (24 * 64 + 64 * 64 + 64 * 256 + 256 * 256 + 256 * 256 + 256 * 256)
    trainable = convs + (64 + 64 + 256 * 4) + 256 * 10
    assert count_params(model) == (trainable, 3 * (64 + 64 + 256 * 4))  # BN scales fixed at 1 + running stats
    assert model.whiten.out_channels == 24 and model.scale == pytest.approx(1 / 9)
    small = create_model("airbench", widths=[8, 16, 16], in_chans=1, img_size=8, num_classes=3)
    assert small(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_whitening_init_decorrelates_patches():
    from cnnlab.models.patch_whitening import first_conv, patch_eigens, whiten_conv_

    g = torch.Generator().manual_seed(0)
    base = torch.randn(64, 1, 16, 16, generator=g)
    images = torch.cat([base, 0.5 * base + 0.1 * torch.randn(64, 1, 16, 16, generator=g),
                        torch.randn(64, 1, 16, 16, generator=g)], 1)  # correlated channels
    model = create_model("airbench", widths=[8, 8, 8])
    conv = first_conv(model)
    assert whiten_conv_(conv, images, eps=1e-6) == 24
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, conv.weight[:12])  # the + half of the pairs
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = flat.T @ flat / flat.shape[0]
    assert torch.allclose(cov, torch.eye(12), atol=2e-3)
    assert torch.equal(conv.weight[12:], -conv.weight[:12]) and torch.all(conv.bias == 0)
    values, _ = patch_eigens(images, (2, 2))
    assert values[0] >= values[-1] > 0


def test_whiten_init_in_a_run_is_fixed_and_resumes(tmp_path):
    import cnnlab
    from cnnlab.engine.checkpoint import load_checkpoint

    opts = dict(dataset="digits", subset=200, model="airbench", model_kwargs={"widths": [8, 8, 8]},
                whiten_init=True, epochs=2, batch=50, lr=0.05, project=str(tmp_path), verbose=0, plots=False,
                validation_split=0.0)
    run = cnnlab.train(**opts)
    first = load_checkpoint(run.run_dir / "weights" / "last.pt")["model"]["whiten.weight"]
    one = cnnlab.train(**{**opts, "epochs": 1, "name": "one"})
    after_one = load_checkpoint(one.run_dir / "weights" / "last.pt")["model"]["whiten.weight"]
    assert torch.equal(first, after_one)  # whitening filters are not trained
    resumed = cnnlab.train(resume=one.run_dir, epochs=2, verbose=0)
    last = load_checkpoint(resumed.run_dir / "weights" / "last.pt")
    assert torch.equal(last["model"]["whiten.weight"], first) and last["epoch"] == 2


def test_whiten_init_needs_a_convolution():
    from torch import nn

    from cnnlab.models.patch_whitening import first_conv

    with pytest.raises(UserError, match="no convolution"):
        first_conv(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


def test_triangle_schedule():
    from cnnlab.config.run import OptimConfig
    from cnnlab.engine.optim import Schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = Schedule(opt, OptimConfig(lr=1.0, schedule="triangle", epochs=1, pct_start=0.25, warmup_start=0.2,
                                      min_lr=0.1), steps_per_epoch=100)
    lrs = []
    for _ in range(100):
        lrs.append(sched.lr)
        opt.step()
        sched.step_batch()
    assert lrs[0] == pytest.approx(0.2) and lrs[25] == pytest.approx(1.0)
    assert lrs[99] == pytest.approx(1 + (0.1 - 1) * 74 / 75)
    assert max(lrs) == pytest.approx(1.0) and all(a <= b for a, b in zip(lrs[:25], lrs[1:26], strict=True))


def test_mean_ci_and_time_to_target():
    from cnnlab.experiments.speedrun import mean_ci, time_to_target

    stat = mean_ci([0.90, 0.92, 0.94])
    assert stat["mean"] == pytest.approx(0.92) and stat["std"] == pytest.approx(0.02)
    assert stat["ci95"] == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)  # t(0.975, 2)
    assert mean_ci([0.5])["ci95"] is None and mean_ci([])["mean"] is None
    curve = [{"epoch": 1, "time_s": 10.0, "images": 100, "accuracy": 0.7},
             {"epoch": 2, "time_s": 21.0, "images": 200, "accuracy": 0.91}]
    assert time_to_target(curve, 0.9, 5) == {"time_s": 21.0, "epochs": 2, "flops": 1000.0}
    assert time_to_target(curve, 0.95, 5) is None


def test_speedrun_writes_json_csv_png_and_a_report(tmp_path):
    from cnnlab.experiments.report import report
    from cnnlab.experiments.speedrun import speedrun
    from cnnlab.io import read_json

    result = speedrun("cifar10-fast", seeds=2, targets=[0.05, 0.999], project=str(tmp_path), dataset="digits",
                      subset=300, epochs=2, batch=100, model_kwargs={"widths": [8, 8, 8]}, verbose=0)
    info = read_json(result.output / "speedrun.json")
    assert info["seeds"] == [0, 1] and info["split"] == "test" and info["recipe"] == "cifar10-fast"
    for s in info["per_seed"]:
        assert [p["epoch"] for p in s["curve"]] == [1, 2]
        assert s["curve"][1]["time_s"] > s["curve"][0]["time_s"] > 0
        assert s["curve"][1]["images"] == 2 * s["curve"][0]["images"]
        assert s["targets"]["0.05"]["epochs"] == 1 and s["targets"]["0.999"] is None
        assert s["train_flops_per_image"] > 0
        assert s["final_accuracy"] == pytest.approx(s["last_epoch_accuracy"])  # no validation: the last weights
    assert info["targets"]["0.05"]["reached"] == 2 and info["targets"]["0.999"]["reached"] == 0
    assert (result.output / "speedrun.png").stat().st_size > 1000
    assert "final test accuracy %" in (result.output / "speedrun.csv").read_text()
    md = report([result.output], output=tmp_path / "rep", samples=0).markdown.read_text()
    assert "Speedrun" in md and "to 5 %: minutes" in md


def test_speedrun_rejects_bad_arguments(tmp_path):
    from cnnlab.experiments.speedrun import speedrun

    with pytest.raises(UserError, match="targets"):
        speedrun("cifar10-fast", targets=[90], project=str(tmp_path))
    with pytest.raises(UserError, match="seeds"):
        speedrun("cifar10-fast", seeds=0, project=str(tmp_path))
    with pytest.raises(UserError, match="unknown recipe"):
        speedrun("cifar10-fats", project=str(tmp_path))
    assert not (tmp_path / "speedrun").exists()


def test_bf16_cpu_autocasts_the_training_step(tmp_path):
    from cnnlab.config import TrainConfig
    from cnnlab.data import ArrayDataset, make_loader
    from cnnlab.tasks.classify.task import Trainer

    g = torch.Generator().manual_seed(0)
    ds = ArrayDataset(images=torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=g),
                      labels=torch.randint(0, 3, (64,), generator=g), classes=["a", "b", "c"], name="toy",
                      mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    seen = []
    for bf16 in (False, True):
        model = create_model("airbench", num_classes=3, img_size=8, widths=[8, 8, 8])
        hook = model.layers.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        cfg = TrainConfig(epochs=1, batch=32, lr=0.01, bf16_cpu=bf16, verbose=0, device="cpu")
        trainer = Trainer(model, cfg, make_loader(ds, 32, shuffle=True, num_classes=3), num_classes=3)
        trainer.fit()
        hook.remove()
        assert math.isfinite(trainer.history[-1]["loss"])
    assert seen == [torch.float32] * 2 + [torch.bfloat16] * 2


# ------------------------------------------------------------------------------ translate TTA, bf16 evaluation
def _mirrored(model, z, dims):
    probs = model(z).softmax(1)
    for d in dims:
        probs = probs + model(z.flip(d)).softmax(1)
    return probs / (len(dims) + 1)


def test_translate_tta_averages_the_shifted_and_mirrored_views():
    """airbench's second TTA level: half the flip average, half that of the 1-px shifted copies."""
    from cnnlab.tasks.classify.evaluate import tta_probs

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 4)).eval()
    x = torch.randn(5, 3, 6, 6)
    with torch.no_grad():
        got = tta_probs(model, x, ("hflip", "translate1"))
        # the same shifts written out: content moved 1 px down-right, and 1 px up-left (reflected edges)
        down_right = torch.cat([x[..., 1:2, :], x[..., :-1, :]], dim=-2)
        down_right = torch.cat([down_right[..., 1:2], down_right[..., :-1]], dim=-1)
        up_left = torch.cat([x[..., 1:, :], x[..., -2:-1, :]], dim=-2)
        up_left = torch.cat([up_left[..., 1:], up_left[..., -2:-1]], dim=-1)
        want = 0.5 * _mirrored(model, x, [-1]) + 0.25 * (_mirrored(model, down_right, [-1])
                                                         + _mirrored(model, up_left, [-1]))
        assert torch.allclose(got, want, atol=1e-6)
        assert torch.allclose(tta_probs(model, x, ("hflip",)), _mirrored(model, x, [-1]), atol=1e-6)
        assert torch.allclose(tta_probs(model, x, ()), model(x).softmax(1), atol=1e-6)
        assert torch.allclose(got.sum(1), torch.ones(5), atol=1e-5)
        tiny = torch.randn(2, 3, 1, 1)  # nothing to shift in a 1x1 image: the flip average alone
        flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 4)).eval()
        assert torch.allclose(tta_probs(flat, tiny, ("translate2",)), flat(tiny).softmax(1), atol=1e-6)


def test_tta_translate_option_is_checked_and_reaches_the_run_and_evaluate(tmp_path):
    import cnnlab
    from cnnlab.config import TrainConfig
    from cnnlab.tasks.classify.evaluate import _tta_ops, tta_from_augment

    assert tta_from_augment("standard", 1) == ("hflip", "translate1")
    assert tta_from_augment({"rotation_range": 10}, 2) == ("translate2",)
    assert _tta_ops(["hflip", "translate3"]) == ("hflip", "translate3")
    for bad in (["translate9"], ["translate"], ["rotate"]):
        with pytest.raises(UserError, match="unknown TTA"):
            _tta_ops(bad)
    for bad in (-1, 9):
        with pytest.raises(UserError, match="tta_translate"):
            TrainConfig(tta_translate=bad).validate()
    run = cnnlab.train(recipe="cifar10-fast", dataset="digits", subset=200, epochs=1, batch=100, verbose=0,
                       model_kwargs={"widths": [8, 8, 8]}, tta_translate=1, project=tmp_path, name="t")
    assert run.metrics["test_accuracy"] > 0
    r = cnnlab.evaluate(run.run_dir, tta=True, device="cpu")
    assert r["tta"] == ["hflip", "translate1"]
    assert r["accuracy"] == pytest.approx(run.metrics["test_accuracy"], abs=0.02)  # fp32 here, bf16 in the run


def test_bf16_evaluation_on_cpu_matches_fp32():
    from cnnlab.tasks.classify.evaluate import evaluate_model

    torch.manual_seed(0)
    model = create_model("airbench", num_classes=3, img_size=8, widths=[8, 8, 8]).eval()
    x, y = torch.randn(64, 3, 8, 8), torch.randint(0, 3, (64,))
    seen = []
    hook = model.layers.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    fp32, _ = evaluate_model(model, [(x, y)], 3, "cpu")
    bf16, _ = evaluate_model(model, [(x, y)], 3, "cpu", bf16=True, tta=["hflip", "translate1"])
    hook.remove()
    assert seen[0] == torch.float32 and set(seen[1:]) == {torch.bfloat16} and len(seen) == 1 + 6
    assert abs(fp32["loss"] - bf16["loss"]) < 0.1 and math.isfinite(bf16["loss"])
