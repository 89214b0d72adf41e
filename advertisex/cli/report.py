"""``advertisex report …``: named questions over the tables."""

from __future__ import annotations

from datetime import date

import typer

from advertisex.cli.common import FormatOption, open_platform
from advertisex.cli.output import Format, print_rows, table_rows
from advertisex.errors import UserInputError

report_app = typer.Typer(help="Campaign and pipeline reports.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")


@report_app.command("campaigns")
def report_campaigns(
    start: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD), inclusive."),
    end: str | None = typer.Option(None, "--to", help="Last day (YYYY-MM-DD), inclusive."),
    fmt: Format = FormatOption,
) -> None:
    """Per campaign and day: impressions, unique users, clicks, conversions, CTR, CR, spend."""
    ax = open_platform()
    table = ax.report_campaigns(_day(start, "--from"), _day(end, "--to"))
    print_rows(table_rows(table), fmt, title="campaigns by day", columns=table.column_names)


def _day(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise UserInputError(
            f"{flag} {value!r} is not a date", hint=f"write {flag} 2026-11-20"
        ) from e
