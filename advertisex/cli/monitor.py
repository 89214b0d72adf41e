"""Monitoring verbs: ``monitor`` (run the monitors), ``alerts`` (history), ``status`` (at a glance)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

import typer

from advertisex.cli.common import FormatOption, open_platform, positive_seconds
from advertisex.cli.output import (
    Format,
    Narrowing,
    literal,
    print_json,
    print_message,
    print_rows,
    short_time,
    table_rows,
)

FINDING_COLUMNS = ["alertname", "severity", "labels", "summary"]
ALERT_COLUMNS = ["alertname", "state", "severity", "labels", "since", "summary"]
HISTORY_COLUMNS = ["at", "alertname", "state", "severity", "source", "summary"]
NO_ALERT_FIRING = "no alert firing (as of the monitor's last evaluation)."
# What ``status``'s tables keep on a terminal too narrow for all of them (100 columns was
# one block of 11 lines per source and of 9 per table): the most looked at first.
SOURCES_NARROWING = Narrowing(
    ("source",),
    (
        "freshness_s", "records_1h", "backlog_segments", "quarantine_rate", "last_landed",
        "filtered_rate", "duplicate_rate", "conflict_rate", "backlog_bytes",
    ),
    see_all="--format json",
)  # fmt: skip
LAKE_NARROWING = Narrowing(
    ("table",),
    (
        "data_files", "size", "small_files", "last_maintenance", "snapshots", "manifests",
        "avg_file",
    ),
    see_all="--format json",
)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(monitor)
    app.command()(alerts)
    app.command()(status)


def monitor(
    once: bool = typer.Option(False, "--once", help="Evaluate once, print, deliver, exit."),
    interval: float | None = typer.Option(
        None, "--interval", help="Seconds between evaluations; default: monitor.interval_seconds."
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus /metrics on this port (127.0.0.1).",
    ),
    fmt: Format = FormatOption,
) -> None:
    """Run the monitors and send alert notifications; Ctrl-C / SIGTERM to stop."""
    from advertisex.monitor.service import Monitor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ax = open_platform(create=True)
    mon = Monitor.open(ax)
    if once:
        result = mon.evaluate()
        mon.delivery.drain()
        rows = [
            {
                "alertname": f.alertname,
                "severity": f.severity,
                "labels": ", ".join(f"{k}={v}" for k, v in sorted(f.labels.items())),
                "summary": f.summary,
            }
            for f in result.findings
        ]
        print_rows(
            rows,
            fmt,
            title="findings",
            columns=FINDING_COLUMNS,
            empty="all monitors pass: nothing to report.",
        )
        return
    port = metrics_port if metrics_port is not None else ax.settings.monitor.metrics_port
    if port:
        from advertisex.monitor import metrics

        metrics.serve(port, ax.settings.data_dir, settings=ax.settings)
        print_message(f"metrics on [bold]http://127.0.0.1:{port}/metrics[/]")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    every = interval or ax.settings.monitor.interval_seconds
    positive_seconds(every, "--interval")
    print_message(f"monitoring {literal(ax.settings.data_dir)} every {every:g} s; Ctrl-C to stop")
    mon.run(stop, every, lambda result: _print_evaluation(result, fmt))


def _print_evaluation(result: Any, fmt: Format) -> None:
    firing = sum(t.state == "firing" for t in result.transitions)
    resolved = sum(t.state == "resolved" for t in result.transitions)
    line = {
        "at": result.observations.now.isoformat(timespec="seconds"),
        "findings": len(result.findings),
        "fired": firing,
        "resolved": resolved,
        "messages": len(result.messages),
        "errors": result.errors,
    }
    if fmt is Format.table:
        sys.stdout.write(
            f"{line['at']} {line['findings']} findings, {firing} fired, {resolved} resolved, "
            f"{line['messages']} messages\n"
        )
    else:
        from advertisex.util import jsonutil

        sys.stdout.write(jsonutil.dumps_str(line) + "\n")
    sys.stdout.flush()


def alerts(
    firing: bool = typer.Option(False, "--firing", help="Only the alerts firing now."),
    since: str | None = typer.Option(
        None, "--since", help="History from this ISO-8601 time on (e.g. 2026-11-20T00:00Z)."
    ),
    fmt: Format = FormatOption,
) -> None:
    """Alert history from ops.alerts, or with --firing the alerts firing now."""
    from advertisex.errors import UserInputError
    from advertisex.monitor.state import StateStore
    from advertisex.monitor.status import alert_rows
    from advertisex.util.timeutil import parse_instant, utcnow

    ax = open_platform()
    human = fmt is Format.table
    if firing:
        store = StateStore(ax.settings.data_dir / "monitor" / "state.db")
        rows = alert_rows(list(store.load("alerts").values()), firing_only=True)
        for row in rows if human else []:
            row["since"] = short_time(row["since"], utcnow())
        print_rows(rows, fmt, title="firing alerts", columns=ALERT_COLUMNS, empty=NO_ALERT_FIRING)
        return
    where = ""
    if since:
        try:
            where = f"WHERE \"at\" >= TIMESTAMPTZ '{parse_instant(since).isoformat()}'"
        except ValueError as error:
            raise UserInputError(
                f"--since is not an ISO-8601 time: {since!r}", hint="e.g. --since 2026-11-20T06:00Z"
            ) from error
    table = ax.query(
        'SELECT "at", alertname, state, severity, source, labels, value, threshold, summary '
        f'FROM ops.alerts {where} ORDER BY "at", alertname'
    )
    rows = table_rows(table)
    for row in rows if human else []:
        row["at"] = short_time(row["at"], utcnow())
    columns = table.column_names if not human else HISTORY_COLUMNS
    none = "no alert " + (f"since {since}" if since else "yet") + " in ops.alerts."
    print_rows(rows, fmt, title="alert history", columns=columns, empty=none)


def status(fmt: Format = FormatOption) -> None:
    """The pipeline at a glance: sources, freshness, backlog, rates, firing alerts."""
    from advertisex.lake.upkeep import health
    from advertisex.monitor.gather import Gatherer
    from advertisex.monitor.state import StateStore
    from advertisex.monitor.status import alert_rows, processor_row, source_rows
    from advertisex.util.nopandas import refused as refused_pandas

    ax = open_platform()
    store = StateStore(ax.settings.data_dir / "monitor" / "state.db")  # final hours kept there
    # Nothing here needs pandas, which Arrow imports on its first array only to ask whether
    # it was handed a pandas object: a quarter of a second of a look meant to be instant.
    with refused_pandas():
        obs = Gatherer(ax.settings, ax.lake, store=store).observe(hourly=False)
        sources = source_rows(obs)
        follower = processor_row(obs)
        current = alert_rows(list(store.load("alerts").values()), firing_only=True)
        lake = health(ax.lake)
    read_only = ax.lake.read_only()
    if fmt is Format.json:
        for row in lake:
            at = row["last_maintenance"]
            row["last_maintenance"] = at.isoformat() if at else None
        print_json(
            {
                "at": obs.now.isoformat(),
                "sources": sources,
                "processor": follower,
                "firing": current,
                "lake": lake,
                "read_only": read_only.message if read_only else None,
            }
        )
        return
    if fmt is Format.table:
        for row in sources:
            row["last_landed"] = short_time(row["last_landed"], obs.now)
        for row in current:
            row["since"] = short_time(row["since"], obs.now)
    title = f"sources at {obs.now:%Y-%m-%d %H:%M:%S} UTC"
    print_rows(sources, fmt, title=title, narrowing=SOURCES_NARROWING)
    if fmt is Format.table:
        if follower is not None:
            print_message(_follower_line(follower, obs.now))
        print_rows(
            current, fmt, title="firing alerts", columns=ALERT_COLUMNS, empty=NO_ALERT_FIRING
        )
        print_rows(_lake_rows(lake, obs.now), fmt, title="lake health", narrowing=LAKE_NARROWING)
        if read_only is not None:
            print_message(f"read-only: {literal(read_only)}")  # its hint on the next line


def _follower_line(row: dict[str, Any], now: Any) -> str:
    """The running follower in one line; failing, its last error and what to do."""
    who = f"processor: pid {row['pid']} on {literal(row['host'])}"
    success = short_time(row["last_success"], now) or "none since it started"
    if row["state"] == "running":
        return f"{who}, running; last good pass {success}"
    hint = f"\n  → {literal(row['hint'])}" if row["hint"] else ""
    return (
        f"[bold red]{who}, failing[/]: {row['failures']} passes in a row since "
        f"{short_time(row['failing_since'], now)} (last good pass {success}): "
        f"{literal(row['error'])}{hint}"
    )


def _lake_rows(lake: list[dict[str, Any]], now: Any) -> list[dict[str, Any]]:
    """Lake health for people: sizes in KiB/MiB, times short."""
    from advertisex.cli.output import human_bytes

    return [
        {
            "table": r["table"],
            "data_files": r["data_files"],
            "avg_file": human_bytes(r["avg_file_bytes"]),
            "size": human_bytes(r["bytes"]),
            "small_files": r["small_files"],
            "snapshots": r["snapshots"],
            "manifests": r["manifests"],
            "last_maintenance": short_time(r["last_maintenance"], now) or "never",
        }
        for r in lake
    ]
