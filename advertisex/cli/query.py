"""``advertisex query "SQL"``: read-only DuckDB SQL over the tables."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import typer

from advertisex.cli.common import FormatOption, open_platform
from advertisex.cli.output import Eliding, Format, print_message, print_rows, stream_rows
from advertisex.errors import UserInputError


def register(app: typer.Typer) -> None:
    app.command()(query)


# Rows a table shows unless asked for more: a terminal of a million rows is read by no one,
# and drawing them took 12 s and 2 GiB; JSON and CSV (for files and pipes) print them all.
TABLE_ROWS = 1_000


def query(
    sql: str = typer.Argument(
        ..., help='SQL (DuckDB dialect), e.g. "select count(*) from curated.impressions".'
    ),
    fmt: Format = FormatOption,
    max_rows: int = typer.Option(
        TABLE_ROWS,
        "--max-rows",
        min=1,
        help="Most rows the table shows (json and csv print every row).",
    ),
) -> None:
    """Run read-only SQL over curated.*, marts.*, dims.*, ops.* tables and raw.* landing views; writes are refused. Several statements: each one's table in turn (one with json or csv)."""
    # Rows are fetched a part at a time: JSON and CSV are printed as they arrive, a table
    # reads no more than it shows (and one more, to know there are more).
    rows_a_part = min(max_rows + 1, 10_000) if fmt is Format.table else 10_000
    answers = open_platform(deferred=True).query_each_row_parts(sql, rows_a_part)
    if fmt is not Format.table:
        if len(answers) > 1:  # one JSON document, one CSV header: one statement's rows
            raise UserInputError(
                f"--format {fmt.value} prints the rows of one statement, and the SQL holds "
                f"{len(answers)}",
                hint="run each as its own advertisex query, or make them one "
                "(UNION ALL BY NAME, a join)",
            )
        columns, parts = answers[0]()
        stream_rows(columns, parts, fmt)
        return
    for n, answer in enumerate(answers):
        if n:
            sys.stdout.write("\n")  # as psql and DuckDB's shell: each statement's table
        columns, parts = answer()
        _print_table(columns, parts, max_rows)


def _print_table(columns: list[str], parts: Iterator[list[dict[str, Any]]], max_rows: int) -> None:
    rows: list[dict[str, Any]] = []
    for part in parts:
        rows.extend(part)
        if len(rows) > max_rows:
            break
    # Too wide for the terminal: the first and last columns, as DuckDB's shell shows them.
    print_rows(rows[:max_rows], Format.table, columns=columns, narrowing=Eliding())
    if len(rows) > max_rows:
        print_message(
            f"the first {max_rows:,} rows are shown, and there are more: add a LIMIT, "
            "--max-rows N, or --format csv > FILE for every row"
        )
