"""The marts' first build's auctions and hourly impression counts: CPU of the NumPy kernels
against the engine's queries they replaced, on the curated rows of a lake.

The lake is the one ``ADVERTISEX_DATA_DIR`` names, processed without its marts (say
``bench/process.py``'s ``process_without_marts``, or ``ingest`` + ``process`` with
``ADVERTISEX_CORRELATION__UPDATE_MARTS=false``). A first build's rebuild runs once (its
marts' commit left out) to catch the kernels' inputs, then each kernel runs ``--repeat``
times; CPU is the process's (the engine's threads included), best and median.

    ADVERTISEX_DATA_DIR=/tmp/lake python bench/marts_kernels.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from _args import positive


def inputs() -> dict[str, Any]:
    """The tables the rebuild hands to ``auction_measures`` and ``shown_hourly``."""
    from advertisex.config import load_settings
    from advertisex.lake.tables import Lake
    from advertisex.marts import iceberg, local, maintain

    caught: dict[str, Any] = {}
    measures, shown = maintain.auction_measures, local.shown_hourly

    def catch_measures(bids: Any, impressions: Any, windows: Any) -> Any:
        caught.update(bids=bids, auction_impressions=impressions, windows=windows)
        return measures(bids, impressions, windows)

    def catch_shown(impressions: Any) -> Any:
        caught["shown_impressions"] = impressions
        return shown(impressions)

    maintain.auction_measures = catch_measures  # type: ignore[assignment]
    local.shown_hourly = catch_shown  # type: ignore[assignment]
    iceberg.IcebergMarts.replace = lambda self, changes, state: None  # type: ignore[method-assign]
    settings = load_settings()
    try:
        report = iceberg.update_marts(Lake(settings), settings)
    finally:
        maintain.auction_measures, local.shown_hourly = measures, shown
    assert report is not None and report.mode == "rebuild", "a lake without its marts"
    return caught


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=positive, default=7)
    args = parser.parse_args()
    from advertisex.kernels import rollup, sketch
    from advertisex.kernels.correlate import MATCH_BIDS_SQL
    from advertisex.util import engine

    got = inputs()
    bids, auctions, windows = got["bids"], got["auction_impressions"], got["windows"]
    shown = got["shown_impressions"]

    def engine_auctions() -> Any:
        query = f"WITH matched AS ({MATCH_BIDS_SQL}) {rollup._BID_SQL.format(source='matched')}"
        params = {"auction_us": windows.auction_us}
        rows = engine.run(query, params, bids=bids, impressions=auctions)
        return rollup._ordered(rows).cast(rollup.BID_MEASURES)

    def engine_shown() -> Any:
        hashed = shown.append_column("user_hash", sketch.user_hashes(shown.column("user_id")))
        counted = engine.run(rollup._SHOWN_SQL, impressions=hashed)
        users = sketch.from_lists(counted.column("user_hashes"))
        return counted.drop_columns(["user_hashes"]).append_column("users", users)

    runs: dict[str, Callable[[], Any]] = {
        "auctions, engine": engine_auctions,
        "auctions, NumPy": lambda: rollup.auction_measures(bids, auctions, windows),
        "shown_hourly, engine": engine_shown,
        "shown_hourly, NumPy": lambda: rollup.shown_hourly(shown),
    }
    assert runs["auctions, NumPy"]().equals(engine_auctions()), "the auctions' rows differ"
    print(f"{bids.num_rows:,} bids, {auctions.num_rows:,} and {shown.num_rows:,} impressions")
    for name, run in runs.items():
        run()  # warm
        cpu = []
        for _ in range(args.repeat):
            started = time.process_time()
            run()
            cpu.append(time.process_time() - started)
        print(f"  {name:22s} CPU best {min(cpu):.3f} s, median {statistics.median(cpu):.3f} s")


if __name__ == "__main__":
    main()
