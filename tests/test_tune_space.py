"""Search spaces, dotted overrides and the random-search trial budget (no training, no Optuna study)."""

from __future__ import annotations

import math

import pytest

from cnnlab.errors import UserError
from cnnlab.experiments.budget import budget_message, chance_of_top, trials_for_top
from cnnlab.experiments.overrides import apply_params, deep_merge, get_dotted, set_dotted
from cnnlab.experiments.space import SearchSpace


def test_trials_for_top_matches_course_rule():
    # the course: "1 - 0.95^60 ≈ 0.95 chance of a top-5 % setting"; 59 is the smallest n that reaches it
    assert trials_for_top(0.05, 0.95) == 59
    assert chance_of_top(60, 0.05) == pytest.approx(1 - 0.95**60)
    assert chance_of_top(59, 0.05) >= 0.95 > chance_of_top(58, 0.05)
    for top, conf in [(0.1, 0.9), (0.01, 0.99), (0.2, 0.5), (0.5, 0.75)]:
        n = trials_for_top(top, conf)
        assert n == math.ceil(math.log(1 - conf) / math.log(1 - top) - 1e-9)
        assert chance_of_top(n, top) >= conf - 1e-12
        assert n == 1 or chance_of_top(n - 1, top) < conf
    assert trials_for_top(0.5, 0.75) == 2  # exact boundary: 1 - 0.5^2 = 0.75
    assert "59 trials" in budget_message(59, 0.05) and "95.2%" in budget_message(59, 0.05)
    with pytest.raises(UserError):
        trials_for_top(0.0, 0.95)
    with pytest.raises(UserError):
        trials_for_top(0.05, 1.0)


def test_space_parses_every_kind_and_yaml_exponents():
    space = SearchSpace.from_dict({"parameters": {
        "lr": {"loguniform": ["1e-4", "1e-1"]},       # PyYAML reads 1e-4 as a string
        "momentum": {"uniform": {"low": 0.5, "high": 0.9, "step": 0.1}},
        "epochs": {"int": [1, 5, 2]},
        "batch": [32, 64],
        "optimizer": {"grid": ["sgd", "adam"]},
        "augment.rotation_range": {"choice": [0, 15]},
    }})
    assert space.names == ["lr", "momentum", "epochs", "batch", "optimizer", "augment.rotation_range"]
    lr = space.by_name["lr"]
    assert (lr.kind, lr.low, lr.high) == ("loguniform", 1e-4, 1e-1)
    assert space.by_name["epochs"].grid_labels() == [1, 3, 5]
    assert space.by_name["momentum"].grid_labels() == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    assert space.by_name["batch"].kind == "choice"
    assert SearchSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()


@pytest.mark.parametrize("spec, match", [
    ({"lr": {"uniform": [1, 0.1]}}, "below"),
    ({"lr": {"loguniform": [0, 1]}}, "log range"),
    ({"lr": {"normal": [0, 1]}}, "unknown kind"),
    ({"lr": {"grid": []}}, "non-empty"),
    ({"lr": 0.1}, "expected one of"),
    ({"lr": {"int": [1.5, 3]}}, "whole number"),
    ({"x": {"grid": [1, 1]}}, "twice"),
    ({}, "mapping"),
])
def test_space_rejects_bad_specs_with_one_line(spec, match):
    with pytest.raises(UserError, match=match) as e:
        SearchSpace.from_dict(spec)
    assert "\n" not in str(e.value)


def test_grid_points_and_continuous_params():
    space = SearchSpace.from_dict({"a": {"grid": [1, 2, 3]}, "b": {"choice": ["x", "y"]}, "c": {"int": [0, 1]}})
    points = space.grid_points()
    assert len(points) == 12
    assert len({tuple(p.values()) for p in points}) == 12
    with pytest.raises(UserError, match="grid sampler"):
        SearchSpace.from_dict({"lr": {"uniform": [0.1, 1]}}).grid()


def test_non_primitive_choices_round_trip_through_labels():
    space = SearchSpace.from_dict({"betas": {"choice": [[0.9, 0.999], [0.5, 0.9]]}, "augment": [{"cutout": 8}, None]})
    labels = space.by_name["betas"].labels()
    assert all(isinstance(x, str) for x in labels)
    assert space.decode({"betas": labels[1]}) == {"betas": [0.5, 0.9]}


def test_dotted_overrides_reach_nested_options():
    base = {"lr": 0.1, "augment": None, "model_kwargs": {"width": 2}}
    out = apply_params(base, {"augment.rotation_range": 10, "model_kwargs.dropout": 0.2, "lr": 0.01})
    assert out == {"lr": 0.01, "augment": {"rotation_range": 10}, "model_kwargs": {"width": 2, "dropout": 0.2}}
    assert base["augment"] is None  # input untouched
    assert get_dotted(out, "model_kwargs.width") == 2 and get_dotted(out, "nope.x", 5) == 5
    with pytest.raises(UserError, match="not a mapping"):
        set_dotted({"lr": 0.1}, "lr.x", 1)
    merged = deep_merge({"augment": {"rotation_range": 10, "zoom_range": 0.1}, "weight_decay": 1e-4},
                       {"augment": {"rotation_range": 20}, "weight_decay": None, "model_kwargs.dropout": 0.5})
    assert merged == {"augment": {"rotation_range": 20, "zoom_range": 0.1}, "weight_decay": None,
                      "model_kwargs": {"dropout": 0.5}}
    assert deep_merge({"augment": {"x": 1}}, {"augment": None}) == {"augment": None}
