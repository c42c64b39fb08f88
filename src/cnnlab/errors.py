"""Errors a user can fix. The CLI prints them as one line and exits non-zero; bugs still raise."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, files or environment, explained in one line."""


class DataError(UserError):
    """A dataset file is missing, corrupt or has the wrong structure."""


class ModelError(UserError):
    """An unknown model name, a budget overrun or an incompatible checkpoint."""


class PeerFailed(UserError):
    """Another process of a distributed run failed (it prints the message; this one exits quietly)."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its class name when the message is empty."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class CnnlabWarning(UserWarning):
    """Something a user should know that does not stop the work (the CLI prints ``warning: ...``)."""


def warn(message: str) -> None:
    """Emit a project warning: one line ``warning: <message>`` on the command line (``cnnlab.noise``),
    a :class:`CnnlabWarning` in Python (filterable with the ``warnings`` module)."""
    import warnings

    warnings.warn(message, CnnlabWarning, stacklevel=2)
