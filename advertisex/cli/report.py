"""``advertisex report …``: named questions over the marts, and keeping the marts current."""

from __future__ import annotations

from typing import Any

import typer

from advertisex.cli.common import (
    EngineOption,
    FormatOption,
    MasterOption,
    VerboseOption,
    engine_failures,
    open_platform,
    open_runner,
    progress_bar,
)
from advertisex.cli.common import parse_day as _day
from advertisex.cli.output import (
    Format,
    Narrowing,
    print_json,
    print_message,
    print_rows,
    table_rows,
)
from advertisex.errors import UserInputError

report_app = typer.Typer(help="Campaign, funnel, user and auction reports.", no_args_is_help=True)

FromOption = typer.Option(
    None, "--from", help="First day (UTC), inclusive: YYYY-MM-DD, today, yesterday or today-N."
)
ToOption = typer.Option(
    None, "--to", help="Last day (UTC), inclusive: YYYY-MM-DD, today, yesterday or today-N."
)
CampaignOption = typer.Option(None, "--campaign", help="Only this campaign id.")
ModelOption = typer.Option(
    "last", "--model", help="Attribution model for conversions: last, first or linear."
)
ColumnsOption = typer.Option(
    None,
    "--columns",
    help="Only these columns, in this order, comma-separated (all: every one), in every "
    "format. Without it a table too wide for the terminal keeps the most asked columns; "
    "JSON and CSV print all.",
)

# What each report's table keeps on a terminal too narrow for all of it: the columns that
# name a row, then the most asked ones first (a column a report lacks is passed over).
NARROWINGS = {
    "campaigns": Narrowing(
        ("campaign_id", "day"),
        (
            "impressions", "clicks", "ctr", "spend", "conversions",
            "ivt_impressions", "ivt_clicks", "ivt_conversions",  # there when asked for
            "roas", "cpa", "attributed_conversions", "ecpm", "unique_users", "conversion_rate",
            "attributed_value", "conversion_value", "win_rate", "bids", "wins",
        ),
    ),
    "funnel": Narrowing(
        ("campaign_id",),
        (
            "impressions", "clicks", "conversions", "ctr", "conversion_rate", "wins",
            "win_rate", "bid_requests", "bids", "bid_rate",
        ),
    ),
    "bids": Narrowing(
        ("campaign_id", "day"),
        (
            "bid_requests", "bids", "wins", "win_rate", "avg_bid_cpm", "avg_clearing_cpm",
            "shading", "avg_floor_cpm", "avg_won_bid_cpm", "no_bids",
        ),
    ),
    "hourly": Narrowing(
        ("campaign_id", "hour"),
        ("impressions", "clicks", "ctr", "spend", "conversions", "attributed_conversions"),
    ),
}  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")


@report_app.command("campaigns")
def report_campaigns(
    start: str | None = FromOption,
    end: str | None = ToOption,
    campaign: str | None = CampaignOption,
    model: str = ModelOption,
    include_ivt: bool = typer.Option(
        False,
        "--include-ivt",
        help="Also count invalid traffic (curated.filtered), in columns of its own.",
    ),
    columns: str | None = ColumnsOption,
    fmt: Format = FormatOption,
) -> None:
    """Per campaign and day: impressions, unique users, clicks, conversions, CTR, spend, CPA, ROAS, eCPM, win rate."""
    _show("campaigns", "campaigns by day", start, end, campaign, model, fmt, include_ivt, columns)


@report_app.command("funnel")
def report_funnel(
    start: str | None = FromOption,
    end: str | None = ToOption,
    campaign: str | None = CampaignOption,
    model: str = ModelOption,
    columns: str | None = ColumnsOption,
    fmt: Format = FormatOption,
) -> None:
    """Bid request → bid → win → impression → click → conversion, per campaign and in all."""
    _show("funnel", "funnel", start, end, campaign, model, fmt, columns=columns)


@report_app.command("users")
def report_users(
    start: str | None = FromOption,
    end: str | None = ToOption,
    campaign: str | None = CampaignOption,
    model: str = ModelOption,
    fmt: Format = FormatOption,
) -> None:
    """Frequency, reach, time to click and time to convert."""
    _show("users", "users", start, end, campaign, model, fmt)


