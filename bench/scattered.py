"""Event times decades apart: what a batch of them costs `process` on a generated lake.

Prints, with the machine's load, the wall time of `advertisex process` for:

1. a generated day (``--events``), the lake's first batch;
2. two impressions, one at 1970-01-01T00:00:00Z (epoch 0, a producer's "no time") and one
   on the generated day: the dedupe lookup's horizons around each (was: every day between,
   53 s);
3. ``--scattered`` impressions a week apart since 1970: one day partition each, and the
   marts rebuilt rather than updated hour run by hour run (was: more than 13 minutes).

With ``--backfill-days D``, instead: ``--events`` generated over D days (an hour's file a
source, as a collector's backlog lands many segments), ingested and processed as one
batch, and the size of the curated tables' files (a day's file held its batch's whole
dictionary of segment names: 1.1 GB for 700,000 events over 730 days; the batch's
segments were matched quadratically: 264 s; a segment's round trip to a decoder worker
each, 55 s). Then ``--late`` clicks of it, landed again with new ids, evenly over the
clicks' time span, as one late batch: the marts' update touches that many hours apart
(a filter clause each given to pyiceberg, weighed against every data file: 60 over 200
days, 28 s).

    python bench/scattered.py [--events 20000] [--scattered 3000]
    python bench/scattered.py --backfill-days 730 --events 700000
    python bench/scattered.py --backfill-days 200 --events 200000 --late 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _args import positive

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advertisex.util.jsonutil import dumps_str, loads

CLI = [sys.executable, "-m", "advertisex.cli.app"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _run(folder: Path, *args: str) -> tuple[float, str]:
    """Seconds ``advertisex args`` took in ``folder``, and its output; fails loudly."""
    started = time.perf_counter()
    done = subprocess.run(
        [*CLI, *args], cwd=folder, capture_output=True, text=True, env={**os.environ}
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"advertisex {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def _land(folder: Path, name: str, template: dict, times: list[datetime]) -> None:
    """Impressions shaped like ``template``, one at each of ``times``, ingested."""
    drop = folder / name
    drop.mkdir()
    with open(drop / f"impressions-{name}.ndjson", "w") as out:
        for k, at in enumerate(times):
            record = {**template, "impression_id": f"imp-{name}-{k}"}
            record["timestamp"] = at.isoformat().replace("+00:00", "Z")
            out.write(dumps_str(record) + "\n")
    _run(folder, "ingest", str(drop))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=20_000)
    parser.add_argument("--scattered", type=positive, default=3_000)
    parser.add_argument("--backfill-days", type=positive, default=None)
    parser.add_argument("--late", type=positive, default=None, help="with --backfill-days")
    args = parser.parse_args()
    if args.late and not args.backfill_days:
        parser.error("--late goes with --backfill-days")
    print(f"load {os.getloadavg()[0]:.1f}")
    if args.backfill_days:
        backfill(args.events, args.backfill_days, args.late)
        return
    with tempfile.TemporaryDirectory(prefix="adx-scattered-") as tmp:
        folder = Path(tmp)
        _run(folder, "generate", "--out", "gen", "--events", str(args.events), "--seed", "3")
        _run(folder, "ingest", "gen")
        seconds, _ = _run(folder, "process")
        print(f"a generated day, {args.events:,} events: {seconds:.1f} s")
        first = next((folder / "gen" / "impressions").iterdir())
        template = loads(first.read_text().splitlines()[0])
        day = datetime.fromisoformat(template["timestamp"].replace("Z", "+00:00"))
        _land(folder, "epoch", template, [EPOCH, day])
        seconds, _ = _run(folder, "process")
        print(f"two impressions, of 1970-01-01 and {day:%Y-%m-%d}: {seconds:.1f} s")
        week = timedelta(days=7)
        _land(folder, "weekly", template, [EPOCH + k * week for k in range(args.scattered)])
        seconds, out = _run(folder, "process", "--format", "json")
        mode = loads(out)["marts"]
        print(
            f"{args.scattered:,} impressions a week apart since 1970: {seconds:.1f} s (marts: {mode})"
        )


def backfill(events: int, days: int, late: int | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="adx-backfill-") as tmp:
        folder = Path(tmp)
        generate = ["generate", "--out", "gen", "--events", str(events), "--seed", "5"]
        _run(folder, *generate, "--days", str(days), "--start", f"today-{days + 1}")
        segments = sum(1 for _ in (folder / "gen").glob("*/*.*"))
        _run(folder, "ingest", "gen")
        seconds, out = _run(folder, "process", "--format", "json")
        report = loads(out)
        print(
            f"{events:,} events over {days} days ({segments:,} files generated), one batch: "
            f"{seconds:.1f} s ({report['seconds'] - report['marts_seconds']:.1f} s before the marts)"
        )
        for table in ("impressions", "clicks", "conversions", "bid_requests"):
            files = list((folder / "advertisex-data").glob(f"warehouse/curated/{table}/data/*/*"))
            size = sum(f.stat().st_size for f in files)
            print(f"  curated.{table}: {len(files):,} files, {size / 2**20:,.1f} MiB")
        if late:
            _land_late_clicks(folder, late)
            seconds, out = _run(folder, "process", "--format", "json")
            report = loads(out)
            print(
                f"{late} late clicks over the {days} days, one batch: {seconds:.1f} s "
                f"(the marts' update, {report['marts']}: {report['marts_seconds']:.1f} s)"
            )


def _land_late_clicks(folder: Path, late: int) -> None:
    """``late`` of the generated clicks, evenly over their time, landed again as new (the
    conversions among them left out: each reaches back over its attribution windows)."""
    rows = []
    for path in sorted((folder / "gen" / "clicks").glob("*.csv")):
        header, *lines = path.read_text().splitlines()
        kind = header.split(",").index("event_type")
        rows += [line for line in lines if line.strip() and line.split(",")[kind] == "click"]
    step = max(1, len(rows) // late)
    picked = [rows[k * step].replace(",", "-late,", 1) for k in range(min(late, len(rows)))]
    drop = folder / "late.csv"
    drop.write_text(header + "\n" + "\n".join(picked) + "\n")
    _run(folder, "ingest", "--source", "clicks", str(drop))


if __name__ == "__main__":
    main()
