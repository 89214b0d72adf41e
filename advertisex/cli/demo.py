"""``advertisex demo``: a realistic day of traffic, end to end, checked against ground truth."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

import typer

from advertisex.cli.common import FormatOption, open_platform, progress_bar
from advertisex.cli.output import Format, print_json, print_message, print_rows, table_rows


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    events: int = typer.Option(1_000_000, help="How many events to generate."),
    seed: int = typer.Option(42, help="Generator seed (same seed, same data)."),
    fresh: bool = typer.Option(False, help="Delete the demo's data first and start over."),
    fmt: Format = FormatOption,
) -> None:
    """Generate a day of traffic, ingest it, process it, report, and check it against truth."""
    from advertisex import synth
    from advertisex.util import jsonutil
    from advertisex.util.timeutil import utcnow

    ax = open_platform(create=True)
    data_dir = ax.data_location()
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    source_dir = data_dir / "demo-input"
    human = fmt is Format.table
    started = time.perf_counter()
    timings: dict[str, float] = {}

    truth_file = source_dir / "truth.json"
    truth = jsonutil.loads(truth_file.read_bytes()) if truth_file.exists() else None
    if truth is None or truth.get("seed") != seed or truth.get("events") != events:
        shutil.rmtree(source_dir, ignore_errors=True)
        t = time.perf_counter()
        with progress_bar(human, "generate") as progress:
            truth = synth.generate(
                source_dir,
                events=events,
                seed=seed,
                start=(utcnow() - timedelta(days=1)).date(),
                days=1,
                faults=synth.FaultConfig.demo(),
                progress=(lambda done, total: progress("write", done, total)) if progress else None,
            )
        timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    with progress_bar(human, "ingest") as progress:
        ingested = ax.ingest(
            [str(source_dir / s) for s in ("impressions", "clicks", "bids")], None, progress
        )
    timings["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    with progress_bar(human, "process") as progress:
        report = ax.process(progress)
    timings["process"] = time.perf_counter() - t
    campaigns = ax.report_campaigns()
    timings["total"] = time.perf_counter() - started

    check = _check_against_truth(ax, truth)
    if not human:
        print_json(
            {
                "timings_s": {k: round(v, 2) for k, v in timings.items()},
                "landed": sum(r.status == "landed" for r in ingested),
                "truth_check": check,
                "data_dir": str(data_dir),
            }
        )
        return
    from advertisex.cli.pipeline import print_accounting

    print_rows(
        table_rows(campaigns)[:15],
        fmt,
        title="campaigns by day (first 15 rows)",
        columns=campaigns.column_names,
    )
    print_accounting(report, fmt)
    print_rows(check, fmt, title="curated tables against the generator's truth.json")
    ok = all(row["match"] for row in check)
    print_message(
        (
            "[bold green]every table matches truth.json[/]"
            if ok
            else "[bold red]MISMATCH against truth.json[/]"
        )
        + "  ·  "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    )
    print_message(_next_steps(data_dir, Path(source_dir), truth["start"]))
    console = ax.settings.console
    print_message(
        f"See it in a browser: run [bold]advertisex console[/] and open "
        f"[bold]http://{console.host}:{console.port}/[/] (or `advertisex up`: the collector's port)"
    )
    if not ok:
        raise typer.Exit(1)


def _check_against_truth(ax: object, truth: dict) -> list[dict]:
    rows = []
    for table, expected in truth["tables"].items():
        name = f"curated.{table}"
        got = ax.query(f"select count(*) as n from {name}").column("n")[0].as_py()  # type: ignore[attr-defined]
        rows.append(
            {
                "table": name,
                "expected": expected["unique_human"],
                "actual": got,
                "match": got == expected["unique_human"],
            }
        )
    bots = sum(t["bots"] for t in truth["tables"].values())
    got = ax.query("select count(*) as n from curated.filtered").column("n")[0].as_py()  # type: ignore[attr-defined]
    rows.append(
        {"table": "curated.filtered", "expected": bots, "actual": got, "match": got == bots}
    )
    got = ax.query("select count(*) as n from curated.quarantine").column("n")[0].as_py()  # type: ignore[attr-defined]
    rows.append(
        {
            "table": "curated.quarantine",
            "expected": truth["quarantine"],
            "actual": got,
            "match": got == truth["quarantine"],
        }
    )
    return rows


def _next_steps(data_dir: Path, source_dir: Path, day: str) -> str:
    return f"""
Data is under [bold]{data_dir}[/] (landing zone, Iceberg warehouse, SQLite catalog);
the generated input files are in {source_dir}. Try:
  advertisex query "select device_type, count(*) from curated.impressions group by all"
  advertisex query "select reasons, raw from curated.quarantine limit 5"
  advertisex query "select * from ops.batches" --format json
  advertisex report campaigns --from {day} --format csv
  advertisex ingest {source_dir}/impressions   # again: a no-op, same bytes
"""
