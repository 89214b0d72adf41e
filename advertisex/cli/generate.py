"""``advertisex generate``: write synthetic ad traffic with ground truth (see advertisex.synth)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from advertisex.cli.output import Format, literal, print_json, print_message, print_rows
from advertisex.errors import UserInputError

if TYPE_CHECKING:
    from advertisex.synth.config import FaultConfig


def register(app: typer.Typer) -> None:
    """Add the ``generate`` command to ``app``."""
    app.command("generate")(generate_command)


def generate_command(
    out: str | None = typer.Option(
        None, "--out", help="Directory to write into (created if missing). Not with --to."
    ),
    events: int | None = typer.Option(
        None, "--events", help="Total records across all four kinds. Not with --to."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Same seed and options, same bytes."),
    start: str | None = typer.Option(
        None,
        "--start",
        help="First UTC day: YYYY-MM-DD, today, yesterday or today-N. Default: yesterday.",
    ),
    days: int = typer.Option(1, "--days", help="Number of days of traffic."),
    duplicate_rate: float = typer.Option(0.0, help="Fraction re-sent byte-identical."),
    malformed_rate: float = typer.Option(0.0, help="Fraction of records a validator rejects."),
    late_rate: float = typer.Option(0.0, help="Fraction landing 1-6 hours late."),
    bot_rate: float = typer.Option(0.0, help="Fraction of impressions from crawlers."),
    conflict_rate: float = typer.Option(0.0, help="Fraction re-using an id, other payload."),
    demo_faults: bool = typer.Option(
        False,
        "--demo-faults",
        help="Realistic sprinkle: 0.5% dup, 0.1% bad, 2% late, 1% bots, and a campaign "
        "launched after the dims export (dims/campaigns-new.csv).",
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="table, or json (truth.json)."),
    to: str | None = typer.Option(
        None,
        "--to",
        help="Stream live traffic to a collector at this URL instead of writing files.",
    ),
    rate: float = typer.Option(10_000, "--rate", help="With --to: events per second."),
    duration: float = typer.Option(60, "--duration", help="With --to: seconds to stream."),
    via: str = typer.Option(
        "http",
        "--via",
        help="With --to: http (native endpoints) or firehose (boto3 PutRecordBatch).",
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="ADVERTISEX_API_KEY", help="With --to: the collector API key."
    ),
) -> None:
    """Write synthetic impressions, clicks/conversions and bid requests plus truth.json.

    With --to URL, stream them to a running collector in real time instead.
    """
    if to is not None:
        from advertisex.cli.serve import stream_to

        # Live traffic is stamped now: these shape written files only, and were ignored.
        for_files = {
            "--out": out is not None, "--events": events is not None,
            "--start": start is not None, "--days": days != 1, "--demo-faults": demo_faults,
            "--duplicate-rate": bool(duplicate_rate), "--malformed-rate": bool(malformed_rate),
            "--late-rate": bool(late_rate), "--bot-rate": bool(bot_rate),
            "--conflict-rate": bool(conflict_rate),
        }  # fmt: skip
        if given := [name for name, set_ in for_files.items() if set_]:
            raise UserInputError(
                f"{', '.join(given)} shape generated files, not --to's live traffic, which "
                "is stamped now",
                hint="drop them to stream now; for other days write files (advertisex "
                "generate --out DIR --events N --seed S --start D --days K) and send them "
                "with advertisex ingest DIR (or POST them to the collector)",
            )

        stream_to(to, rate=rate, duration=duration, via=via, api_key=api_key, seed=seed, fmt=fmt)
        return
    if out is None or events is None or seed is None:
        raise UserInputError(
            "--out, --events and --seed are required to write files",
            hint="e.g. advertisex generate --out data/raw --events 100000 --seed 7, "
            "or stream with --to http://127.0.0.1:8080",
        )
    if not out.strip():  # Path("") is the current folder: an unset shell variable's "$DIR"
        raise UserInputError(
            "--out is empty", hint="name the folder to write into, e.g. --out data/raw"
        )
    from advertisex.synth import FaultConfig
    from advertisex.synth.generator import check_arguments
    from advertisex.util.timeutil import parse_date, utcnow

    check_arguments(events, seed, days)  # before the progress bar takes the terminal

    try:
        first_day = parse_date(start) if start else utcnow().date() - timedelta(days=1)
    except ValueError as error:
        raise UserInputError(
            str(error), hint="pass --start like 2026-11-20 or yesterday"
        ) from error
    if first_day > date.max - timedelta(days=days):
        raise UserInputError(
            f"{days} days from {first_day} run past the calendar's last day (9999-12-31)",
            hint="pass an earlier --start or fewer --days",
        )
    faults = (
        FaultConfig.demo(new_campaign=True)
        if demo_faults
        else FaultConfig(
            duplicate_rate=duplicate_rate,
            malformed_rate=malformed_rate,
            late_rate=late_rate,
            bot_rate=bot_rate,
            conflict_rate=conflict_rate,
        )
    )
    folder = Path(out)
    truth = _run_with_progress(folder, events, seed, first_day, days, faults)
    if fmt is Format.json:
        print_json(truth)
        return
    rows = [
        {
            "source": name,
            "files": len(summary["files"]),
            "records": summary["records"],
            "malformed": summary["malformed"],
            "duplicates": summary["duplicates"],
            "conflicts": summary["conflicts"],
        }
        for name, summary in truth["sources"].items()
    ]
    print_rows(rows, fmt, title=f"Generated into {folder}")
    print_message(f"Ground truth: {literal(folder / 'truth.json')}")


def _run_with_progress(
    out: Path, events: int, seed: int, start: date, days: int, faults: FaultConfig
) -> dict[str, Any]:
    """Run the generator behind a progress bar on stderr (stdout stays parseable)."""
    from advertisex.cli.progress import progress_bar
    from advertisex.synth import generate
    from advertisex.util.nopandas import refused as refused_pandas

    # Nothing the generator does needs pandas, which Arrow imports on its first array
    # (the bid files' table) only to ask whether it was handed a pandas object: ≈ 0.25 s
    # of CPU, as in the demo, which refuses it too.
    with refused_pandas(), progress_bar(True, "generate", unit="steps") as bar:
        return generate(
            out, events=events, seed=seed, start=start, days=days, faults=faults,
            progress=(lambda done, total: bar("write", done, total)) if bar else None,
        )  # fmt: skip
