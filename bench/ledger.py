"""A run's start and a replay's selection on an old lake, with a long ledger behind them.

Makes a lake whose ledger holds ``--marks`` done marks of segments retention has already
deleted (ten months of them, five segments a batch) and one landing segment of today,
then times what a run reads at its start: the marks of the segments the landing zone
still holds (``Lake.done_in``), beside reading every mark as runs did before
(``done_segments()``); and what ``replay --from D --to D`` reads to choose its batches
(one day's marks, then its batches' by their index, the first time made then), beside
reading every mark as replays did before. Then ``maintain``'s folding of those marks (a row a
landing day: ``Lake.fold_retired_marks``): its time, the room the ledger takes before and
after (pages in use), and the same reads again.

    python bench/ledger.py [--marks 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from _args import positive
from _checkout import use_this_checkout

LINE = b'{"timestamp":"2026-12-05T10:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--marks", type=positive, default=1_000_000)
    args = parser.parse_args()
    use_this_checkout()
    import advertisex

    work = Path(tempfile.mkdtemp(prefix="adx-ledger-"))
    try:
        ax = advertisex.open(data_dir=work / "data")
        ax.landing.write_segment("impressions", LINE, fsync=False)
        ax.process()
        n = args.marks
        rows = (
            (
                f"impressions/2026-{1 + i * 10 // n:02d}-01/{i % 24:02d}/seg-{i:09d}.ndjson",
                "impressions",
                f"b{i // 5:09d}",
                10,
                100,
                "2026-01-01T00:00:00+00:00",
            )
            for i in range(n)
        )
        with sqlite3.connect(work / "data" / "catalog.db") as con:
            con.executemany("INSERT INTO advertisex_segments VALUES (?, ?, ?, ?, ?, ?)", rows)
        for label, read in (
            ("every mark (runs before 2026-12-05)", ax.lake.done_segments),
            ("the marks the landing zone holds", lambda: ax.lake.done_in(ax.landing)),
        ):
            wall, cpu = time.perf_counter(), time.process_time()
            names = read()
            print(
                f"{label}: {len(names):,} names, {time.perf_counter() - wall:.3f} s "
                f"(CPU {time.process_time() - cpu:.3f} s)"
            )
        from datetime import date

        from advertisex.runners.replay import select_batches

        day = date(2026, 5, 1)

        def every_mark() -> dict[str, list[str]]:
            by_batch: dict[str, list[str]] = {}
            for segment, mark in ax.lake.segment_marks().items():
                by_batch.setdefault(mark.batch_id, []).append(segment)
            return {
                b: s for b, s in by_batch.items() if any(n.split("/")[1] == f"{day}" for n in s)
            }

        def read_all(folded: str) -> None:
            for label, choose in (
                (f"replay of a day, by ranges{folded}", lambda: select_batches(ax.lake, day, day)),
                (f"the marks the landing zone holds{folded}", lambda: ax.lake.done_in(ax.landing)),
            ):
                wall, cpu = time.perf_counter(), time.process_time()
                found = choose()
                print(
                    f"{label}: {len(found):,} found, {time.perf_counter() - wall:.3f} s "
                    f"(CPU {time.process_time() - cpu:.3f} s)"
                )

        for label, choose in (
            ("replay of a day, every mark read (replays before 2026-12-05)", every_mark),
            (
                "replay of a day, by ranges (first: the index made)",
                lambda: select_batches(ax.lake, day, day),
            ),
            ("replay of a day, by ranges (again)", lambda: select_batches(ax.lake, day, day)),
        ):
            wall, cpu = time.perf_counter(), time.process_time()
            chosen = choose()
            print(
                f"{label}: {len(chosen):,} batches, {time.perf_counter() - wall:.3f} s "
                f"(CPU {time.process_time() - cpu:.3f} s)"
            )

        def in_use() -> int:
            with sqlite3.connect(work / "data" / "catalog.db") as con:
                pages, free, size = (
                    con.execute(f"PRAGMA {p}").fetchone()[0]
                    for p in ("page_count", "freelist_count", "page_size")
                )
            return int((pages - free) * size)

        before = in_use()
        wall, cpu = time.perf_counter(), time.process_time()
        folded = ax.lake.fold_retired_marks(ax.landing, date.today())
        print(
            f"maintain's fold: {folded:,} marks, {time.perf_counter() - wall:.3f} s "
            f"(CPU {time.process_time() - cpu:.3f} s); the catalog database's pages in use "
            f"{before / 1e6:.1f} MB → {in_use() / 1e6:.1f} MB (freed pages take the next marks)"
        )
        read_all(", the days folded")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
