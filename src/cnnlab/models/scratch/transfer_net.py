"""``transfer``: a known backbone (timm or cnnlab) with a new head; see cnnlab.models.transfer."""

from __future__ import annotations

from typing import Any

from cnnlab.models.registry import register_model
from cnnlab.models.transfer import ALIASES, TransferNet


# familiar backbone names (ResNet50V2, VGG16, mobilenet_025...) build this model with that backbone;
# it takes images on the [0, 1] scale and normalises them itself (the backbone's statistics)
@register_model(input_size=(3, 224, 224), aliases=tuple(ALIASES), alias_arg="backbone",
                input_norm={"mean": 0.0, "std": 1.0},
                test_kwargs={"img_size": 16, "backbone": "timm/resnet10t", "input_size": 32})
def transfer(num_classes: int = 10, in_chans: int = 3, img_size: int = 224, backbone: str = "resnet50",
             input_size: int | None = None, head_hidden: int = 0, head_dropout: float = 0.0,
             backbone_kwargs: dict[str, Any] | None = None) -> TransferNet:
    """Backbone by familiar or timm name + new head; resizes and normalises its input itself.

    ``img_size`` is the size of the dataset's images (any size works: the net resizes them);
    ``input_size`` is the resolution the backbone sees (default: its pretrained input size).
    """
    return TransferNet(backbone, num_classes, in_chans, input_size, head_hidden, head_dropout, backbone_kwargs)
