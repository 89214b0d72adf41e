"""The Parquet writer's CPU for a batch's curated tables: the delta encodings against plain.

Processes ``bench/process.py``'s data set into a new lake (marts off; or reads ``--lake``),
reads back its impressions, bids and clicks, and writes each table into memory with the
data files' own settings (``lake.datafiles``: zstd, dictionaries, statistics), once with
the delta encodings of its nearly unique columns and once with every column plain,
``--rounds`` times alternated; prints the medians of the writer's CPU and the bytes.

    python bench/parquet.py [--events 2000000] [--rounds 7] [--lake DIR]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import positive
from _checkout import use_this_checkout
from process import process_without_marts

TABLES = {
    "curated.impressions": "impressions",
    "curated.bid_requests": "bid_requests",
    "curated.clicks": "clicks",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=positive, default=2_000_000)
    parser.add_argument("--rounds", type=positive, default=7)
    parser.add_argument("--lake", type=Path, help="a data directory processed already")
    args = parser.parse_args()
    use_this_checkout()
    work = None
    lake = args.lake
    if lake is None:
        work = Path(tempfile.mkdtemp(prefix="adx-parquet-"))
        lake = work / "data"
        process_without_marts(args.events, lake)
    try:
        _compare(lake, args.rounds)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _compare(lake: Path, rounds: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from advertisex.lake.datafiles import _dictionary_paths, _encodings, _statistics_paths
    from advertisex.model.schemas import TABLES as SPECS

    tables = []
    for name, folder in TABLES.items():
        files = sorted((lake / "warehouse" / "curated" / folder / "data").rglob("*.parquet"))
        spec = SPECS[name]
        rows = pa.concat_tables(pq.read_table(f) for f in files).combine_chunks()
        tables.append((spec, rows.cast(spec.written_schema())))
    print(", ".join(f"{spec.name}: {rows.num_rows:,} rows" for spec, rows in tables))
    seconds: dict[str, list[float]] = {"delta": [], "plain": []}
    sizes: dict[str, int] = {}
    for round_ in range(rounds):
        for label in ("delta", "plain") if round_ % 2 == 0 else ("plain", "delta"):
            spent = size = 0
            for spec, rows in tables:
                options = {
                    "compression": "zstd",
                    "use_dictionary": _dictionary_paths(rows.schema),
                    "write_statistics": _statistics_paths(spec, rows.schema),
                    "store_schema": False,
                }
                if label == "delta":
                    options["column_encoding"] = _encodings(rows.schema)
                sink = io.BytesIO()
                started = time.thread_time()
                pq.write_table(rows, sink, **options)
                spent += time.thread_time() - started
                size += sink.tell()
            seconds[label].append(spent)
            sizes[label] = size
    for label, values in seconds.items():
        print(
            f"{label:<6} the writer's CPU median {statistics.median(values):.3f} s "
            f"(min {min(values):.3f}), {sizes[label] / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
