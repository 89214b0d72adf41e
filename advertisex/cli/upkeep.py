"""Verbs that keep the lake in shape: ``maintain`` (compaction, snapshot expiry,
unreferenced files, retention), ``forget`` (erasure of users) and ``relocate`` (a moved or
copied lake made this folder's own)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from advertisex.cli.common import FormatOption, open_platform, progress_bar
from advertisex.cli.output import (
    Format,
    Narrowing,
    human_bytes,
    literal,
    print_json,
    print_message,
    print_rows,
)
from advertisex.errors import LakeDamagedError

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
# The table on a terminal too narrow for it (100 columns was a block of 11 lines a table):
# an error is never the column left out (too long to fit beside the name: blocks, whole).
NARROWING = Narrowing(
    ("table", "error"),
    (
        "files", "size", "compacted", "snapshots_expired", "files_deleted", "orphans_deleted",
        "partitions_expired", "seconds",
    ),
    see_all="--format json",
)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(maintain)
    app.command()(forget)
    app.command()(relocate)
    app.command()(backup)


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
    # A dry run changes nothing: "29 → 29" beside "28 compacted" read as a compaction that
    # left the files as they were. It shows the files as they are.
    rows = [
        {
            "table": t.table,
            "files": t.data_files_before
            if report.dry_run
            else f"{t.data_files_before:,} → {t.data_files_after:,}",
            "size": human_bytes(t.bytes_before)
            if report.dry_run
            else f"{human_bytes(t.bytes_before)} → {human_bytes(t.bytes_after)}",
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
    print_rows(rows, fmt, title=title, columns=COLUMNS, narrowing=NARROWING)
    for t in report.tables:
        if t.marks_folded or t.markers_packed:
            marks, markers = t.marks_folded, t.markers_packed
            print_message(
                f"{t.table}: {marks:,} done mark{'s' * (marks != 1)} of retired days folded, "
                f"{markers:,} ingest index marker{'s' * (markers != 1)} packed "
                "(docs/running-for-months.md)"
            )
    damaged = [t.error.split(": ", 1)[1] for t in report.tables if t.error and _damaged(t.error)]
    failed: dict[str, list[str]] = {}  # what was said → the tables it was said of
    for t in report.tables:
        if t.error and not _damaged(t.error):
            failed.setdefault(t.error, []).append(t.table)
    for said, names in failed.items():
        print_message(f"[yellow]skipped[/] {literal(', '.join(names))}: {literal(said)}")
    if damaged:  # the others were maintained; these need someone (lake.damage)
        told = [text.partition("\n  → ") for text in damaged]
        hints = dict.fromkeys(hint for _, _, hint in told if hint)
        raise LakeDamagedError(
            "; ".join(message for message, _, _ in told), hint="; ".join(hints) or None
        )


def _damaged(error: str) -> bool:
    return error.startswith(f"{LakeDamagedError.__name__}: ")


def forget(
    user_id: list[str] | None = typer.Option(
        None, "--user-id", "-u", help="A user to forget (repeatable)."
    ),
    from_file: str | None = typer.Option(
        None,
        "--from-file",
        help="A UTF-8 file of user ids, one per line (a # after a blank starts a comment).",
    ),
    fmt: Format = FormatOption,
) -> None:
    """Erase users everywhere: landing files, tables, marts and their history (GDPR art. 17)."""
    from advertisex.errors import UserInputError

    if from_file is not None and not from_file.strip():  # Path("") is the current folder
        raise UserInputError(
            "--from-file is empty", hint="name the text file of user ids, one per line"
        )
    ids = list(user_id or []) + (_ids_in(Path(from_file)) if from_file else [])
    if not ids:
        raise UserInputError("no user id to forget", hint="pass --user-id ID or --from-file FILE")
    ax = open_platform()
    with progress_bar(fmt is Format.table, "forget") as progress:
        report = ax.forget(ids, progress)
    rows = [{"table": name, "rows_removed": n} for name, n in sorted(report.rows.items())]
    if fmt is Format.json:
        print_json(
            {
                "erasure_id": None if report.nothing else report.erasure_id,
                "users": report.users,
                "found": len(report.found),
                "rows_removed": dict(sorted(report.rows.items())),
                "landing_files_rewritten": report.segments,
                "snapshots_expired": report.snapshots_expired,
                "files_deleted": report.files_deleted,
                "landing_files_unsettled": report.unsettled,
                "seconds": round(report.seconds, 3),
            }
        )
        return
    if report.nothing:
        print_message(f"nothing to forget: no trace of {_users(report.users)} in this lake.")
        return
    print_rows(rows, fmt, title=f"forgot {_users(len(report.found))} in {report.seconds:.1f} s")
    print_message(
        f"{report.segments:,} landing file{'s' * (report.segments != 1)} rewritten, "
        f"{report.snapshots_expired:,} snapshots "
        f"and {report.files_deleted:,} old files deleted; audit: ops.erasures "
        f"(erasure {report.erasure_id}, users named by SHA-256 only)"
    )
    if report.unsettled:
        print_message(
            f"[bold yellow]warning:[/] {report.unsettled:,} of the landing files rewritten were "
            "still waiting for the processor running now, which may have read them before: "
            "once advertisex status shows no backlog, run the same forget again"
        )


_COMMENT = re.compile(r"(?:^|\s)#.*")


def _ids_in(path: Path) -> list[str]:
    from advertisex.errors import UserInputError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserInputError(
            f"cannot read {path}: {error.strerror or error}",
            hint="--from-file takes a text file of user ids, one per line",
        ) from error
    except UnicodeDecodeError as error:
        raise UserInputError(
            f"{path} is not UTF-8 text (byte {error.start + 1} is not)",
            hint="save the ids as UTF-8, one per line, and run forget again",
        ) from error
    # A comment starts a line or follows a blank: "u#1" is an id, and must not be
    # read as "u" (that would erase another user).
    ids = (_COMMENT.sub("", line).strip() for line in text.splitlines())
    return [user for user in ids if user]


def _users(n: int) -> str:
    return f"{n:,} user" + ("" if n == 1 else "s")


def relocate(fmt: Format = FormatOption) -> None:
    """Make a moved or copied lake this folder's own (its tables then name the files here)."""
    ax = open_platform()
    moved = ax.relocate()
    here = ax.settings.data_dir.absolute()
    if fmt is Format.json:
        print_json({"from": moved.was, "tables": moved.tables, "manifests": moved.manifests})
        return
    if not moved.tables:
        print_message(f"every table is recorded in {literal(here)} already: nothing to relocate.")
        return
    print_message(
        f"relocated {len(moved.tables)} tables from {moved.was} to {here / 'warehouse'} "
        f"({moved.manifests:,} manifest files rewritten, data files untouched); the lake in "
        f"{here} is its own now."
    )


def backup(
    to: Path = typer.Argument(..., help="A new folder for the backup (another disk is best)."),
    fmt: Format = FormatOption,
) -> None:
    """Copy the whole lake, as of one moment, to a new folder; it may run while the lake does."""
    ax = open_platform()
    done = ax.backup(to)
    if fmt is Format.json:
        print_json(done.__dict__)
        return
    here = ax.settings.data_dir.absolute()
    print_message(
        f"backed up the lake in {literal(here)} to {literal(done.to)} in {done.seconds:.1f} s: "
        f"{done.tables} tables ({done.table_files:,} files), {done.segments:,} landing files, "
        f"{human_bytes(done.bytes)}. To restore, stop the lake's processes and put the "
        f"backup in its place; used where it is, it is a copy until advertisex relocate."
    )
