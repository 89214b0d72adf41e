"""Spark runner vs. embedded runner on generated data with faults: equal, row for row?

    python bench/spark_equal.py [--events 40000] [--days 2] [--seed 5] [--batches 3]

Generates the events with the demo faults (duplicates, malformed records, late arrivals,
bots, a campaign missing from the dimensions), loads the dimensions, ingests once and
copies the landing zone, then processes one copy with the embedded runner and the other
on Spark ``local[2]`` in about ``--batches`` batches each (the later ones dedupe against
committed keys), marts built after. Prints, for the accounts and for every table, equal
or the first rows each side has alone; exits 1 on any difference. A search for
differences at sizes the test suite does not run (``tests/spark/test_spark_runner.py``
is the fast check of the same thing).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from _args import positive

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.table_snapshots


def _differences(name: str, want: list[Any], got: list[Any]) -> bool:
    print(f"{name:<32} {len(want):>8,} {len(got):>8,}  {'equal' if want == got else 'DIFFERENT'}")
    if want == got:
        return False
    mine, theirs = {repr(r) for r in want}, {repr(r) for r in got}
    for row in sorted(mine - theirs)[:3]:
        print("   embedded only:", row[:400])
    for row in sorted(theirs - mine)[:3]:
        print("   Spark only:   ", row[:400])
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=positive, default=40_000)
    parser.add_argument("--days", type=positive, default=2)
    parser.add_argument("--seed", type=positive, default=5)
    parser.add_argument("--batches", type=positive, default=3)
    args = parser.parse_args()

    import advertisex
    from advertisex import dims
    from advertisex.runners.embedded import EmbeddedRunner
    from advertisex.runners.spark import SparkRunner, spark_session
    from advertisex.synth.config import FaultConfig
    from advertisex.synth.generator import generate
    from tests.table_snapshots import CURATED, MARTS, snapshot

    root = Path(tempfile.mkdtemp(prefix="adx-spark-equal-"))
    start = date(2026, 11, 10)
    generate(
        root / "input", events=args.events, seed=args.seed, start=start, days=args.days,
        faults=FaultConfig.demo(),
    )  # fmt: skip
    first = advertisex.open(data_dir=root / "embedded")
    first.ingest([str(root / "input" / s) for s in ("impressions", "clicks", "bids")])
    shutil.copytree(root / "embedded" / "landing", root / "spark" / "landing")
    batch_bytes = sum(s.size for s in first.landing.segments()) // args.batches + 1
    now = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(args.days + 1)
    runs = {}
    for name in ("embedded", "spark"):
        ax = advertisex.open(data_dir=root / name, processor={"batch_max_bytes": batch_bytes})
        for path in sorted((root / "input" / "dims").glob("*.csv")):
            dims.load_file(ax.lake, path, effective_from=datetime(2026, 1, 1, tzinfo=UTC))
        runs[name] = ax
    embedded, on_spark = runs["embedded"], runs["spark"]
    want = EmbeddedRunner(embedded.settings, embedded.lake, embedded.landing).process(now=now)
    session = spark_session(on_spark.settings, "local[2]")
    try:
        runner = SparkRunner(on_spark.settings, on_spark.lake, on_spark.landing, session=session)
        got = runner.process(now=now)
        print(f"{args.events:,} events, {len(want.batches)} batches, data in {root}")
        different = want.batches != got.batches
        for source in sorted(want.accounts):
            different |= _differences(
                f"account {source}", [want.accounts[source]], [got.accounts.get(source)]
            )
        tables = [*CURATED, "ops.batches", *MARTS]
        expected, actual = snapshot(embedded, tables), snapshot(on_spark, tables)
        for name in tables:
            different |= _differences(name, expected[name], actual[name])
    finally:
        session.stop()
    sys.exit(1 if different else 0)


if __name__ == "__main__":
    main()
