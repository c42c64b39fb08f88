"""The Python API and the command line share their defaults: for every command, each option that is also
a parameter of the function the command calls has the same default (one source for each default)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import typer

from cnnlab.cli.main import app

# command -> the public functions it is a thin layer over ("module:qualname")
API = {
    "evaluate": ["cnnlab.inference:evaluate"],
    "predict": ["cnnlab.inference:predict"],
    "export": ["cnnlab.deploy.export:export"],
    "benchmark": ["cnnlab.deploy.benchmark:benchmark"],
    "summary": ["cnnlab.inspect.summary:summary"],
    "arith": ["cnnlab.inspect.arith:conv_arith"],
    "visualize kernels": ["cnnlab.inspect.visualize:save_kernels"],
    "visualize features": ["cnnlab.inspect.visualize:save_features"],
    "visualize gradcam": ["cnnlab.inspect.visualize:save_gradcam"],
    "detect": ["cnnlab.detect.detector:Detector", "cnnlab.detect.predict:detect_source"],
    "stream": ["cnnlab.detect.detector:Detector"],
    "export-detector": ["cnnlab.detect.export:export_detector", "cnnlab.detect.export:export_trained_detector"],
    "compare": ["cnnlab.experiments.compare:compare"],
    "report": ["cnnlab.experiments.report:report"],
    "tune": ["cnnlab.experiments.tune:tune"],
    "ablate": ["cnnlab.experiments.ablate:ablate"],
    "augment-preview": ["cnnlab.data.preview:augment_preview"],
    "demo": ["cnnlab.api:demo"],
    "import-keras": ["cnnlab.models.keras_import:import_keras"],
    "models": ["cnnlab.models.registry:list_models"],
    "weights get": ["cnnlab.data.weights:get_weights"],
    "weights pack": ["cnnlab.data.weights:pack_weights"],
    "data check": ["cnnlab.detect.check:check_detection_data"],
    "localize-eval": ["cnnlab.tasks.localize.infer:evaluate_localizer"],
    "localize": ["cnnlab.tasks.localize.infer:predict_localizer"],
    "localize-export": ["cnnlab.tasks.localize.infer:export_localizer"],
    "segment-eval": ["cnnlab.tasks.segment.infer:evaluate_segmenter"],
    "segment": ["cnnlab.tasks.segment.infer:predict_segmenter"],
    "segment-export": ["cnnlab.tasks.segment.infer:export_segmenter"],
    "speedrun": ["cnnlab.experiments.speedrun:speedrun"],
    "lr-find": ["cnnlab.experiments.lr_find:lr_find"],
    "ensemble": ["cnnlab.experiments.ensemble:ensemble"],
}
# options that mean something else in the function (documented differences), by "command option"
DIFFERENT = {
    "segment output",  # the CLI writes the masks (to segment-out/); the API returns them
    "visualize kernels output", "visualize features output", "visualize gradcam output",  # a run's visualize/ folder
    "detect-eval conf", "detect-eval iou", "sweep conf", "sweep iou",  # mAP thresholds (cli/detect_options.py)
}


# commands whose options are the generated training options plus their own: only their own are checked here
# (the generated ones default to None = "not given"; test_train_config checks the config's defaults)
PARTLY_GENERATED = {"lr-find": "cnnlab.config.classify:TrainConfig"}


def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    out = {}
    for name, cmd in getattr(group, "commands", {}).items():
        full = f"{prefix}{name}"
        out.update(_commands(cmd, full + " ") if hasattr(cmd, "commands") else {full: cmd})
    return out


def _function(spec: str) -> Any:
    module, name = spec.split(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj.__init__ if inspect.isclass(obj) else obj


def _norm(v: Any) -> Any:
    """Path -> str; a tuple or a comma-separated string (the CLI's spelling of a list) -> a list of str."""
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (tuple, list)):
        return [str(x) for x in v]
    if isinstance(v, str) and "," in v:
        return [x.strip() for x in v.split(",")]
    return v


def _same(a: Any, b: Any) -> bool:
    a, b = _norm(a), _norm(b)
    return a == b or (isinstance(b, list) and not isinstance(a, list) and [str(a)] == b) or (
        isinstance(a, str) != isinstance(b, str) and str(a) == str(b))


def test_every_command_is_mapped_or_generated():
    commands = _commands(typer.main.get_command(app))
    generated = {"train", "detect-train", "localize-train", "segment-train"}  # options generated from the config classes (test_train_config)
    unmapped = sorted(set(commands) - set(API) - generated
                      - {"datasets", "datasets download", "detect-eval", "sweep", "anchors", "weights", "recipes"})
    assert not unmapped, f"map these commands to their API function in API: {unmapped}"


@pytest.mark.parametrize("command", sorted(API))
def test_cli_defaults_match_api(command):
    cmd = _commands(typer.main.get_command(app))[command]
    params = {}
    for spec in API[command]:
        params.update({k: p for k, p in inspect.signature(_function(spec)).parameters.items()
                       if p.default is not inspect.Parameter.empty and k not in params})
    generated = set()
    if command in PARTLY_GENERATED:
        module, name = PARTLY_GENERATED[command].split(":")
        generated = set(getattr(importlib.import_module(module), name).field_names())
    shared = [(p.name, p.default) for p in cmd.params
              if p.name in params and not p.required and p.name not in generated]
    bad = [f"--{name.replace('_', '-')}: CLI {default!r} vs API {params[name].default!r}"
           for name, default in shared
           if f"{command} {name}" not in DIFFERENT and not _same(default, params[name].default)]
    assert not bad, f"{command}: " + "; ".join(bad)


def test_detector_uses_the_cfg_size_like_the_cli(tmp_path, cli):
    """Issue 16: Detector(cfg=<a 96 px cfg>) ran at 416 while `cnnlab detect` used the cfg's size."""
    from cnnlab.detect import Detector
    from cnnlab.detect.synthetic import random_yolo_files, synthetic_scene

    cfg, weights, names = random_yolo_files(tmp_path, "yolov3-tiny", num_classes=2, img_size=96,
                                            width_mult=0.125, seed=2)
    det = Detector(cfg=cfg, weights=weights, names=names)
    assert tuple(det.imgsz) == (96, 96)
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), synthetic_scene(seed=1))
    code, out, err = cli("detect", tmp_path / "a.jpg", "--cfg", cfg, "--weights", weights, "--names", names,
                         "--no-save", "--device", "cpu")
    assert code == 0, err
    assert "input 96x96" in out
