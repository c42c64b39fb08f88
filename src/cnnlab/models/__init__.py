"""Model registry and architectures: ``create_model(name, ...)`` is the one door (timm style)."""

from cnnlab.models.registry import (
    ModelEntry,
    count_params,
    create_model,
    format_count,
    get_entry,
    is_model_name,
    list_models,
    model_entries,
    model_from_spec,
    models_table_rows,
    parse_count,
    register_model,
)

__all__ = [
    "ModelEntry",
    "count_params",
    "create_model",
    "format_count",
    "get_entry",
    "is_model_name",
    "list_models",
    "model_entries",
    "model_from_spec",
    "models_table_rows",
    "parse_count",
    "register_model",
]
