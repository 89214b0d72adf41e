"""Verbs that move data: ``ingest`` and ``process``."""

from __future__ import annotations

from typing import Any

import typer

from advertisex.cli.common import (
    EngineOption,
    FormatOption,
    MasterOption,
    VerboseOption,
    announce_new_lake,
    engine_failures,
    interruptible,
    open_platform,
    open_runner,
    parse_day,
    progress_bar,
    require_lake,
)
from advertisex.cli.output import (
    Format,
    Narrowing,
    literal,
    print_json,
    print_message,
    print_rows,
)
from advertisex.cli.progress import across_batches
from advertisex.errors import UserInputError

# The accounting on a terminal too narrow for all of it (100 columns was a block of 10
# lines per source): records in and where each went first, the sum a reader checks.
ACCOUNTING_NARROWING = Narrowing(
    ("source",),
    (
        "records_in", "accepted", "quarantined", "filtered", "duplicates",
        "files", "conflicts", "balanced",
    ),
    see_all="--format json",
)  # fmt: skip
SOURCE_HELP = "Force the source (impressions, clicks or bids) instead of detecting it."


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(process)
    app.command()(replay)


def ingest(
    paths: list[str] = typer.Argument(..., help="Files, folders (recursive) or quoted globs."),
    source: str | None = typer.Option(None, "--source", "-s", help=SOURCE_HELP),
    fmt: Format = FormatOption,
) -> None:
    """Copy event files into the landing zone. The same bytes twice land once."""
    if source is not None and source not in ("impressions", "clicks", "bids"):
        raise UserInputError(
            f"unknown source {source!r}", hint="use --source impressions, clicks or bids"
        )
    from advertisex.landing.zone import expand_paths

    expand_paths(paths)  # a mistyped path makes no lake
    ax = open_platform(create=True)
    with progress_bar(fmt is Format.table, "ingest") as progress:
        # The paths as given: a walk's links out of its folder are refused, which the files
        # it found, named one by one, would not be.
        results = ax.ingest(paths, source, progress)
    rows = [
        {
            "path": r.path,
            "status": r.status,
            "source": r.source,
            "segment": r.segment,
            "bytes": r.bytes,
            "detail": r.detail,
        }
        for r in results
    ]
    counts = {s: sum(r.status == s for r in results) for s in ("landed", "already", "skipped")}
    if fmt is not Format.table:
        print_rows(rows, fmt)
    else:
        columns = ["path", "status", "source", "bytes", "detail"]
        print_rows(rows, fmt, title="ingest", columns=columns)
        print_message(
            f"{counts['landed']} landed, {counts['already']} already ingested (no-op), "
            f"{counts['skipped']} skipped."
            + (" Next: [bold]advertisex process[/]" if counts["landed"] else "")
        )
    if results and counts["skipped"] == len(results):
        from advertisex.landing.zone import NOT_RECOGNISED

        unrecognised = any(r.detail == NOT_RECOGNISED for r in results)
        raise UserInputError(
            f"nothing landed: {'the file was' if len(results) == 1 else f'all {len(results)} files were'} skipped",
            hint="see each file's detail above"
            + (
                "; --source impressions|clicks|bids names the source of a file that is not "
                "recognised"
                if unrecognised
                else ""
            ),
        )


def process(
    fmt: Format = FormatOption,
    follow: bool = typer.Option(
        False, "--follow", help="Keep processing new landing segments until Ctrl-C / SIGTERM."
    ),
    interval: float = typer.Option(0.5, "--interval", help="With --follow: seconds between looks."),
    engine: str | None = EngineOption,
    master: str | None = MasterOption,
    verbose: bool = VerboseOption,
) -> None:
    """Process every pending landing file into the curated tables."""
    if follow:
        from advertisex.cli.serve import follow_landing

        follow_landing(interval, fmt, engine, master, verbose)
        return
    import advertisex

    ax = advertisex.open()
    if ax.settings.scale.landing:  # a landing zone elsewhere may hold a new lake's work
        announce_new_lake(ax)
    else:  # nothing is pending in no lake: run in the wrong folder, say so, make nothing
        require_lake(ax)
    runner = open_runner(ax, engine, master, verbose, decodes=True)
    try:
        with (
            interruptible(lambda: not_committed(runner)),
            engine_failures(ax),
            progress_bar(fmt is Format.table, "process") as progress,
        ):
            report = runner.process(across_batches(progress, len(runner.pending())))
    finally:
        runner.stop()
    print_accounting(report, fmt)


def not_committed(runner: Any) -> str:
    """What an interrupted run left: the batch that was not committed (batch ids follow
    from their segments, so the next run makes the same batch), or only the marts."""
    from advertisex.runners.runner import batch_id_for

    try:
        done = runner.lake.done_in(runner.landing)
        left = runner.plan([s for s in runner.landing.segments() if s.name not in done])
    except Exception:  # the catalog is what was interrupted: say less, but say it
        return (
            "interrupted: the batch in progress was not committed; run `advertisex process` again"
        )
    if not left:
        return (
            "interrupted after the last batch was committed; the marts catch up on the next "
            "run (or `advertisex report refresh`)"
        )
    segments = sum(len(b) for b in left)
    return (
        f"interrupted: batch {batch_id_for(left[0])} not committed ({segments:,} landing files "
        "still pending); run `advertisex process` again"
    )


def _recomputed_from(marts: Any) -> str | None:
    """The day a rebuild recomputed the marts from, where it kept their older rows."""
    day = marts.recomputed_from if marts is not None else None
    return day.isoformat() if day is not None else None


