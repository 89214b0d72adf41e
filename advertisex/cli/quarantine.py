"""``advertisex quarantine list|show|replay``: what was rejected, why, and replay after a fix."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from advertisex.cli.common import FormatOption, open_platform
from advertisex.cli.output import (
    Format,
    Narrowing,
    console,
    literal,
    print_json,
    print_message,
    print_rows,
    short_time,
    shown,
    table_rows,
)
from advertisex.errors import UserInputError

quarantine_app = typer.Typer(
    help="Rejected records: counts by reason, the records themselves, replay after a fix.",
    no_args_is_help=True,
)
# The summary on a terminal too narrow for it (80 columns was a block of 7 lines a reason).
SUMMARY_NARROWING = Narrowing(
    ("source", "reason"), ("records", "files", "last_landed", "first_landed"), "--format json"
)
SourceOption = typer.Option(
    None, "--source", "-s", help="Only this source: impressions, clicks or bids."
)
ReasonOption = typer.Option(
    None,
    "--reason",
    "-r",
    help="Only records with this reason: a code (required_missing) or code:field.",
)
SinceOption = typer.Option(
    None, "--since", help="Only records landed at or after this ISO-8601 instant or date."
)
UntilOption = typer.Option(
    None, "--until", help="Only records landed before this ISO-8601 instant or date."
)


def register(app: typer.Typer) -> None:
    app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def list_reasons(
    source: str | None = SourceOption,
    reason: str | None = ReasonOption,
    since: str | None = SinceOption,
    until: str | None = UntilOption,
    fmt: Format = FormatOption,
) -> None:
    """Quarantined records grouped by source and reason, with counts."""
    from advertisex.util.timeutil import utcnow

    table = open_platform().quarantine_summary(**_selection(source, reason, since, until))
    rows = table_rows(table)
    for row in rows if fmt is Format.table else []:
        for column in ("first_landed", "last_landed"):
            row[column] = short_time(row[column], utcnow())
    print_rows(
        rows,
        fmt,
        title="quarantine by reason",
        columns=table.column_names,
        empty="the quarantine is empty for this selection.",
        narrowing=SUMMARY_NARROWING,
    )
    if fmt is Format.table and rows:
        print_message(
            "A record counts under each of its reasons. See them: "
            "[bold]advertisex quarantine show --reason REASON[/]"
        )


@quarantine_app.command("show")
def show(
    source: str | None = SourceOption,
    reason: str | None = ReasonOption,
    since: str | None = SinceOption,
    until: str | None = UntilOption,
    limit: int = typer.Option(
        20, "--limit", "-n", min=1, max=10**9, help="Show at most this many records."
    ),
    fmt: Format = FormatOption,
) -> None:
    """Quarantined records: their reasons, landing file and position, and raw text."""
    from advertisex.model.reasons import shown_raw

    selection = _selection(source, reason, since, until)
    table = open_platform().quarantine_records(limit=limit, **selection)
    rows = table_rows(table)
    if fmt is not Format.table:
        print_rows(rows, fmt, columns=table.column_names)
        return
    out = console()
    for row in rows:
        # A record's text, its file's name and its framing error are a producer's: printed
        # as they are, never as markup, their control characters shown (output.shown).
        out.print(
            f"[bold]{literal(row['source'])}[/] {literal(row['source_file'])}:"
            f"{row['source_position']}  landed {row['ingest_time']:%Y-%m-%d %H:%M:%S}  "
            f"batch {literal(row['batch_id'])}",
            markup=True,
            highlight=False,
        )
        reasons = shown(", ".join(row["reasons"]))
        out.print(f"  reasons: {reasons}", markup=False, highlight=False)
        if row["detail"]:
            out.print(f"  detail:  {shown(row['detail'])}", markup=False, highlight=False)
        raw = shown_raw(row["raw"], "--format json shows the raw text whole")
        raw = raw if raw is None else shown(raw)
        out.print(f"  raw:     {raw}", markup=False, highlight=False, soft_wrap=True)
    if not rows:
        print_message("no quarantined records match.")
    elif len(rows) == limit:
        print_message(f"showing the first {limit}; use --limit for more.")


@quarantine_app.command("replay")
def replay(
    source: str | None = SourceOption,
    reason: str | None = ReasonOption,
    since: str | None = SinceOption,
    until: str | None = UntilOption,
    fmt: Format = FormatOption,
) -> None:
    """Re-run quarantined records through the current pipeline; those that pass leave it."""
    report = open_platform().replay_quarantine(**_selection(source, reason, since, until))
    from advertisex.quarantine.replay import SOURCE_FIELDS

    summary = report.summary()
    rows = summary["sources"]
    if fmt is Format.json:
        print_json(summary)
        return
    print_rows(
        rows,
        fmt,
        title="quarantine replay",
        columns=list(SOURCE_FIELDS),
        empty="nothing to replay: no quarantined records match.",
    )
    if fmt is Format.table and rows:
        if report.changed:
            moved = sum(r["left_quarantine"] for r in rows)
            marts = f"; the marts took them ({report.marts})" if report.marts else ""
            print_message(
                f"{moved:,} records left the quarantine (batch {report.batch_id}, "
                f"recorded in ops.batches as replay:<source>){marts}."
            )
        else:
            print_message("no change: every selected record still fails for the same reasons.")


def _selection(
    source: str | None, reason: str | None, since: str | None, until: str | None
) -> dict[str, Any]:
    return {
        "source": source,
        "reason": reason,
        "since": _instant(since, "--since"),
        "until": _instant(until, "--until"),
    }


def _instant(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    from advertisex.util.timeutil import parse_instant

    try:
        return parse_instant(value)
    except ValueError as error:
        raise UserInputError(
            f"{flag} {value!r} is not an ISO-8601 instant or date",
            hint=f"write e.g. {flag} 2026-11-20 or {flag} 2026-11-20T06:00:00Z",
        ) from error
