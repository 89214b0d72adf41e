"""CPU per record of each step a piece of a batch goes through, in this process, one thread.

The same kernels as ``advertisex process`` (frame, standardize, domain checks, enrichment,
dedupe, quarantine, invalid traffic, accepted rows, Parquet files), on the segments of
``bench/process.py``'s data set, each step timed with the process's CPU clock: on a busy
machine that says more than wall time, and the split says where a batch's time goes
without the runner's threads, decoder workers and commit around it.

    python bench/kernels.py [--source impressions|bids|clicks] [--segments 12]

The first segment warms the imports and caches up and is not counted.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import positive
from process import _dataset

from advertisex.formats.decode import decoder_for
from advertisex.kernels.ivt import IvtRules
from advertisex.kernels.standardize import Rules
from advertisex.lake.datafiles import write_data_files
from advertisex.runners import batch

SPENT: dict[str, float] = collections.defaultdict(float)


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[name] += time.process_time() - start

    return run


def _write(table_name: str, table: pa.Table, location: str) -> None:
    list(write_data_files(table_name, table, location, "bench", None))


class _Segment:
    def __init__(self, source: str, name: str) -> None:
        self.source, self.name = source, name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--source", default="impressions", choices=["impressions", "bids", "clicks"]
    )
    parser.add_argument("--segments", type=positive, default=12)
    parser.add_argument("--events", type=positive, default=2_000_000)
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    files = sorted(glob.glob(str(_dataset(args.events) / args.source / "*")))[: args.segments + 1]
    # Each step of batch.standardize_source / finish_source, timed where it is looked up.
    for name in ("check_domains", "fill_missing_raw", "enrich", "quarantine_rows"):
        setattr(batch, name, timed(name, getattr(batch, name)))
    batch.filter_invalid_traffic = timed("invalid traffic", batch.filter_invalid_traffic)  # type: ignore[assignment]
    batch.accepted_rows = timed("accepted rows (sort, gather)", batch.accepted_rows)  # type: ignore[assignment]
    for source, function in list(batch.STANDARDIZERS.items()):
        batch.STANDARDIZERS[source] = timed(f"standardize {source}", function)
    rules = Rules(datetime(2026, 12, 1, tzinfo=UTC))
    dedupe = batch.BatchDedupe(lambda *_: None)
    out = tempfile.mkdtemp(prefix="adx-kernels-")
    records = 0
    for index, path in enumerate(files):
        if index == 1:  # the first segment warmed up imports and caches
            SPENT.clear()
            records = 0
        data = Path(path).read_bytes()
        frame = timed("frame", decoder_for(_Segment(args.source, path)))(data)
        frame = frame.append_column(
            "segment", pa.array(np.full(frame.num_rows, index, dtype=np.int32))
        )
        records += frame.num_rows
        rows = batch.standardize_source(args.source, frame, rules, None)
        payloads = batch.payloads_of(args.source, frame, rules, None)
        found = timed("dedupe", dedupe.verdicts)(args.source, rows, payloads)
        lineage = pa.table(
            {
                "segment": pa.array([index], pa.int32()),
                "source_file": [path],
                "ingest_time": pa.array([datetime.now(UTC)], pa.timestamp("us", "UTC")),
            }
        )
        appends, _ = batch.finish_source(
            args.source, rows, lineage, "bench", lambda name, _, f=found: f[name], IvtRules()
        )
        for name, table in appends.items():
            timed("Parquet files", _write)(name, table, out)
    shutil.rmtree(out, ignore_errors=True)  # the files were written to be timed, not kept
    total = sum(SPENT.values())
    print(
        f"{args.source}: {records:,} records in {len(files) - 1} segments, "
        f"{total:.2f} s of CPU = {1e6 * total / records:.2f} µs per record"
    )
    for name, seconds in sorted(SPENT.items(), key=lambda item: -item[1]):
        print(
            f"  {name:30s} {seconds:6.2f} s  {1e6 * seconds / records:5.2f} µs/record"
            f"  {100 * seconds / total:5.1f} %"
        )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
