"""Bits every CLI verb shares: opening the platform, the --format option, progress bars."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import typer

from advertisex.cli.output import Format
from advertisex.cli.progress import progress_bar as progress_bar  # where the verbs find it
from advertisex.errors import NotFoundError, UserInputError

FormatOption = typer.Option(
    Format.table, "--format", "-f", help="Output: table (human), json or csv."
)


EngineOption = typer.Option(
    None, "--engine", help="embedded (in-process) or spark (PySpark); default scale.engine."
)
MasterOption = typer.Option(
    None,
    "--master",
    help="With --engine spark: local[N], spark://HOST:7077, yarn, k8s://…; "
    "default scale.spark_master.",
)
VerboseOption = typer.Option(
    False,
    "--verbose",
    "-v",
    help="With --engine spark: show Spark's own log here (else it goes to "
    "<data_dir>/logs/spark.log).",
)


def open_platform(create: bool = False, deferred: bool = False) -> Any:
    """The platform with the configuration in force. Verbs that store data pass
    ``create=True`` and make the lake if there is none (saying so, once); the others stop
    with a message instead of making an empty lake wherever they were run. ``deferred``
    (the read-only questions): settings validated only when more than where the data lives
    is read (``advertisex.lazy_settings``), so a question need not load pydantic."""
    import advertisex

    ax = advertisex.open(deferred=True) if deferred else advertisex.open()
    if create:
        announce_new_lake(ax)
    else:
        require_lake(ax)
    return ax


def require_lake(ax: Any) -> None:
    """Stop with a message (instead of making an empty lake) when ``ax`` has none."""
    if not ax.lake_exists():
        if ax.settings.data_dir.exists():  # a file, where the verbs that write say so too
            raise NotFoundError(
                f"the data directory {ax.settings.data_dir.absolute()} is a file, not a folder",
                hint="set data_dir (ADVERTISEX_DATA_DIR) to the folder your data lives in",
            )
        raise NotFoundError(
            f"there is no lake at {ax.settings.data_dir.absolute()}",
            hint="run this where your data is, set data_dir (ADVERTISEX_DATA_DIR), or make "
            "one: advertisex ingest FILES, or advertisex demo",
        )


def announce_new_lake(ax: Any) -> None:
    """Make ``ax``'s data directory when it is missing, and tell the user where it went."""
    from advertisex.cli.output import literal, print_message

    if ax.create_data_dir():
        print_message(f"created a new lake at [bold]{literal(ax.settings.data_dir.absolute())}[/]")


def open_runner(
    ax: Any, engine: str | None, master: str | None, verbose: bool = False, decodes: bool = False
) -> Any:
    """The runner ``--engine`` / ``--master`` choose for platform ``ax``: its embedded
    runner, or a Spark runner (whose master must answer now: see ``check_master``). Call
    ``stop()`` on it when done (it ends a Spark session the runner started). A caller that
    ``decodes`` landing segments has the embedded runner's decoder workers started now."""
    check_engine(engine)
    if (engine or ax.settings.scale.engine) != "spark":
        if decodes and ax.settings.processor.decode_isolated:
            from advertisex.formats.bounded import warm

            warm()  # the decoder workers' forkserver imports while the runner's modules load
        from advertisex.util.heap import loading_modules

        with loading_modules():
            return ax.runner
    from advertisex.runners.spark import SparkRunner, check_master

    chosen = master or ax.settings.scale.spark_master
    check_master(chosen)
    return SparkRunner(
        ax.settings, ax.lake, ax.landing, master=chosen, hooks=ax.commit_hooks, verbose=verbose
    )


def check_engine(engine: str | None) -> None:
    """``--engine``'s value, if one was given, names an engine; else a user error."""
    if engine not in (None, "embedded", "spark"):
        raise UserInputError(f"unknown engine {engine!r}", hint="use --engine embedded or spark")


@contextlib.contextmanager
def engine_failures(ax: Any) -> Iterator[None]:
    """Spark's own exceptions (Py4J's, PySpark's) raised inside, as one line that says
    where Spark's log is, instead of a Java stack trace."""
    try:
        yield
    except Exception as error:
        if not type(error).__module__.startswith(("py4j", "pyspark")):
            raise
        from advertisex.errors import SparkUnavailableError
        from advertisex.runners.spark import spark_log

        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise SparkUnavailableError(
            f"Spark failed: {lines[0][:300] if lines else type(error).__name__}",
            hint=f"Spark's own log: {spark_log(ax.settings)} (or run again with --verbose)",
        ) from None


# The longest pause between looks a loop takes (``--interval``): a day. Past what the
# system's clocks hold (1e308 s) the first pause failed as a bug; a loop that looks once a
# day is a cron job's.
MAX_INTERVAL_SECONDS = 86_400


def positive_seconds(value: float, flag: str) -> float:
    """``value`` of ``flag`` if it is a number of seconds above 0 and at most a day; else a
    user error (``--interval -1`` looked again without pause, ``nan`` printed "every nan s",
    ``1e308`` overflowed the clock)."""
    if not math.isfinite(value) or value <= 0 or value > MAX_INTERVAL_SECONDS:
        raise UserInputError(
            f"{flag} {value:g} is not a number of seconds above 0 and at most "
            f"{MAX_INTERVAL_SECONDS:,} (a day)",
            hint=f"e.g. {flag} 0.5",
        )
    return value


def parse_day(value: str | None, flag: str) -> date | None:
    """A ``--from``/``--to`` option value as a date (``2026-11-20``, ``today``,
    ``yesterday``, ``today-7``), or a user error that shows the forms."""
    if value is None:
        return None
    from advertisex.util.timeutil import parse_date

    try:
        return parse_date(value)
    except ValueError as e:
        raise UserInputError(
            f"{flag} {value!r} is not a date",
            hint=f"write {flag} 2026-11-20, {flag} today, {flag} yesterday or {flag} today-7",
        ) from e


# ---------------------------------------------------------------------- Ctrl-C
INTERRUPTED = threading.Event()  # set by the first SIGINT; read by main() and interruptible()


class Interrupted(BaseException):
    """Ctrl-C, as :func:`on_interrupt` raises it: not a KeyboardInterrupt, which Click
    would turn into "Aborted!" and exit code 1."""


def saved_trace(error: BaseException) -> str:
    """Save ``error``'s traceback, with the command that met it, in a file of its own for
    the bug report; returns the file's path (the terminal gets one line, never the trace)."""
    import sys
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile(
        "w", prefix="advertisex-error-", suffix=".txt", delete=False
    ) as details:
        details.write(f"advertisex {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exception(error, file=details)
    return details.name


def on_interrupt(signum: int, frame: Any) -> None:
    """SIGINT: remember it, then interrupt whatever runs."""
    INTERRUPTED.set()
    raise Interrupted


@contextlib.contextmanager
def interruptible(describe: Callable[[], str]) -> Iterator[None]:
    """Ctrl-C inside the block ends the command with ``describe()``'s line and exit 130,
    whatever a library turned the interrupt into on its way out (DuckDB's "Query
    interrupted", Py4J's errors …)."""
    try:
        yield
    except BaseException as error:
        if not isinstance(error, KeyboardInterrupt | Interrupted) and not INTERRUPTED.is_set():
            raise
        from advertisex.cli.output import print_message

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the message
        print_message(describe())
        raise typer.Exit(130) from None
