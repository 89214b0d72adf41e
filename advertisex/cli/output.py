"""The one place the CLI writes results: human tables by default, JSON/CSV for machines.

Core code never prints. Commands build plain data (dicts, lists of rows, Arrow tables)
and hand it here with the format the user asked for.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from advertisex.util import jsonutil


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        # Piped or captured output: don't squeeze tables into 80 columns.
        out = Console(stderr=stderr, highlight=False, soft_wrap=False, width=max(out.width, 160))
    return out


def table_rows(table: Any) -> list[dict[str, Any]]:
    """Arrow table → row dicts, maps as JSON objects (not lists of pairs)."""
    return table.to_pylist(maps_as_pydicts="lossy")


def print_json(data: Any) -> None:
    sys.stdout.write(jsonutil.dumps_str(data, indent=True) + "\n")


def print_rows(
    rows: Sequence[dict[str, Any]],
    fmt: Format,
    *,
    title: str | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Print rows as a rich table, a JSON array of row objects, or CSV with a header."""
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if fmt is Format.json:
        print_json([{c: r.get(c) for c in columns} for r in rows])
    elif fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_csv_cell(r.get(c)) for c in columns])
        sys.stdout.write(buffer.getvalue())
    else:
        from rich.table import Table

        table = Table(title=title, show_lines=False)
        for c in columns:
            numeric = any(isinstance(r.get(c), int | float) for r in rows[:50])
            table.add_column(c, justify="right" if numeric else "left")
        for r in rows:
            table.add_row(*[_cell(r.get(c)) for c in columns])
        console().print(table)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return jsonutil.dumps_str(value)
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_message(text: str) -> None:
    """Human-only chatter (hints, next steps) goes to stderr so stdout stays parseable."""
    console(stderr=True).print(text)


def rows_from_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    return [{"line": line} for line in lines]
