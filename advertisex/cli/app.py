"""The ``advertisex`` console script: a thin Typer app over the Python API.

Each verb group lives in its own module with a ``register(app)`` function; heavy
libraries are imported inside commands so ``advertisex --help`` starts fast.
"""

from __future__ import annotations

import importlib
import signal
import sys
import warnings
from typing import Any

import typer

from advertisex.cli.common import INTERRUPTED, Interrupted, on_interrupt
from advertisex.errors import AdvertiseXError

app = typer.Typer(
    name="advertisex",
    help="AdvertiseX: ad-event intake, clean tables, reports and monitors on one machine.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from advertisex import __version__

        typer.echo(f"advertisex {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """AdvertiseX: ad-event intake, clean tables, reports and monitors on one machine."""


# Verb modules, in the order they appear in --help. Each defines register(app).
VERB_MODULES = [
    "advertisex.cli.generate",
    "advertisex.cli.pipeline",
    "advertisex.cli.quarantine",
    "advertisex.cli.dims",
    "advertisex.cli.serve",
    "advertisex.cli.tracking",
    "advertisex.cli.console",
    "advertisex.cli.query",
    "advertisex.cli.report",
    "advertisex.cli.monitor",
    "advertisex.cli.upkeep",
    "advertisex.cli.demo",
    "advertisex.cli.config",
]

for _name in VERB_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Entry point: run the app, turning our own errors into a message and exit code 2."""
    warnings.showwarning = _show_warning
    previous = signal.signal(signal.SIGINT, on_interrupt)
    INTERRUPTED.clear()
    try:
        # The name completion scripts and usage lines use, however the script was started.
        app(prog_name="advertisex")
    except AdvertiseXError as error:
        if INTERRUPTED.is_set():
            sys.exit(130)
        from rich.markup import escape

        from advertisex.cli.output import console

        # Whole lines (the terminal wraps them), and the text as it is: never markup.
        console(stderr=True).print(
            f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except (KeyboardInterrupt, Interrupted):  # no verb said what was left undone
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except SystemExit as stop:
        # Click turns an interrupt it sees into "Aborted!" and exit 1; the shell's code is 130.
        if INTERRUPTED.is_set() and stop.code not in (0, None):
            sys.exit(130)
        raise
    except Exception as error:  # a bug, or a failure no layer put into words
        if INTERRUPTED.is_set():
            sys.exit(130)
        _report_unexpected(error)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGINT, previous)


def _report_unexpected(error: Exception) -> None:
    """One line on the terminal; the traceback in a file, for the bug report."""
    import tempfile
    import traceback

    from rich.markup import escape

    from advertisex.cli.output import console

    with tempfile.NamedTemporaryFile(
        "w", prefix="advertisex-error-", suffix=".txt", delete=False
    ) as details:
        details.write(f"advertisex {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exception(error, file=details)
    text = str(error).strip().splitlines()
    console(stderr=True).print(
        f"[bold red]error:[/] {escape(type(error).__name__)}: {escape(text[0] if text else '')}"
        f"\n  → this is a bug in advertisex, not in what you did: please report it with "
        f"{details.name}",
        highlight=False,
        soft_wrap=True,
    )


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
    """Our own warnings (an ignored setting …) as one ``warning:`` line; others as Python does."""
    if not category.__module__.startswith("advertisex"):
        _python_show_warning(message, category, *args, **kw)
        return
    from rich.markup import escape

    from advertisex.cli.output import console

    console(stderr=True).print(
        f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True
    )


_python_show_warning = warnings.showwarning

if __name__ == "__main__":
    main()
