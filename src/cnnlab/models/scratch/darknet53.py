"""Darknet-53 (YOLOv3's backbone) as a registered classifier; its cfg sections live in ``cnnlab.darknet``."""

from __future__ import annotations

from cnnlab.darknet.darknet53 import darknet53_classifier_sections
from cnnlab.models import register_model


@register_model(test_kwargs={"width_mult": 0.125})
def darknet53(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, width_mult: float = 1.0,
              **kw):
    """Darknet-53 classifier (~40.6 M parameters at width 1.0): five stride-2 stages, 52 convs + head.

    Returns logits ``(B, num_classes)``; ``model.to_cfg()`` gives its Darknet cfg.
    """
    from cnnlab.darknet.model import DarknetModel

    return DarknetModel(darknet53_classifier_sections(num_classes, in_chans, img_size, width_mult),
                        source="darknet53")
