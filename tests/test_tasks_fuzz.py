"""Property tests (hypothesis) of the localize/segment parsers of untrusted input: any bytes as a mask or
image file, and any value in a checkpoint's fields, load or raise cnnlab's UserError, never another
exception."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.errors import UserError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])
HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=4),
                    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@SETTINGS
@given(data=st.binary(max_size=300), which=st.sampled_from(["masks", "images"]))
def test_any_bytes_as_a_mask_or_image_file(tmp_path_factory, data, which):
    import cv2

    from cnnlab.tasks.segment.data import from_folder

    root = tmp_path_factory.mktemp("f")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    cv2.imwrite(str(root / "images/a.png"), np.zeros((8, 8, 3), np.uint8))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5] = 1
    cv2.imwrite(str(root / "masks/a.png"), mask)
    (root / which / "a.png").write_bytes(data)
    try:
        d = from_folder(root, 16, None)
    except UserError as e:
        assert "\n" not in str(e)
    else:
        assert d.masks.shape == (1, 16, 16)


def _checkpoint(task: str) -> dict:
    if task == "localize":
        from cnnlab.tasks.localize.model import build_localizer

        spec = {"backbone": "locnet", "features": 8, "num_classes": 2, "in_chans": 3, "img_size": 16}
        model = build_localizer(spec)
    else:
        from cnnlab.tasks.segment.model import build_segmenter

        spec = {"name": "fcn32s", "num_classes": 2, "in_chans": 3, "width": 2, "img_size": 32}
        model = build_segmenter(spec)
    return {"format": f"cnnlab.{task}", "version": 1, "model_spec": spec, "classes": ["a", "b"],
            "preprocess": {"mean": [0.5] * 3, "std": [0.2] * 3}, "model": model.state_dict()}


@pytest.mark.parametrize("task", ["localize", "segment"])
def test_valid_checkpoints_load(tmp_path, task):
    from cnnlab.tasks.localize.infer import load_localizer
    from cnnlab.tasks.segment.infer import load_segmenter

    torch.save(_checkpoint(task), tmp_path / "c.pt")
    loaded = (load_localizer if task == "localize" else load_segmenter)(tmp_path / "c.pt")
    assert loaded.classes == ["a", "b"]


@SETTINGS
@given(task=st.sampled_from(["localize", "segment"]), path=st.sampled_from([
    ("version",), ("model_spec",), ("model_spec", "num_classes"), ("model_spec", "img_size"),
    ("model_spec", "features"), ("model_spec", "width"), ("model_spec", "backbone"), ("model_spec", "name"),
    ("model_spec", "in_chans"), ("classes",), ("preprocess",), ("preprocess", "mean"), ("model",)]),
    value=HOSTILE)
def test_any_field_value_loads_or_is_a_user_error(tmp_path_factory, task, path, value):
    from cnnlab.tasks.localize.infer import load_localizer
    from cnnlab.tasks.segment.infer import load_segmenter

    ckpt = _checkpoint(task)
    node = ckpt
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    f = tmp_path_factory.mktemp("c") / "c.pt"
    torch.save(ckpt, f)
    try:
        (load_localizer if task == "localize" else load_segmenter)(f)
    except UserError as e:
        assert "\n" not in str(e)
