"""``advertisex dims load|list``: campaign and creative dimensions, with their history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from advertisex.cli.common import FormatOption, open_platform
from advertisex.cli.output import (
    Format,
    literal,
    print_json,
    print_message,
    print_rows,
    table_rows,
)
from advertisex.errors import UserInputError

dims_app = typer.Typer(
    help="Campaign and creative dimensions (kept with their history, SCD type 2).",
    no_args_is_help=True,
)
KIND_HELP = "campaigns or creatives (default: detected from the id column)."


def register(app: typer.Typer) -> None:
    app.add_typer(dims_app, name="dims")


@dims_app.command("load")
def load(
    path: str = typer.Argument(..., help="CSV, JSON (array or NDJSON) or Parquet file."),
    kind: str | None = typer.Option(None, "--kind", "-k", help=KIND_HELP),
    effective_from: str | None = typer.Option(
        None,
        "--effective-from",
        help="ISO-8601 instant from which changed rows hold (default: now; UTC without offset).",
    ),
    fmt: Format = FormatOption,
) -> None:
    """Load campaigns or creatives; a changed row closes its old version and opens a new one."""
    from advertisex import dims

    if not path.strip():  # Path("") is the current folder: "cannot read .: Is a directory"
        raise UserInputError(
            "an empty path was given", hint="name the file to load (an empty variable in a script?)"
        )
    file = Path(path)
    effective = _instant(effective_from, "--effective-from")
    report = dims.load_file(
        open_platform(create=True).lake, file, kind=kind, effective_from=effective
    )
    row = {
        "file": report.path,
        "kind": report.kind,
        "format": report.format,
        "rows": report.rows,
        "added": report.added,
        "changed": report.changed,
        "unchanged": report.unchanged,
        "effective_from": report.effective_from.isoformat(),
        "versions": report.versions,
        "ignored_columns": report.ignored_columns,
        "noop": report.is_noop,
    }
    if fmt is Format.json:
        print_json(row)
        return
    if fmt is Format.csv:
        print_rows([row], fmt)
        return
    columns = ["file", "kind", "format", "rows", "added", "changed", "unchanged", "versions"]
    print_rows([{**row, "file": file.name}], fmt, title=f"dims.{report.kind}", columns=columns)
    if report.is_noop:
        print_message(f"no change: every row of {literal(file.name)} is already current (no-op).")
    elif report.changed:
        print_message(f"changed rows hold from {report.effective_from.isoformat()}.")
    if report.ignored_columns:
        print_message("ignored columns: " + ", ".join(report.ignored_columns))


@dims_app.command("list")
def list_versions(
    kind: str = typer.Option("campaigns", "--kind", "-k", help="campaigns or creatives."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Show the versions true at this ISO-8601 instant (default: now)."
    ),
    history: bool = typer.Option(False, "--history", help="Show every version, not one per id."),
    fmt: Format = FormatOption,
) -> None:
    """List campaigns or creatives as they are now, as they were at --as-of, or all versions."""
    from advertisex.dims import store
    from advertisex.model.dims import KINDS

    if kind not in KINDS:
        raise UserInputError(f"unknown dimension kind {kind!r}", hint="use campaigns or creatives")
    if history and as_of:
        raise UserInputError("--history and --as-of exclude each other", hint="pass one of them")
    table = store.listing(open_platform().lake, kind, _instant(as_of, "--as-of"), history)
    columns = [c for c in table.column_names if c not in ("row_hash", "loaded_at", "source_file")]
    if fmt is not Format.table:
        columns = table.column_names
    print_rows(
        table_rows(table),
        fmt,
        title=f"dims.{kind}",
        columns=columns,
        empty=f"no {kind} loaded yet. Load some: [bold]advertisex dims load FILE[/]",
    )


def _instant(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    from advertisex.util.timeutil import parse_instant

    try:
        return parse_instant(value)
    except ValueError as error:
        raise UserInputError(
            f"{flag} {value!r} is not an ISO-8601 instant",
            hint=f"write e.g. {flag} 2026-11-20T00:00:00Z (or just 2026-11-20)",
        ) from error
