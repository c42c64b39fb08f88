"""Models imported from Keras (``cnnlab import-keras``), rebuilt from their plain graph spec."""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ModelError
from cnnlab.models.keras_import import KerasGraph
from cnnlab.models.registry import register_model


@register_model(input_size=(3, 32, 32))
def keras_graph(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, graph: dict | None = None,
                **_: Any) -> KerasGraph:
    """A model imported from Keras (``cnnlab import-keras``); rebuilt from its plain graph spec."""
    if not graph:
        raise ModelError("keras_graph needs the 'graph' option; create it with `cnnlab import-keras model.h5`")
    return KerasGraph(graph)
