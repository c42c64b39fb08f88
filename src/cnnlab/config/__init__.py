"""One config schema: the shared run options once (``RunConfig``), each task its own section.

    TrainConfig        classification (``cnnlab train``)
    DetectTrainConfig  detection (``cnnlab detect-train``)
"""

from __future__ import annotations

from cnnlab.config.classify import TrainConfig
from cnnlab.config.detect import DetectTrainConfig
from cnnlab.config.run import OptimConfig, RunConfig
from cnnlab.config.schema import Config, allows_none, coerce_to, option, parse_cli_overrides

ALIASES = TrainConfig.ALIASES


def check_keys(data: dict, source: str = "config") -> None:
    """Unknown classification option names -> one UserError with close matches."""
    TrainConfig.check_keys(data, source)


__all__ = ["ALIASES", "Config", "DetectTrainConfig", "OptimConfig", "RunConfig", "TrainConfig", "allows_none",
           "check_keys", "coerce_to", "option", "parse_cli_overrides"]
