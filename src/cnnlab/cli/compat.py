"""What differs between typer/click versions, in one place.

typer < 0.29 runs on the ``click`` package; typer >= 0.29 carries its own copy (``typer._click``) whose
exceptions are other classes. Usage errors are therefore recognised by duck typing (class names and
``format_message``), never by ``isinstance`` against one of the two.
"""

from __future__ import annotations

import re
from typing import Any

_USAGE_CLASSES = {"ClickException", "UsageError"}


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def is_usage_error(exc: BaseException) -> bool:
    """True for click's (or typer's vendored click's) ClickException family: bad options, missing arguments..."""
    return bool(_class_names(exc) & _USAGE_CLASSES) and callable(getattr(exc, "format_message", None))


def is_help_request(exc: BaseException) -> bool:
    """True for ``NoArgsIsHelpError`` (a group called without a command: show its help)."""
    return "NoArgsIsHelpError" in _class_names(exc)


def is_abort(exc: BaseException) -> bool:
    """True for click's/typer's ``Abort`` (click turns Ctrl-C and EOF into one)."""
    return "Abort" in _class_names(exc)


def usage_error_line(exc: BaseException) -> str:
    """One line: the message and, when the failing command is known, where its help is."""
    message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    message = re.sub(r"^Error:\s*", "", message)
    ctx: Any = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    return f"{message} (see '{path} --help')" if path else message


def help_text(exc: BaseException) -> str:
    """The help page a ``NoArgsIsHelpError`` carries."""
    ctx: Any = getattr(exc, "ctx", None)
    return ctx.get_help() if ctx is not None else str(exc)


def show_flags_without_type() -> None:
    """typer >= 0.29 prints a flag as ``--tta <bool>`` although it takes no value; print ``--tta`` as click does."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - typer without its own option class
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_flag_aware", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return original(self, ctx)

    display_type_rich._flag_aware = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
