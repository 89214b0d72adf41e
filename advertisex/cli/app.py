"""The ``advertisex`` console script: a thin Typer app over the Python API.

Each verb group lives in its own module with a ``register(app)`` function, imported only
when one of its verbs is asked for (click's lazily loaded subcommands): ``advertisex
query …`` builds the ``query`` command alone, not all 29. ``--help`` and shell
completion list every verb. Heavy libraries are imported inside commands.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import itertools
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from typing import Any, TypeGuard

import typer
from typer._click.core import Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup
from typer.main import get_group

from advertisex.cli import coercion
from advertisex.cli.common import INTERRUPTED, Interrupted, on_interrupt
from advertisex.errors import AdvertiseXError, UserInputError

# NumPy's OpenBLAS starts a thread per core when NumPy loads, which spins ≈ 0.1 s of CPU
# waiting for linear algebra no command asks for: in the processor, its decoder workers'
# forkserver and each worker (`python -c "import numpy"`: 0.17 s of CPU against 0.06). The
# command's processes inherit this; a user's own setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

coercion.install()  # text, flag and choice parameters parsed without pydantic


def _help_types_as_typed() -> None:
    """Typer 0.29's help puts a flag's type beside it, ``--dry-run <bool>``, which reads as
    a value to give (``--dry-run true`` is then an unexpected extra argument): a flag takes
    none, so its help shows none, as Click's own help does. A repeatable option or an
    argument of many takes one value at a time: ``<str>``, not Python's ``<list[str]>``."""
    parameter, option = typer.core._TyperParameter, typer.core.TyperOption
    typed, flagged = parameter.display_type, option.display_type_rich

    def display_type(self: Any, ctx: Any) -> str:
        shown = typed(self, ctx)
        listed = shown.startswith("<list[") and shown.endswith("]>")
        return f"<{shown[6:-2]}>" if listed else shown

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if self.is_flag else flagged(self, ctx)

    parameter.display_type = display_type  # type: ignore[method-assign]
    option.display_type_rich = display_type_rich  # type: ignore[method-assign]


_help_types_as_typed()

# Each verb → the module whose register(app) adds it, in the order --help lists them
# (plain commands first, then the groups of subcommands).
VERBS = {
    "generate": "advertisex.cli.generate",
    "ingest": "advertisex.cli.pipeline",
    "process": "advertisex.cli.pipeline",
    "replay": "advertisex.cli.pipeline",
    "serve": "advertisex.cli.serve",
    "up": "advertisex.cli.serve",
    "keygen": "advertisex.cli.serve",
    "sign-url": "advertisex.cli.tracking",
    "console": "advertisex.cli.console",
    "query": "advertisex.cli.query",
    "monitor": "advertisex.cli.monitor",
    "alerts": "advertisex.cli.monitor",
    "status": "advertisex.cli.monitor",
    "maintain": "advertisex.cli.upkeep",
    "forget": "advertisex.cli.upkeep",
    "relocate": "advertisex.cli.upkeep",
    "backup": "advertisex.cli.upkeep",
    "demo": "advertisex.cli.demo",
    "config": "advertisex.cli.config",
    "quarantine": "advertisex.cli.quarantine",
    "dims": "advertisex.cli.dims",
    "report": "advertisex.cli.report",
}


