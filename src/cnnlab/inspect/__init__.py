"""Look inside models: summary (shapes, parameters, FLOPs, memory), conv arithmetic, visualisations."""

from cnnlab.inspect.arith import LayerArith, conv_arith, output_size, same_padding
from cnnlab.inspect.summary import LayerRow, SummaryResult, parse_input_size, summary
from cnnlab.inspect.visualize import (
    GradCAM,
    feature_maps,
    features_figure,
    grad_cam,
    gradcam_figure,
    kernel_image,
    kernels_figure,
    resolve_layer,
    save_features,
    save_gradcam,
    save_kernels,
)

__all__ = [
    "GradCAM",
    "LayerArith",
    "LayerRow",
    "SummaryResult",
    "conv_arith",
    "feature_maps",
    "features_figure",
    "grad_cam",
    "gradcam_figure",
    "kernel_image",
    "kernels_figure",
    "output_size",
    "parse_input_size",
    "resolve_layer",
    "same_padding",
    "save_features",
    "save_gradcam",
    "save_kernels",
    "summary",
]
