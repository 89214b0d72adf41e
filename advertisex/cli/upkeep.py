"""Verbs that keep the lake in shape: ``maintain`` (compaction, snapshot expiry,
unreferenced files, retention) and ``forget`` (erasure of users)."""

from __future__ import annotations

from typing import Any

import typer

from advertisex.cli.common import FormatOption, open_platform, progress_bar
from advertisex.cli.output import Format, human_bytes, print_json, print_message, print_rows

COLUMNS = [
    "table",
    "files",
    "size",
    "compacted",
    "snapshots_expired",
    "files_deleted",
    "orphans_deleted",
    "partitions_expired",
    "seconds",
    "error",
]


def register(app: typer.Typer) -> None:
    app.command()(maintain)


def maintain(
    table: list[str] | None = typer.Option(
        None, "--table", "-t", help="Maintain this table only (repeatable); default: all."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be done; change nothing."
    ),
    fmt: Format = FormatOption,
) -> None:
    """Compact small files, expire old snapshots, delete unreferenced files, apply retention."""
    ax = open_platform()
    with progress_bar(fmt is Format.table, "maintain") as progress:
        report = ax.maintain(table or None, dry_run=dry_run, progress=progress)
    print_upkeep(report, fmt)


def print_upkeep(report: Any, fmt: Format) -> None:
    from dataclasses import asdict

    if fmt is Format.json:
        print_json(
            {
                "run_id": report.run_id,
                "dry_run": report.dry_run,
                "seconds": round(report.seconds, 3),
                "tables": [asdict(t) for t in report.tables],
            }
        )
        return
    rows = [
        {
            "table": t.table,
            "files": f"{t.data_files_before:,} → {t.data_files_after:,}",
            "size": f"{human_bytes(t.bytes_before)} → {human_bytes(t.bytes_after)}",
            "compacted": t.files_compacted,
            "snapshots_expired": t.snapshots_expired,
            "files_deleted": t.files_deleted,
            "orphans_deleted": t.orphans_deleted,
            "partitions_expired": t.partitions_expired,
            "seconds": round(t.seconds, 2),
            "error": t.error,
        }
        for t in report.tables
    ]
    if fmt is Format.csv:
        print_rows([asdict(t) for t in report.tables], fmt)
        return
    title = "would do (dry run)" if report.dry_run else f"maintained in {report.seconds:.1f} s"
    print_rows(rows, fmt, title=title, columns=COLUMNS)
    failed = [t.table for t in report.tables if t.error]
    if failed:
        print_message(
            f"[yellow]skipped[/] {', '.join(failed)}: changed by another writer meanwhile; "
            "the next run tries again"
        )