class Verbs(TyperGroup):
    """The top-level group: lists every verb, builds a verb's command when it is asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            # An unknown name loads every verb, so that "did you mean …" can find the one meant.
            for module in [VERBS[cmd_name]] if cmd_name in VERBS else dict.fromkeys(VERBS.values()):
                self._load(module)
        return self.commands.get(cmd_name)

    def _load(self, module: str) -> None:
        verbs = typer.Typer()
        importlib.import_module(module).register(verbs)
        self.commands.update(get_group(verbs).commands)

    # Click's usage errors (an unknown option or verb, a missing or bad value) as the
    # project's own one line and hint, raised out of the app for main() to print, instead
    # of Typer's boxed "Usage: … Error: …" panel. The top-level parse and the verb's (which
    # runs inside the group's invoke) are both inside one of these.
    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        given = list(args)
        with self._usage_errors(None, given):
            context = super().make_context(info_name, args, parent, **extra)
        context.meta[_GIVEN] = given
        return context

    def invoke(self, ctx: Any) -> Any:
        with self._usage_errors(ctx, ctx.meta.get(_GIVEN, [])):
            return super().invoke(ctx)

    @contextlib.contextmanager
    def _usage_errors(self, ctx: Any, given: list[str]) -> Iterator[None]:
        try:
            yield
        except ClickException as error:
            if isinstance(error, NoArgsIsHelpError):
                raise  # a group named alone: its help, as --help prints it
            where = getattr(error, "ctx", None)
            command, path = (
                (where.command, where.command_path) if where else self._named(ctx, given)
            )
            what = "commands" if isinstance(command, TyperGroup) else "options"
            raise UserInputError(
                _in_words(error.format_message()),
                hint=f"run {path} --help to see its {what}",
            ) from None

    def _named(self, ctx: Any, given: list[str]) -> tuple[Any, str]:
        """The deepest command ``given`` names (``report campaigns``), and its path: where a
        parse error that Click raised without its context happened."""
        command: Any = self
        names = [ctx.info_name if ctx else "advertisex"]
        context = ctx or Context(self, info_name=names[0])
        for arg in given:
            if not isinstance(command, TyperGroup):
                break
            if arg.startswith("-"):
                continue  # a group's own option (--help, --version)
            found = command.get_command(context, arg)
            if found is None:
                break
            command, names = found, [*names, arg]
        return command, " ".join(names)


_GIVEN = "advertisex.given"  # a context's arguments as given, for _named


# Pydantic's words for a value Typer's coercion refused (Typer coerces through pydantic).
_PYDANTIC_WORDS = {
    "Value error, ": "",
    "Input should be a valid integer, unable to parse string as an integer": "not a whole number",
    "Input should be a valid number, unable to parse string as a number": "not a number",
    "Input should be ": "should be ",
}


def _in_words(message: str) -> str:
    """Click's message in the project's form: lower case, no full stop, pydantic's phrases
    said plainly (``invalid value for '--limit': not a whole number``)."""
    message = message.strip().rstrip(".")
    for said, meant in _PYDANTIC_WORDS.items():
        message = message.replace(said, meant)
    return message[:1].lower() + message[1:]


app = typer.Typer(
    cls=Verbs,
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


# Verbs whose work starts with decoding landing segments in the embedded runner's decoder
# workers (see _start_decoders).
_DECODING_VERBS = frozenset({"process", "demo"})
_OFF = frozenset({"false", "0", "no", "off", "f", "n"})  # how a setting may say false


def _start_decoders(args: list[str]) -> bool:
    """For a verb that decodes landing segments, start the decoder workers' forkserver first
    thing: its imports (Arrow, DuckDB, polars-avro: ≈ 0.3 s of CPU) run on the core that the
    command's own start leaves idle — the interpreter and the CLI's imports are one thread —
    instead of beside the work that follows (the demo's generator). Not for ``--help``, nor
    where the verb's decoding is not the embedded runner's isolated workers (``--engine
    spark``, ``--master``, ``scale.engine``; ``processor.decode_isolated`` off): guessed from
    the arguments and the raw settings; the runner starts the workers itself in any case.
    True if started here."""
    if not args or args[0] not in _DECODING_VERBS or {"--help", "-h"} & set(args):
        return False
    from advertisex.lazy_settings import raw_setting

    if str(raw_setting("processor", "decode_isolated")).lower() in _OFF:
        return False
    if args[0] == "process":  # the demo always runs the embedded runner
        engine = raw_setting("scale", "engine")
        for arg, following in itertools.pairwise([*args, ""]):
            if arg == "--master" or arg.startswith("--master="):
                return False  # a Spark master: Spark's runner
            if arg == "--engine":
                engine = following
            elif arg.startswith("--engine="):
                engine = arg.split("=", 1)[1]
        if engine == "spark":
            return False
    from advertisex.formats.preload import start_decoder_forkserver

    return start_decoder_forkserver()


def main() -> None:
    """Entry point: run the app, turning our own errors into a message and exit code 2."""
    warnings.showwarning = _show_warning
    if sys.argv[1:2] and sys.argv[1] in _DECODING_VERBS:  # a processor: before Arrow loads
        from advertisex.util.allocator import arrow_from_jemalloc_at_start

        arrow_from_jemalloc_at_start()
    _start_decoders(sys.argv[1:])
    # Interpreter shutdown runs the cycle collector over every object the command made and
    # imported, several times, after the answer is out: 0.5-1.9 s (0.5 s of CPU) after a
    # batch's imports at load 8-10. Frozen first (this runs after the other exit handlers,
    # registered after it), the collections skip them; the OS takes the memory back.
    atexit.register(gc.freeze)
    previous = signal.signal(signal.SIGINT, on_interrupt)
    INTERRUPTED.clear()
    try:
        # The name completion scripts and usage lines use, however the script was started.
        app(prog_name="advertisex")
    except AdvertiseXError as error:
        if INTERRUPTED.is_set():
            sys.exit(130)
        _print_error(_lake_damage(error) or error)
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
        damage = _lake_damage(error)
        if damage is not None:
            _print_error(damage)
            sys.exit(2)
        if _unreachable_storage(error):
            _print_error(_storage_failed(error))
            sys.exit(2)
        _report_unexpected(error)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_error(error: AdvertiseXError) -> None:
    from advertisex.cli.output import console, literal

    # Whole lines (the terminal wraps them), and the text as it is: never markup, no
    # control character from what the user or a record gave (a path, a query, a field).
    console(stderr=True).print(
        f"[bold red]error:[/] {literal(error)}", highlight=False, soft_wrap=True
    )


def _lake_damage(error: BaseException) -> AdvertiseXError | None:
    """``error`` told as the lake's lost or damaged files behind it, if they are
    (``lake.damage``): a read of one failed in the reader's words, or as a lost race."""
    from advertisex.lake.damage import explained, may_be_damage

    if not may_be_damage(error):  # most errors: said already, without opening the lake
        return None
    try:
        import advertisex

        ax = advertisex.open()
        return explained(ax.lake, error) if ax.lake_exists() else None
    except Exception:  # while reporting another error: that one is said as it was
        return None


def _unreachable_storage(error: BaseException) -> TypeGuard[OSError]:
    """Whether ``error`` is the storage's or the network's, not ours: an object store that
    cannot be reached or refuses (PyArrow's S3 file system raises a bare ``OSError`` with
    its AWS error's text), a disk that is full, read-only or failing. A path that is not
    there is left out: that is ours to explain, or a bug."""
    if not isinstance(error, OSError) or isinstance(
        error, FileNotFoundError | NotADirectoryError | IsADirectoryError
    ):
        return False
    import errno

    storage = {
        errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT, errno.ECONNREFUSED,
        errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET,
    }  # fmt: skip
    return error.errno in storage or (error.errno is None and "AWS Error" in str(error))


def _storage_failed(error: OSError) -> AdvertiseXError:
    from advertisex.errors import StorageError

    text = str(error).strip().splitlines()
    return StorageError(
        text[0] if text else type(error).__name__,
        hint="the storage could not be reached, read or written: check that it is up and "
        "reachable (scale.landing, scale.warehouse, scale.s3_endpoint), that it has room and "
        "lets this user write, then run the same command again — nothing half-done was kept",
    )


def _report_unexpected(error: Exception) -> None:
    """One line on the terminal; the traceback in a file, for the bug report."""
    from advertisex.cli.common import saved_trace
    from advertisex.cli.output import console, literal

    details = saved_trace(error)
    text = str(error).strip().splitlines()
    console(stderr=True).print(
        f"[bold red]error:[/] {literal(type(error).__name__)}: {literal(text[0] if text else '')}"
        f"\n  → this is a bug in advertisex, not in what you did: please report it with "
        f"{details}",
        highlight=False,
        soft_wrap=True,
    )


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
    """Our own warnings (an ignored setting …) as one ``warning:`` line; others as Python does."""
    if not category.__module__.startswith("advertisex"):
        _python_show_warning(message, category, *args, **kw)
        return
    from advertisex.cli.output import console, literal

    console(stderr=True).print(
        f"[yellow]warning:[/] {literal(message)}", highlight=False, soft_wrap=True
    )


_python_show_warning = warnings.showwarning

if __name__ == "__main__":
    main()
