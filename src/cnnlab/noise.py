"""A clean terminal: project warnings as one ``warning: ...`` line; other libraries' warnings, OpenCV's
``[ WARN:0@...]`` log lines, FFmpeg, TensorFlow and ONNX Runtime notices silenced unless ``--verbose``
(``cnnlab --verbose COMMAND`` or ``CNNLAB_VERBOSE=1``)."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

# library log levels set (when the user has not set them) before the library is first imported
QUIET_ENV = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8", "TF_CPP_MIN_LOG_LEVEL": "3"}
_state = {"verbose": False}


def verbose() -> bool:
    """Whether library notices are shown (``--verbose`` / ``CNNLAB_VERBOSE``)."""
    return _state["verbose"]


def wants_verbose(argv: list[str]) -> bool:
    """``--verbose`` before the command (a root option), or ``CNNLAB_VERBOSE`` set to a true value."""
    if os.environ.get("CNNLAB_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    for arg in argv:
        if not arg.startswith("-"):
            return False
        if arg == "--verbose":
            return True
    return False


def setup(verbose: bool = False) -> None:
    """Install the one-line warning display and quieten library logging (unless ``verbose``)."""
    _state["verbose"] = verbose
    if not verbose:
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
        if "cv2" in sys.modules:  # already imported: its env var was read; set the level directly
            set_level = getattr(sys.modules["cv2"], "setLogLevel", None)
            if set_level is not None:
                set_level(2)  # cv2.utils.logging.LOG_LEVEL_ERROR
    warnings.showwarning = show_warning


def _ours(category: type[Warning], filename: str) -> bool:
    from cnnlab.errors import CnnlabWarning

    return issubclass(category, CnnlabWarning) or (
        issubclass(category, UserWarning) and f"{os.sep}cnnlab{os.sep}" in str(filename))


def show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    """``warnings.showwarning`` for the CLI: ours as ``warning: <first line>``; a library's only with
    ``--verbose`` (then also one line, naming its category and module)."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    if _ours(category, filename):
        out = f"warning: {text}"
    elif verbose():
        module = os.path.splitext(os.path.basename(str(filename)))[0]
        out = f"warning: ({category.__name__}, {module}:{lineno}) {text}"
    else:
        return
    print(out, file=file or sys.stderr, flush=True)