@report_app.command("bids")
def report_bids(
    start: str | None = FromOption,
    end: str | None = ToOption,
    campaign: str | None = CampaignOption,
    columns: str | None = ColumnsOption,
    fmt: Format = FormatOption,
) -> None:
    """Per campaign and day: requests, bids, wins, win rate, bid / floor / clearing CPM."""
    _show("bids", "auctions by day", start, end, campaign, "last", fmt, columns=columns)


@report_app.command("hourly")
def report_hourly(
    start: str | None = FromOption,
    end: str | None = ToOption,
    campaign: str | None = CampaignOption,
    model: str = ModelOption,
    columns: str | None = ColumnsOption,
    fmt: Format = FormatOption,
) -> None:
    """Per campaign and hour: impressions, clicks, conversions, CTR, spend, attributed conversions."""
    _show("hourly", "campaigns by hour", start, end, campaign, model, fmt, columns=columns)


@report_app.command("refresh")
def refresh(
    rebuild: bool = typer.Option(False, "--rebuild", help="Recompute the marts from scratch."),
    engine: str | None = EngineOption,
    master: str | None = MasterOption,
    verbose: bool = VerboseOption,
    fmt: Format = FormatOption,
) -> None:
    """Bring the marts up to date with the curated tables (processing does this by itself)."""
    ax = open_platform()
    runner = open_runner(ax, engine, master, verbose)
    try:
        with (
            engine_failures(ax),
            progress_bar(fmt is Format.table, "marts", unit="steps") as progress,
        ):
            done = ax.refresh_marts(rebuild, runner.mart_kernels(), progress)
    finally:
        runner.stop()
    row: dict[str, Any] = {"mode": "disabled"}
    if done is not None:
        row = dict(done.__dict__)
        row["new_rows"] = sum(done.new_rows.values())
        row["seconds"] = round(done.seconds, 3)
        row["recomputed_from"] = done.recomputed_from and done.recomputed_from.isoformat()
        if done.kept_note and fmt is Format.table:
            print_message(done.kept_note + ".")
    print_rows([row], fmt, title="marts", columns=list(row))


def _show(
    name: str,
    title: str,
    start: str | None,
    end: str | None,
    campaign: str | None,
    model: str,
    fmt: Format,
    include_ivt: bool = False,
    columns: str | None = None,
) -> None:
    from advertisex.reports.common import ReportOptions

    options = ReportOptions(_day(start, "--from"), _day(end, "--to"), campaign, model, include_ivt)
    ax = open_platform(deferred=True)
    answer = ax.report_rows(name, options)  # one question: its rows without Arrow
    if answer is None:
        result = ax.report(name, options)
        if isinstance(result, dict):  # several sections
            _print_sections(result, fmt)
            return
        answer = result.column_names, table_rows(result)
    names, rows = answer
    chosen = _chosen(columns, names)
    narrowing = NARROWINGS.get(name) if columns is None else None  # asked: shown as asked
    print_rows(rows, fmt, title=title, columns=chosen or names, narrowing=narrowing)


def _chosen(asked: str | None, names: list[str]) -> list[str] | None:
    """The columns ``--columns`` names, in its order, or None for no choice (or ``all``);
    a name the report has not is the user's error, told with the names it has."""
    if asked is None or asked.strip().lower() == "all":
        return None
    chosen: list[str] = []
    for name in (part.strip().lower() for part in asked.split(",")):
        if name and name not in chosen:
            chosen.append(name)
    unknown = [name for name in chosen if name not in names]
    if unknown or not chosen:
        said = ", ".join(repr(name) for name in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise UserInputError(
            f"--columns: no column{plural} {said} in this report"
            if unknown
            else "--columns names no column",
            hint=f"name some of: {', '.join(names)} (or all)",
        )
    return chosen


def _print_sections(sections: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        print_json({name: table_rows(table) for name, table in sections.items()})
        return
    if fmt is Format.csv:
        rows, columns = [], ["section"]
        for name, table in sections.items():
            rows += [{"section": name, **r} for r in table_rows(table)]
            columns += [c for c in table.column_names if c not in columns]
        print_rows(rows, fmt, columns=columns)
        return
    for name, table in sections.items():
        print_rows(table_rows(table), fmt, title=name.replace("_", " "), columns=table.column_names)
