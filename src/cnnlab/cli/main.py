"""Entry point of the ``cnnlab`` command. Heavy imports happen inside the commands that need them."""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import typer

from cnnlab import __version__
from cnnlab.errors import PeerFailed, UserError

app = typer.Typer(
    name="cnnlab",
    help="Convolutional vision toolkit: train, transfer, tune, inspect, detect and deploy CNNs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each module defines ``register(app)``; add a command group by adding its module here.
COMMAND_MODULES = [
    "cnnlab.cli.train",      # train, detect-train (options generated from the config schema)
    "cnnlab.cli.classify",   # evaluate, predict, demo
    "cnnlab.cli.data",       # datasets, augment-preview
    "cnnlab.cli.weights",    # weights, weights get
    "cnnlab.cli.models",     # models
    "cnnlab.cli.inspect",    # summary, visualize
    "cnnlab.cli.deploy",     # export, benchmark
    "cnnlab.cli.detect",     # detect, export-detector
    "cnnlab.cli.detect_eval",  # detect-eval
    "cnnlab.cli.detect_train",  # anchors
    "cnnlab.cli.stream",     # stream, sweep
    "cnnlab.cli.experiments",  # compare, tune, ablate, report
    "cnnlab.cli.transfer",   # import-keras
    "cnnlab.cli.localize",   # localize-train, localize-eval, localize, localize-export
    "cnnlab.cli.segment",    # segment-train, segment-eval, segment, segment-export
    "cnnlab.cli.recipes",    # recipes, speedrun
    "cnnlab.cli.lessons",    # lr-find, ensemble
]

for _mod in COMMAND_MODULES:
    importlib.import_module(_mod).register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnnlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", help="Show library notices (OpenCV, CUDA, ONNX Runtime, "
                                 "other libraries' warnings); also CNNLAB_VERBOSE=1."),
) -> None:
    """cnnlab: convolutional vision from the command line."""
    if verbose:
        from cnnlab import noise

        noise.setup(verbose=True)


def _warning_line(message, category, filename, lineno, line=None) -> str:   # noqa: ANN001
    """A warning as one line ``warning: <message>`` (the CLI's users do not need the source line)."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Every error a user can cause (a bad value, an unknown option or command, a missing
    argument, a ``UserError``) is one line ``error: ...`` on stderr and exit code 2."""
    from cnnlab import noise
    from cnnlab.cli import compat

    os.environ.setdefault("MPLBACKEND", "Agg")
    noise.setup(verbose=noise.wants_verbose(list(sys.argv[1:] if argv is None else argv)))
    compat.show_flags_without_type()
    warnings.formatwarning = _warning_line
    try:
        # standalone_mode=False: click returns an Exit's code instead of raising it
        result = app(args=argv, prog_name="cnnlab", standalone_mode=False)
    except PeerFailed:
        return 2   # rank 0 of the distributed run prints the one line
    except UserError as e:
        return _error(str(e))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:  # click's or typer's own click: the class differs between versions
        if compat.is_help_request(e):
            print(compat.help_text(e))
            return 0
        if compat.is_usage_error(e):
            return _error(compat.usage_error_line(e))
        if compat.is_abort(e):
            interrupted = isinstance(e.__context__, KeyboardInterrupt)
            print("interrupted" if interrupted else "aborted", file=sys.stderr)
            return 130 if interrupted else 1
        raise
    return result if isinstance(result, int) else 0


def _error(message: str) -> int:
    from rich.console import Console
    from rich.markup import escape

    rank = os.environ.get("RANK", "")
    if rank not in ("", "0"):  # another process of a distributed run: say which
        message = f"(rank {rank}) {message}"

    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
