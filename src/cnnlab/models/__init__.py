"""Model registry and architectures: ``create_model(name, ...)`` is the one door (timm style).

``resolve_model`` / ``input_norm`` tell the training code what a model name (alias, ``timm/<name>``)
builds and which input scaling it wants; ``list_models(task=...)`` lists classifiers and detectors.
"""

from cnnlab.models.counting import count_params, format_count, parse_count
from cnnlab.models.registry import (
    TASKS,
    ModelEntry,
    create_model,
    find_entry,
    get_entry,
    input_norm,
    is_model_name,
    list_models,
    model_entries,
    model_from_spec,
    models_table_rows,
    register_model,
    resolve_model,
)

__all__ = [
    "TASKS",
    "ModelEntry",
    "count_params",
    "create_model",
    "find_entry",
    "format_count",
    "get_entry",
    "input_norm",
    "is_model_name",
    "list_models",
    "model_entries",
    "model_from_spec",
    "models_table_rows",
    "parse_count",
    "register_model",
    "resolve_model",
]
