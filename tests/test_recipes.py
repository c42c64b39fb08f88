"""Named recipes: shipped YAML files, `cnnlab recipes`, `train --recipe` precedence and the record in
config.yaml; the course's models behind them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.config import TrainConfig
from cnnlab.errors import UserError
from cnnlab.recipes import list_recipes, load_recipe, parse_recipe, recipe_options
from cnnlab.tasks.classify.run import resolve_config

REQUIRED = {"cifar10-fast", "mnist-fast", "fashion-mnist-fast", "course-mnist-lenet5", "course-mnist-cnn",
            "course-fashion-mnist-cnn", "course-cifar10-cnn", "course-cifar100-termproject",
            "course-cifar10-vgg-mixup", "course-resnet50v2-finetune"}


def test_every_required_recipe_ships_and_is_a_valid_config():
    from cnnlab.engine.optim import check_config
    from cnnlab.models import check_model

    assert set(list_recipes()) >= REQUIRED
    for name in list_recipes():
        recipe = load_recipe(name)
        assert {"summary", "cpu", "gpu"} <= set(recipe.about), name  # expected figures, or "not measured"
        cfg = TrainConfig.from_dict(recipe_options(name))
        assert cfg.recipe == name
        check_config(cfg.optim())
        check_model(cfg.model, None, cfg.model_kwargs, task="classify")


def test_course_recipes_quote_the_course_and_follow_its_settings():
    for name in REQUIRED - {"cifar10-fast", "mnist-fast", "fashion-mnist-fast"}:
        assert "course" in load_recipe(name).about, name
    textbook = TrainConfig.from_dict(recipe_options("course-cifar10-cnn"))
    assert (textbook.model, textbook.optimizer, textbook.batch, textbook.epochs) == ("cifar10_cnn", "adam", 128, 30)
    term = TrainConfig.from_dict(recipe_options("course-cifar100-termproject"))
    assert term.schedule == "piecewise" and term.boundary_unit == "steps"
    assert term.boundaries == [10000, 25000, 40000] and term.factors == 0.1 and term.optimizer == "sgd"
    mix = TrainConfig.from_dict(recipe_options("course-cifar10-vgg-mixup"))
    assert mix.augment["mixup_alpha"] == 0.2
    ft = TrainConfig.from_dict(recipe_options("course-resnet50v2-finetune"))
    assert (ft.freeze, ft.unfreeze, ft.unfreeze_lr, ft.batch) == ("all", "last", 1e-4, 16)


def test_termproject_net_has_exactly_the_reported_parameter_count():
    from cnnlab.models import count_params, create_model

    model = create_model("cifar100_termproject", num_classes=100)
    assert sum(count_params(model)) == 9_282_788
    assert model.cnnlab_spec["name"] == "course_cifar100"


def test_precedence_recipe_then_config_then_options(tmp_path):
    cfg = resolve_config(None, recipe="course-cifar10-cnn", epochs=2)
    assert (cfg.recipe, cfg.model, cfg.optimizer, cfg.epochs) == ("course-cifar10-cnn", "cifar10_cnn", "adam", 2)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"recipe": "course-cifar10-cnn", "batch": 64, "lr": 0.01}))
    cfg = resolve_config(path, lr=0.002)
    assert (cfg.model, cfg.batch, cfg.lr) == ("cifar10_cnn", 64, 0.002)
    # a config value equal to the default still overrides the recipe when written explicitly
    cfg = resolve_config({"recipe": "cifar10-fast", "tta": False})
    assert cfg.tta is False and cfg.whiten_init is True


def test_unknown_recipe_is_one_line_with_close_match():
    with pytest.raises(UserError, match="did you mean cifar10-fast"):
        resolve_config(None, recipe="cifar10-fats")


def test_train_records_the_recipe_and_resolved_options(tmp_path):
    import cnnlab

    result = cnnlab.train(recipe="cifar10-fast", dataset="digits", subset=300, epochs=1, batch=64,
                          model_kwargs={"widths": [8, 16, 16]}, project=str(tmp_path), verbose=0, plots=False)
    saved = yaml.safe_load((Path(result.run_dir) / "config.yaml").read_text())
    assert saved["recipe"] == "cifar10-fast"
    assert saved["whiten_init"] is True and saved["label_smoothing"] == 0.2 and saved["tta"] is True
    assert saved["dataset"] == "digits" and saved["epochs"] == 1


def test_recipes_command_lists_without_importing_torch(tmp_path):
    code = ("import sys; from cnnlab.cli.main import main; rc = main(['recipes']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    for name in REQUIRED:
        assert name in out.stdout
    assert "99.11 %" in out.stdout  # the course's LeNet-5 figure is quoted


def test_recipes_command_prints_one_and_rejects_unknown(cli):
    code, out, _ = cli("recipes", "mnist-fast")
    assert code == 0 and "dataset: mnist" in out
    code, _, err = cli("recipes", "nope-fast")
    assert code == 2 and "unknown recipe" in err


def test_recipes_are_package_data():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"recipes/*.yaml"' in text


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_parse_recipe_any_text_loads_or_raises_user_error(text):
    try:
        recipe = parse_recipe("fuzz", text)
    except UserError:
        return
    assert isinstance(recipe.options, dict) and isinstance(recipe.about, dict)
