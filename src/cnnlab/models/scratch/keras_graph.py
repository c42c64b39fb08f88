"""Models imported from Keras (``cnnlab import-keras``), rebuilt from their plain graph spec."""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ModelError
from cnnlab.models.keras_import import KerasGraph
from cnnlab.models.registry import register_model


def _conv(name: str, inbound: str, cin: int, cout: int) -> dict[str, Any]:
    return {"name": name, "class_name": "Conv2D", "inbound": [inbound],
            "config": {"name": name, "filters": cout, "kernel_size": [3, 3], "strides": [2, 2],
                       "padding": "same", "activation": "relu"},
            "weight_shapes": {"kernel": [3, 3, cin, cout], "bias": [cout]}}


# the test suite's build: a tiny functional graph (conv - BN - two branches added - pool - dense)
TEST_GRAPH = {
    "input_shape": [3, 8, 8], "outputs": ["dense"], "logits": True,
    "layers": [
        _conv("conv", "input", 3, 4),
        {"name": "bn", "class_name": "BatchNormalization", "inbound": ["conv"],
         "config": {"name": "bn", "epsilon": 1e-3},
         "weight_shapes": {k: [4] for k in ("gamma", "beta", "moving_mean", "moving_variance")}},
        _conv("conv2", "bn", 4, 4),
        {"name": "pool", "class_name": "MaxPooling2D", "inbound": ["bn"],
         "config": {"name": "pool", "pool_size": [2, 2], "padding": "same"}},
        {"name": "add", "class_name": "Add", "inbound": ["conv2", "pool"], "config": {"name": "add"}},
        {"name": "gap", "class_name": "GlobalAveragePooling2D", "inbound": ["add"], "config": {"name": "gap"}},
        {"name": "dense", "class_name": "Dense", "inbound": ["gap"],
         "config": {"name": "dense", "units": 3, "activation": "softmax"},
         "weight_shapes": {"kernel": [4, 3], "bias": [3]}},
    ],
}


@register_model(input_size=(3, 32, 32), test_kwargs={"graph": TEST_GRAPH, "in_chans": 3, "img_size": 8})
def keras_graph(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, graph: dict | None = None,
                **_: Any) -> KerasGraph:
    """A model imported from Keras (``cnnlab import-keras``); rebuilt from its plain graph spec."""
    if not graph:
        raise ModelError("keras_graph needs the 'graph' option; create it with `cnnlab import-keras model.h5`")
    return KerasGraph(graph)
