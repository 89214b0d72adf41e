"""``advertisex query "SQL"``: read-only DuckDB SQL over the tables."""

from __future__ import annotations

import typer

from advertisex.cli.common import FormatOption, open_platform
from advertisex.cli.output import Format, print_rows


def register(app: typer.Typer) -> None:
    app.command()(query)


def query(
    sql: str = typer.Argument(
        ..., help='SQL (DuckDB dialect), e.g. "select count(*) from curated.impressions".'
    ),
    fmt: Format = FormatOption,
) -> None:
    """Run read-only SQL over curated.*, marts.*, dims.*, ops.* tables and raw.* landing views; writes are refused."""
    columns, rows = open_platform(deferred=True).query_rows(sql)
    print_rows(rows, fmt, columns=columns)