def print_accounting(report: Any, fmt: Format) -> None:
    rows = [
        {
            "source": a.source,
            "files": a.files,
            "records_in": a.records_in,
            "accepted": a.accepted,
            "quarantined": a.quarantined,
            "filtered": a.filtered,
            "duplicates": a.duplicates,
            "conflicts": a.conflicts,
            "balanced": a.balanced,
        }
        for a in report.accounts.values()
    ]
    if fmt is Format.json:
        tables: dict[str, int] = {}
        for a in report.accounts.values():
            tables.update(a.by_table)
        print_json(
            {
                "batches": report.batches,
                "segments": report.segments,
                "unreadable": [
                    {"segment": u.segment.name, "reason": u.reason} for u in report.unreadable
                ],
                "damaged": [
                    {"segment": d.segment.name, "reason": d.reason} for d in report.damaged
                ],
                "seconds": round(report.seconds, 3),
                "marts": report.marts.mode if report.marts is not None else None,
                "marts_recomputed_from": _recomputed_from(report.marts),
                "marts_seconds": round(report.phases.get("marts", 0.0), 3),
                "sources": rows,
                "tables": tables,
                **({"past_retention": report.past_retention} if report.past_retention else {}),
            }
        )
        return
    if not rows:
        if fmt is Format.table:
            print_message("nothing pending: every landed file is already processed.")
            if report.marts is not None and report.marts.mode != "unchanged":
                print_message(
                    "the marts were behind the committed batches (a run stopped before "
                    f"updating them) and are up to date now ({report.marts.mode})."
                )
            if report.marts is not None and report.marts.kept_note:
                print_message(report.marts.kept_note + ".")
        else:
            print_rows([], fmt, columns=["source"])
        return
    if report.marts is not None and report.marts.kept_note and fmt is Format.table:
        print_message(report.marts.kept_note + ".")
    for account in report.accounts.values():
        if account.new_fields and fmt is Format.table:
            print_message(
                f"[yellow]schema change[/] {account.source} records carry fields the contract does not "
                f"know: {literal(_some_names(account.new_fields))} (kept in the extras column)"
            )
    for account in report.accounts.values():
        if account.records_in and account.quarantined == account.records_in and fmt is Format.table:
            print_message(
                f"[yellow]warning:[/] every one of the {account.records_in:,} {account.source} "
                f"records was quarantined: see [bold]advertisex quarantine list --source "
                f"{account.source}[/]"
            )
    for item in report.unreadable:
        print_message(
            f"[yellow]set aside[/] {literal(item.segment.name)}: {literal(item.reason)} — "
            "quarantined whole (the file stays where it landed); once fixed: "
            "[bold]advertisex quarantine replay --reason segment_unreadable[/]"
        )
    for item in report.damaged:
        print_message(
            f"[yellow]damaged[/] {literal(item.segment.name)}: {literal(item.reason)} — its "
            "records before the damage were kept, the rest is one quarantine entry; have the "
            "producer send the file again"
        )
    title = f"processed {report.segments} files in {report.seconds:.1f} s"
    print_rows(rows, fmt, title=title, narrowing=ACCOUNTING_NARROWING)
    if fmt is Format.table:
        rate = report.records_in / report.seconds if report.seconds else 0
        print_message(
            f"{report.records_in:,} records, {rate:,.0f} records/s; every record accounted for."
        )
        if report.past_retention:  # accepted, then left out at the commit as retention would
            left = sum(report.past_retention.values())
            where = ", ".join(f"{n:,} {t}" for t, n in sorted(report.past_retention.items()))
            print_message(
                f"{left:,} row{'s' * (left != 1)} of days past their table's retention "
                f"{'were' if left != 1 else 'was'} left out ({where}): "
                "retention.days keeps those days no more (counted as accepted)."
            )


def replay(
    start: str | None = typer.Option(
        None,
        "--from",
        help="First landing day, inclusive: YYYY-MM-DD, today, yesterday or today-N.",
    ),
    end: str | None = typer.Option(
        None, "--to", help="Last landing day, inclusive: YYYY-MM-DD, today, yesterday or today-N."
    ),
    fmt: Format = FormatOption,
) -> None:
    """Rebuild curated tables from the landing zone (whole batches), then process them again."""
    ax = open_platform()
    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    with progress_bar(fmt is Format.table, "replay") as progress:
        result = ax.replay(first, last, progress)
    if result.process is None:
        if fmt is Format.json:
            print_json({"batches": [], "segments": 0})
        else:
            print_message(
                "nothing to replay: no processed batch consumed a segment landed in that range."
            )
        return
    if fmt is Format.table:
        batches, files = len(result.batches), result.segments
        print_message(
            f"replaying {batches} batch{'es' * (batches != 1)} "
            f"({files} landing file{'s' * (files != 1)}) …"
        )
    print_accounting(result.process, fmt)


def _some_names(names: set[str], most: int = 10, width: int = 60) -> str:
    """The first ``most`` names, each cut at ``width`` characters, and how many more: a
    producer names the fields (one CSV header of 100,000 columns printed 800 KB on the
    operator's terminal); ``ops.batches.new_fields`` keeps them all."""
    ordered = sorted(names)
    shown = [name if len(name) <= width else name[: width - 1] + "…" for name in ordered[:most]]
    more = len(ordered) - len(shown)
    return ", ".join(shown) + (
        f" and {more:,} more (all in ops.batches.new_fields)" if more else ""
    )
