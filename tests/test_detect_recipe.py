"""The default detector training recipe: close-mosaic default, optimizer auto (Ultralytics' rule), bias
warm-up, automatic anchors when the cfg's fit badly, and class rows kept by name when re-heading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.config import DetectTrainConfig
from cnnlab.engine.optim import Schedule, auto_optimizer, create_optimizer


@pytest.mark.parametrize("epochs, expected", [(1, 0), (2, 1), (5, 1), (30, 3), (100, 10), (300, 10)])
def test_close_mosaic_default_is_the_last_tenth(epochs, expected):
    cfg = DetectTrainConfig(data="d", epochs=epochs)
    assert cfg.close_mosaic is None and cfg.close_mosaic_epochs() == expected
    assert DetectTrainConfig(data="d", epochs=epochs, close_mosaic=0).close_mosaic_epochs() == 0


def test_close_mosaic_turns_mosaic_off_in_the_last_epochs():
    from types import SimpleNamespace

    from cnnlab.tasks.detect.task import DetectTask

    task = DetectTask(DetectTrainConfig(data="d", epochs=20))
    task.train_data = SimpleNamespace(mosaic_off=False)
    off = []
    for epoch in range(1, 21):      # the engine counts epochs from 1
        task.on_epoch_start(None, epoch)
        off.append(task.train_data.mosaic_off)
    assert off == [False] * 18 + [True] * 2


def test_optimizer_auto_rule():
    # a fine-tune: 49 images, batch 16, 10 epochs -> 10 x ceil(49/64) = 10 iterations: AdamW, lr by classes
    assert auto_optimizer(49, 16, 10, 1) == ("adamw", 0.002, 0.9, 10)
    assert auto_optimizer(49, 16, 10, 80) == ("adamw", round(0.01 / 84, 6), 0.9, 10)
    assert auto_optimizer(6400, 16, 100, 1) == ("adamw", 0.002, 0.9, 10000)   # 10000 is not > 10000
    assert auto_optimizer(6464, 16, 100, 1)[:2] == ("sgd", 0.01)                # 10100 iterations
    assert auto_optimizer(117_000, 128, 300, 80)[:3] == ("sgd", 0.01, 0.9)     # batch above 64 counts as is
    assert DetectTrainConfig(data="d").optimizer == "auto"


def test_bias_warmup_falls_from_warmup_bias_lr_while_weights_rise():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    cfg = DetectTrainConfig(data="d", optimizer="sgd", lr=0.01, warmup_epochs=1, warmup_start=0.1,
                            warmup_bias_lr=0.1, schedule="constant", warmup_min_steps=0).optim()
    opt = create_optimizer(net, cfg)
    groups = {g.get("name", "decay" if g["weight_decay"] else "norm"): g for g in opt.param_groups}
    assert set(groups) == {"decay", "norm", "bias"}
    assert {id(p) for p in groups["bias"]["params"]} == {id(m.bias) for m in net}   # BN biases too (as YOLOv5)
    assert groups["bias"]["weight_decay"] == 0.0
    sched = Schedule(opt, cfg, steps_per_epoch=10)
    lrs = []
    for _ in range(12):
        lrs.append((groups["decay"]["lr"], groups["bias"]["lr"]))
        opt.step()            # (no gradients: nothing moves; the order torch expects)
        sched.step_batch()
    assert lrs[0] == pytest.approx((0.001, 0.1))                       # weights at 10%, biases at 0.1
    assert lrs[5] == pytest.approx((0.001 + 0.009 * 0.5, 0.1 - 0.09 * 0.5))
    assert lrs[10] == pytest.approx((0.01, 0.01)) and lrs[11] == pytest.approx((0.01, 0.01))
    assert all(a[1] > b[1] for a, b in zip(lrs[:10], lrs[1:11], strict=True))   # biases fall
    # without warmup_bias_lr (other tasks): two groups as before
    plain = create_optimizer(net, DetectTrainConfig(data="d", optimizer="sgd", warmup_bias_lr=None).optim())
    assert len(plain.param_groups) == 2


def _samples(wh_pixels, n=40, seed=0):
    from cnnlab.detect.types import DetectionSample

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = wh_pixels * rng.uniform(0.8, 1.25, 2)
        out.append(DetectionSample(f"im{i}.jpg", 416, 416, [[10, 10, 10 + w, 10 + h]], [0]))
    return out


def test_anchor_check_keeps_fitting_anchors_and_replaces_bad_ones_deterministically():
    from cnnlab.tasks.detect.data import resolve_anchors

    cfg = DetectTrainConfig(data="d", model="yolov3-tiny", imgsz=416)
    assert cfg.anchors == "check"
    lines: list[str] = []
    fitting = _samples(np.array([80.0, 110.0]))          # near yolov3-tiny's 81,82 / 135,169
    assert resolve_anchors(cfg, fitting, lines.append) is None
    assert len(lines) == 1 and "kept" in lines[0] and "best possible recall 1.000" in lines[0]
    lines.clear()
    tiny = _samples(np.array([2.5, 3.0])) + _samples(np.array([3.0, 2.5]), seed=1)   # far below 10,14
    anchors = resolve_anchors(cfg, tiny, lines.append)
    assert len(lines) == 1 and "k-means" in lines[0] and "< 0.98" in lines[0] and "deterministic" in lines[0]
    assert len(anchors) == 6 and max(max(a) for a in anchors) < 5
    # deterministic: same anchors from the boxes in another order
    assert resolve_anchors(cfg, tiny[::-1], lambda m: None) == anchors
    # a pretrained head (fine-tuning) keeps the anchors its box rows were trained with, and says why
    lines.clear()
    assert resolve_anchors(cfg, tiny, lines.append, pretrained_head=True) is None
    assert len(lines) == 1 and "kept for its pretrained head" in lines[0]
    # 'auto' always clusters, null keeps the cfg's without looking
    assert resolve_anchors(cfg.replace(anchors="auto"), fitting, lambda m: None) is not None
    assert resolve_anchors(cfg.replace(anchors=None), tiny, lambda m: None) is None


def test_best_possible_recall_is_yolov5s_ratio_rule():
    from cnnlab.detect.train.anchors import best_possible_recall

    anchors = np.array([[10.0, 10.0]])
    wh = np.array([[10, 10], [39, 39], [41, 10], [2.6, 10], [2.4, 10], [1.5, 1.9]])
    assert best_possible_recall(wh, anchors) == pytest.approx(3 / 5)   # within 4x in both sides; < 2 px ignored


def _model(nc: int, seed: int):
    from _cfgs import tiny_cfg
    from cnnlab.darknet.cfg import parse_cfg_text
    from cnnlab.darknet.model import DarknetModel

    torch.manual_seed(seed)
    return DarknetModel(parse_cfg_text(tiny_cfg(nc), source="t"))


def test_reheading_keeps_box_objectness_and_matching_class_rows():
    from cnnlab.detect.train.model import transfer_head_classes

    src, dst = _model(3, 0), _model(3, 1)
    before = dst.state_dict()["layers.1.conv.weight"].clone()
    info = transfer_head_classes(dst, src.state_dict(), src.sections, ["cat", "person", "dog"],
                                 ["dog", "person", "zebra"])
    assert info == {"heads": 1, "matched": ["dog", "person"], "of": 3}
    sw = src.state_dict()["layers.1.conv.weight"].view(3, 8, -1)
    sb = src.state_dict()["layers.1.conv.bias"].view(3, 8)
    dw = dst.state_dict()["layers.1.conv.weight"].view(3, 8, -1)
    db = dst.state_dict()["layers.1.conv.bias"].view(3, 8)
    assert torch.equal(dw[:, :5], sw[:, :5]) and torch.equal(db[:, :5], sb[:, :5])   # box + objectness
    assert torch.equal(dw[:, 5], sw[:, 7]) and torch.equal(db[:, 5], sb[:, 7])       # dog <- dog
    assert torch.equal(dw[:, 6], sw[:, 6])                                           # person <- person
    assert torch.equal(dw[:, 7], before.view(3, 8, -1)[:, 7])                        # zebra: new


def test_coco_weights_reheaded_to_named_classes(tmp_path):
    from cnnlab.darknet.model import DarknetModel
    from cnnlab.darknet.weights import save_darknet_weights
    from cnnlab.darknet.yolo import yolov3_tiny_sections
    from cnnlab.detect.names import COCO80
    from cnnlab.detect.train.model import build_training_model

    torch.manual_seed(3)
    src = DarknetModel(yolov3_tiny_sections(80, 64, width_mult=0.125))
    save_darknet_weights(src, tmp_path / "coco.weights")
    model, info = build_training_model("yolov3-tiny", 2, 64, width_mult=0.125, weights=tmp_path / "coco.weights",
                                       names=["dog", "unicorn"])
    assert info["head_matched"] == ["dog"] and "1 of 2 classes kept by name from the 80-class head" in \
        info["head_classes"]
    assert info["head_pretrained"]      # so anchors 'check' keeps the anchors this head learnt
    assert not build_training_model("yolov3-tiny", 2, 64, width_mult=0.125)[1].get("head_pretrained")
    dog = COCO80.index("dog")
    for i in model.yolo_indices:
        s = src.state_dict()[f"layers.{i - 1}.conv.weight"].view(3, 85, -1)
        d = model.state_dict()[f"layers.{i - 1}.conv.weight"].view(3, 7, -1)
        assert torch.allclose(d[:, :5], s[:, :5]) and torch.allclose(d[:, 5], s[:, 5 + dog])
        assert not torch.allclose(d[:, 6], s[:, 5])


def test_default_run_resolves_optimizer_auto_and_records_it(tmp_path):
    from cnnlab.detect.train import train_detector
    from cnnlab.detect.train.scenes import write_scene_dataset
    from cnnlab.runs import read_run_config

    data = write_scene_dataset(tmp_path / "data", n_train=4, n_val=2, size=64, seed=0)
    lines: list[str] = []
    run = train_detector(data, model="yolov3-tiny", width_mult=0.125, imgsz=64, epochs=1, batch=4,
                         project=tmp_path, verbose=0, plots=False, log=lines.append)
    saved = read_run_config(run.run_dir)
    assert saved["optimizer"] == "adamw" and saved["lr"] == round(0.01 / 7, 6)   # 3 classes
    assert saved["warmup_bias_lr"] == 0.0 and saved["close_mosaic"] is None
    assert any(line.startswith("optimizer auto: adamw lr 0.001429") for line in lines), lines


def test_warmup_lasts_at_least_warmup_min_steps():
    from cnnlab.engine.optim import warmup_steps

    cfg = DetectTrainConfig(data="d")
    assert cfg.warmup_epochs == 3.0 and cfg.warmup_min_steps == 100
    assert warmup_steps(cfg.optim(), 4) == 100          # a 49-image fine-tune: 4 steps an epoch
    assert warmup_steps(cfg.optim(), 1000) == 3000      # a big dataset: 3 epochs
    assert warmup_steps(cfg.replace(warmup_epochs=0).optim(), 4) == 0     # no warm-up asked: none
    net = torch.nn.Conv2d(3, 2, 1)
    opt = create_optimizer(net, cfg.replace(optimizer="sgd", warmup_bias_lr=None).optim())
    sched = Schedule(opt, cfg.replace(optimizer="sgd", warmup_bias_lr=None).optim(), steps_per_epoch=4)
    for _ in range(50):
        opt.step()
        sched.step_batch()
    assert opt.param_groups[0]["lr"] < 0.01 * 0.6       # half-way through the 100 warm-up steps
