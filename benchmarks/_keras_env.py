"""A separate virtual environment with Keras 3 + TensorFlow CPU, for side-by-side benchmarks.

Kept outside the repo (in the cnnlab cache folder) so the project's own environment never depends on
TensorFlow. Created on first use; later runs reuse it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

PROBE = "import keras, tensorflow"


class KerasUnavailable(RuntimeError):
    """Keras + TensorFlow cannot be installed from the package index here."""


def keras_venv() -> Path:
    """Path of the Keras venv's python, creating and installing it if needed.

    Checks the package index for ``tensorflow-cpu`` (else ``tensorflow``) first; raises
    :class:`KerasUnavailable` with the reason when neither can be had.
    """
    from cnnlab.paths import cache_dir

    root = Path(os.environ.get("CNNLAB_KERAS_VENV", cache_dir() / "bench-venvs" / "keras"))
    py = root / "bin" / "python"
    if py.is_file() and subprocess.run([str(py), "-c", PROBE], capture_output=True).returncode == 0:
        return py
    tf_pkg = next((pkg for pkg in ("tensorflow-cpu", "tensorflow")
                   if f"{pkg} (" in subprocess.run([sys.executable, "-m", "pip", "index", "versions", pkg],
                                                   capture_output=True, text=True).stdout), None)
    if tf_pkg is None:
        raise KerasUnavailable("neither tensorflow-cpu nor tensorflow is in the package index")
    print(f"creating Keras benchmark venv in {root} (one-time, a few minutes)...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "keras", tf_pkg, "numpy"],
                       capture_output=True, text=True)
    if r.returncode != 0 or subprocess.run([str(py), "-c", PROBE], capture_output=True).returncode != 0:
        raise KerasUnavailable(f"pip install keras {tf_pkg} failed: {r.stderr.strip().splitlines()[-1:]}")
    return py


def run_in_keras(script: str, *args: str, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run ``script`` (Python source) in the Keras venv; it must print one JSON object last. ``timeout``
    (seconds): a hung TensorFlow is killed and raises ``subprocess.TimeoutExpired``."""
    py = keras_venv()
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.run([str(py), "-c", script, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"Keras benchmark failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(keras_venv())
