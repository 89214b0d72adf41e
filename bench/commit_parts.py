"""The batch commit of ``process`` alone, in its two parts: Parquet encoding and Iceberg.

``process`` runs once over the ``bench/process.py`` dataset (update_marts off) and every
batch's appends — the tables the runner hands ``Lake.write_files`` — are kept as Arrow
files in ``bench/out/commit-parts-<events>``. Then, in this one process:

* ``--rounds`` times into a fresh lake: each batch's ``write_files`` (Parquet, a thread
  per table) and ``commit_files`` (``add_files``, manifests, metadata, the catalog),
  their CPU seconds (user + system, every thread: ``getrusage``);
* with ``--columns``, each column of the two big tables encoded alone (thread CPU) with
  and without a dictionary and without statistics: where the encoding time goes.

CPU, not wall clock: the figures stay comparable on a shared machine.

    python bench/commit_parts.py [--events 1000000] [--rounds 3] [--columns]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _args import positive
from process import _dataset

HERE = Path(__file__).resolve().parent


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def capture(events: int) -> Path:
    """The appends of every batch of one ``process`` run (made once)."""
    import pyarrow as pa

    import advertisex
    from advertisex.lake.tables import Lake
    from advertisex.util import jsonutil

    folder = HERE / "out" / f"commit-parts-{events}"
    if (folder / "batches.json").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data = _dataset(events)
    batches: list[list[str]] = []
    write_files = Lake.write_files

    def keep(self: Lake, appends: Any, prefix: str) -> Any:
        for name, table in appends.items():
            path = str(folder / f"{len(batches)}-{name}.arrow")
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
        batches.append(list(appends))
        return write_files(self, appends, prefix)

    Lake.write_files = keep  # type: ignore[method-assign]
    lake_dir = Path(tempfile.mkdtemp(prefix="commit-parts-"))
    try:
        ax = advertisex.open(data_dir=lake_dir, correlation={"update_marts": False})
        ax.ingest([str(data / s) for s in ("impressions", "clicks", "bids")])
        ax.process()
    finally:
        Lake.write_files = write_files  # type: ignore[method-assign]
        shutil.rmtree(lake_dir, ignore_errors=True)
    (folder / "batches.json").write_bytes(jsonutil.dumps(batches))
    return folder


def _load(folder: Path) -> list[dict[str, Any]]:
    import pyarrow as pa

    from advertisex.util import jsonutil

    names = jsonutil.loads((folder / "batches.json").read_bytes())
    return [
        {name: pa.ipc.open_file(str(folder / f"{n}-{name}.arrow")).read_all() for name in batch}
        for n, batch in enumerate(names)
    ]


def rounds(batches: list[dict[str, Any]], count: int) -> None:
    import advertisex

    for number in range(count):
        data = Path(tempfile.mkdtemp(prefix="commit-parts-"))
        try:
            ax = advertisex.open(data_dir=data, correlation={"update_marts": False})
            ax.create_data_dir()
            for name in {name for batch in batches for name in batch}:
                ax.lake.table(name)  # made before the clock starts, as a lake in use has them
            encode = register = 0.0
            started = time.perf_counter()
            for n, appends in enumerate(batches):
                before = _cpu()
                written = ax.lake.write_files(appends, f"b{n}")
                between = _cpu()
                urls = {name: [f.url for f in files] for name, files in written.items()}
                ax.lake.commit_files(urls, [], {})
                encode += between - before
                register += _cpu() - between
            print(
                f"round {number}: {len(batches)} commits, CPU {encode + register:.2f} s: "
                f"write_files {encode:.2f} s, commit_files {register:.2f} s "
                f"(wall {time.perf_counter() - started:.2f} s, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        finally:
            shutil.rmtree(data, ignore_errors=True)


def columns(batches: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from advertisex.lake.datafiles import _NEARLY_UNIQUE

    def encode(table: pa.Table, **options: Any) -> tuple[float, int]:
        sink = pa.BufferOutputStream()
        started = time.thread_time()
        writer = pq.ParquetWriter(sink, table.schema, compression="zstd", **options)
        writer.write_table(table)
        writer.close()
        return time.thread_time() - started, sink.getvalue().size

    for name in ("curated.impressions", "curated.bid_requests"):
        tables = [batch[name] for batch in batches if name in batch]
        for column in tables[0].column_names:
            rows = [t.select([column]) for t in tables]
            plain = column in _NEARLY_UNIQUE
            figures = []
            for options in (
                {"use_dictionary": not plain},
                {"use_dictionary": plain},
                {"use_dictionary": not plain, "write_statistics": False},
            ):
                timed = [encode(t, **options) for t in rows]
                figures.append((sum(s for s, _ in timed), sum(b for _, b in timed) / 1e6))
            (now, now_mb), (other, other_mb), (bare, _) = figures
            print(
                f"{name}.{column}: {'plain' if plain else 'dictionary'} {now:.3f} s "
                f"{now_mb:.1f} MB | {'dictionary' if plain else 'plain'} {other:.3f} s "
                f"{other_mb:.1f} MB | statistics {now - bare:+.3f} s",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=positive, default=1_000_000)
    parser.add_argument("--rounds", type=positive, default=3)
    parser.add_argument("--columns", action="store_true", help="each column's encoding apart")
    args = parser.parse_args()
    batches = _load(capture(args.events))
    rounds(batches, args.rounds)
    if args.columns:
        columns(batches)


if __name__ == "__main__":
    main()
