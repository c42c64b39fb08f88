"""Model registry and architectures: ``create_model(name, ...)`` is the one door (timm style).

``resolve_model`` / ``input_norm`` tell the training code what a model name (alias, ``timm/<name>``)
builds and which input scaling it wants; ``list_models(task=...)`` lists classifiers and detectors.
The package exports the registry's public names (its ``__all__``).
"""

from cnnlab.models.registry import *  # noqa: F403
from cnnlab.models.registry import __all__  # noqa: F401
