"""TrainConfig: YAML round trip, overrides, unknown keys, CLI-style parsing."""

from __future__ import annotations

import pytest

from cnnlab.config import TrainConfig, parse_cli_overrides
from cnnlab.errors import UserError


def test_yaml_round_trip(tmp_path):
    cfg = TrainConfig(dataset="cifar10", model="cifar10_cnn", boundaries=[10000, 25000, 40000],
                      boundary_unit="steps", augment={"horizontal_flip": True}, ema=0.999, max_params="30M")
    f = cfg.to_yaml(tmp_path / "c.yaml")
    back = TrainConfig.from_yaml(f)
    assert back == cfg


def test_unknown_key_names_close_match(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 3\nlearning_rate: 0.1\nmomentun: 0.8\n")
    with pytest.raises(UserError, match=r"unknown options 'learning_rate'.*'momentun' \(did you mean momentum\?\)"):
        TrainConfig.from_yaml(f)


def test_types_are_checked_and_coerced():
    cfg = TrainConfig.from_dict({"epochs": "5", "lr": "1e-3", "nesterov": "true", "grad_clip": None,
                                 "boundaries": 30, "factors": [0.1, 0.2]})
    assert (cfg.epochs, cfg.lr, cfg.nesterov, cfg.boundaries, cfg.factors) == (5, 0.001, True, [30.0], [0.1, 0.2])
    with pytest.raises(UserError, match="option epochs"):
        TrainConfig.from_dict({"epochs": "many"})
    with pytest.raises(UserError, match="validation_split"):
        TrainConfig.from_dict({"validation_split": 1.5})
    with pytest.raises(UserError, match="fold must be"):
        TrainConfig.from_dict({"folds": 5, "fold": 5})


def test_replace_overrides_win():
    base = TrainConfig(epochs=30, lr=0.1)
    cfg = base.replace(lr=0.01)
    assert (cfg.epochs, cfg.lr, base.lr) == (30, 0.01, 0.1)
    with pytest.raises(UserError, match="did you mean epochs"):
        base.replace(epoch=3)


def test_parse_cli_overrides():
    got = parse_cli_overrides(["--label-smoothing", "0.1", "--nesterov", "--no-amp", "--boundaries", "[5,10]",
                               "--ema=0.999", "--augment", "{horizontal_flip: true, mixup_alpha: 0.2}",
                               "--weights", "1e3", "--max-params", "30M", "--grad-clip", "none"], TrainConfig)
    assert got == {"label_smoothing": 0.1, "nesterov": True, "amp": False, "boundaries": [5.0, 10.0],
                   "ema": 0.999, "augment": {"horizontal_flip": True, "mixup_alpha": 0.2},
                   "weights": "1e3", "max_params": "30M", "grad_clip": None}
    with pytest.raises(UserError, match="did you mean label_smoothing"):
        parse_cli_overrides(["--label-smothing", "0.1"], TrainConfig)
    with pytest.raises(UserError, match="needs a value"):
        parse_cli_overrides(["--lr"], TrainConfig)
