"""cnnlab.train: the trainer, optimisers and schedules, callbacks, metrics, EMA and checkpoints.

This package shares its name with the public function ``cnnlab.train(config, callbacks, **overrides)``
(``cnnlab.api.train``). Once the package is imported, Python binds ``cnnlab.train`` to it, so the
package itself is made callable and forwards to ``cnnlab.api.train``: both spellings keep working.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Train a classifier: see :func:`cnnlab.api.train`."""
        from cnnlab.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
