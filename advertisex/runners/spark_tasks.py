"""What Spark's Python workers run: the batch kernels over ``mapInArrow`` partitions.

Three stages, each a function from Arrow record batches to Arrow record batches that
Spark ships (with a small picklable job description) to its executors:

1. :func:`prepare` — per landing segment: read, frame, standardize, validate, enrich
   (``batch.standardize_source``, as the embedded runner does). It yields the segment's standardized
   rows once, as an Arrow IPC blob that stays on its executor (persisted, never
   shuffled), and one narrow *key row* (table, key, payload hash, event time, position)
   per candidate event.
2. :func:`dedupe` — per hash partition of the key rows (``repartition(table, key)``):
   every occurrence of a key, and its committed twin if any, is in one partition, so
   ``find_duplicates`` on the partition's rows in (segment, row) order gives exactly
   the embedded runner's verdict. Only the duplicates come back to the driver.
3. :func:`finish` — per partition of blobs: drop the duplicates, split off quarantine
   and invalid traffic, shape each table's rows (``batch.finish_source``, told the
   repeats by stage 2) and write them as Parquet data files, one per table and
   event day, into the table's location. The driver registers those files in one
   atomic catalog transaction with the batch's checkpoint.

:func:`read_committed` feeds stage 2 the committed keys of the dedupe horizon, read
straight from the tables' data files by the executors.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.config import Settings
from advertisex.dims.model import Dimensions
from advertisex.formats.bounded import DecodeLimits
from advertisex.formats.decode import frame_segment
from advertisex.kernels.dedupe import SEEN_COLUMNS, find_duplicates, key_column
from advertisex.kernels.ivt import IvtRules
from advertisex.kernels.standardize import Rules
from advertisex.lake.datafiles import write_data_files
from advertisex.landing.zone import Segment, open_landing
from advertisex.model.schemas import SOURCES
from advertisex.runners.batch import (
    candidates_mask,
    finish_source,
    rejected_mask,
    standardize_source,
)
from advertisex.util import storage
from advertisex.util.retry import retrying
from advertisex.util.spark_arrow import from_ipc, to_ipc

# Spark DDL of each stage's output and the Arrow schema the workers build it with.
PREPARED = (
    "kind string, segment int, source string, tbl string, event_key string, "
    "payload_hash string, event_time_us long, row_number long, records long, reason string, "
    "blob binary"
)
_PREPARED = pa.schema(
    [
        ("kind", pa.string()),  # rows | key | unreadable
        ("segment", pa.int32()),
        ("source", pa.string()),
        ("tbl", pa.string()),
        ("event_key", pa.string()),  # the dedupe key of the event (kind key)
        ("payload_hash", pa.string()),
        ("event_time_us", pa.int64()),  # event time, µs since the epoch
        ("row_number", pa.int64()),  # row number in the segment's standardized rows
        ("records", pa.int64()),  # records framed from the segment (kind rows)
        ("reason", pa.string()),  # why the segment is unreadable (kind unreadable)
        ("blob", pa.binary()),  # the segment's standardized rows, Arrow IPC (kind rows)
    ]
)
KEYS = "tbl string, event_key string, payload_hash string, segment int, row_number long"
_KEYS = pa.schema(
    [
        ("tbl", pa.string()),
        ("event_key", pa.string()),
        ("payload_hash", pa.string()),
        ("segment", pa.int32()),  # -1: a committed key
        ("row_number", pa.int64()),
    ]
)
DUPLICATES = "tbl string, segment int, row_number long, conflict boolean"
_DUPLICATES = pa.schema(
    [
        ("tbl", pa.string()),
        ("segment", pa.int32()),
        ("row_number", pa.int64()),
        ("conflict", pa.bool_()),
    ]
)
# What the finish stage did, one row per fact: a data file written (name: its path, count:
# its rows, newest_us: its newest event time), a count of the source's accounting (kind:
# the counter, tbl set for rows accepted into a table), a user flagged as invalid traffic or
# a field seen for the first time (name: the user id, the field name).
FINISHED = "kind string, source string, tbl string, name string, count long, newest_us long"
_FINISHED = pa.schema(
    [
        (
            "kind",
            pa.string(),
        ),  # file | accepted | records_in | quarantined | filtered | ivt_user | new_field
        ("source", pa.string()),
        ("tbl", pa.string()),
        ("name", pa.string()),
        ("count", pa.int64()),
        ("newest_us", pa.int64()),
    ]
)
COMMITTED = "tbl string, path string, low long, high long"


@dataclass(frozen=True)
class PrepareJob:
    settings: Settings
    rules: Rules
    dims: Dimensions | None


@dataclass(frozen=True)
class FinishJob:
    settings: Settings
    batch_id: str
    lineage: pa.Table
    ivt: IvtRules | None
    locations: dict[str, str]  # table → its location (where data files go)
    duplicates: object  # Broadcast of {(table, segment): int64 array of row numbers}


# ---------------------------------------------------------------- stage 1: prepare


def prepare(batches: Iterator[pa.RecordBatch], job: PrepareJob) -> Iterator[pa.RecordBatch]:
    """Landing segments (segment, source, name, size) → standardized blobs and key rows."""
    zone = open_landing(job.settings)
    limits = DecodeLimits.of(job.settings.processor)  # a hostile segment cannot stall the task
    for batch in batches:
        for item in batch.to_pylist():
            segment = Segment(item["source"], item["name"], item["size"])
            index = item["segment"]
            try:
                data = retrying(
                    functools.partial(zone.read, segment), what=f"reading {segment.name}"
                )
                frame = frame_segment(index, segment, data, limits)
            except Exception as error:  # unreadable: the driver moves it aside
                reason = f"{type(error).__name__}: {error}"
                yield _prepared(1, kind=["unreadable"], segment=[index], reason=[reason])
                continue
            rows = standardize_source(segment.source, frame, job.rules, job.dims)
            rows = rows.drop_columns(["payload"])  # only the embedded dedupe reads it
            rows = rows.append_column(
                "row_number", pa.array(np.arange(rows.num_rows, dtype=np.int64))
            )
            yield _prepared(
                1,
                kind=["rows"],
                segment=[index],
                source=[segment.source],
                records=[frame.num_rows],
                blob=[to_ipc(rows)],
            )
            rejected = rejected_mask(rows)
            for table_name in SOURCES[segment.source]:
                chosen = rows.filter(pa.array(candidates_mask(table_name, rows, rejected)))
                if chosen.num_rows:
                    yield _key_rows(table_name, index, chosen)


def _key_rows(table_name: str, index: int, rows: pa.Table) -> pa.RecordBatch:
    n = rows.num_rows
    return _prepared(
        n,
        kind=["key"] * n,
        segment=np.full(n, index, dtype=np.int32),
        tbl=[table_name] * n,
        event_key=key_column(table_name, rows),
        payload_hash=rows.column("payload_hash"),
        event_time_us=rows.column("event_time").cast(pa.int64()),
        row_number=rows.column("row_number"),
    )


def _prepared(length: int, **columns: object) -> pa.RecordBatch:
    """One output batch of :func:`prepare`; columns not given are null."""
    arrays = []
    for f in _PREPARED:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(length, f.type))
        elif isinstance(value, pa.ChunkedArray):
            arrays.append(value.combine_chunks().cast(f.type))
        elif isinstance(value, pa.Array):
            arrays.append(value.cast(f.type))
        else:
            arrays.append(pa.array(value, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=_PREPARED)


# ---------------------------------------------------------------- stage 2: dedupe


def dedupe(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Key rows of one hash partition (committed keys have segment -1) → the duplicates."""
    rows = pa.Table.from_batches(list(batches), schema=_KEYS)
    if rows.num_rows == 0:
        return
    for table_name in pc.unique(rows.column("tbl")).to_pylist():
        mine = rows.filter(pc.equal(rows.column("tbl"), table_name))
        committed = pc.less(mine.column("segment"), 0)
        batch = mine.filter(pc.invert(committed)).sort_by(
            [("segment", "ascending"), ("row_number", "ascending")]
        )
        seen = mine.filter(committed)
        found = find_duplicates(
            batch.column("event_key"),
            batch.column("payload_hash"),
            *(
                (seen.column("event_key"), seen.column("payload_hash"))
                if seen.num_rows
                else (None, None)
            ),
        )
        hit = pa.array(found.is_duplicate)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([table_name] * found.count, pa.string()),
                batch.column("segment").filter(hit).combine_chunks(),
                batch.column("row_number").filter(hit).combine_chunks(),
                pa.array(found.is_conflict[found.is_duplicate]),
            ],
            schema=_DUPLICATES,
        )


def read_committed(
    batches: Iterator[pa.RecordBatch], settings: Settings
) -> Iterator[pa.RecordBatch]:
    """Data files of committed rows (table, path, event-time bounds in µs) → their keys."""
    import pyarrow.parquet as pq

    for batch in batches:
        for item in batch.to_pylist():
            table_name = item["tbl"]
            filesystem, path = storage.resolve(item["path"], settings.scale)
            columns = [*SEEN_COLUMNS[table_name], "event_time"]
            data = pq.read_table(path, columns=columns, filesystem=filesystem)
            when = data.column("event_time").cast(pa.int64())
            inside = pc.and_(pc.greater_equal(when, item["low"]), pc.less_equal(when, item["high"]))
            data = data.filter(inside)
            n = data.num_rows
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([table_name] * n, pa.string()),
                    pa.chunked_array(key_column(table_name, data)).combine_chunks(),
                    data.column("payload_hash").combine_chunks(),
                    pa.array(np.full(n, -1, dtype=np.int32)),
                    pa.array(np.full(n, -1, dtype=np.int64)),
                ],
                schema=_KEYS,
            )


# ---------------------------------------------------------------- stage 3: finish


def finish(batches: Iterator[pa.RecordBatch], job: FinishJob) -> Iterator[pa.RecordBatch]:
    """Standardized blobs (segment, source, blob) → Parquet data files and their accounting."""
    by_source: dict[str, list[tuple[int, pa.Table]]] = {}
    for batch in batches:
        for segment, source, blob in zip(
            batch.column("segment").to_pylist(),
            batch.column("source").to_pylist(),
            batch.column("blob").to_pylist(),
            strict=True,
        ):
            by_source.setdefault(source, []).append((segment, from_ipc(blob)))
    for source, parts in by_source.items():
        parts.sort(key=lambda p: p[0])
        yield from _finish_source(source, parts, job)


def _finish_source(
    source: str, parts: list[tuple[int, pa.Table]], job: FinishJob
) -> Iterator[pa.RecordBatch]:
    rows = pa.concat_tables([t for _, t in parts], promote_options="permissive")
    offsets = np.cumsum([0] + [t.num_rows for _, t in parts])
    duplicates = job.duplicates.value  # type: ignore[attr-defined]

    def repeats(table_name: str, candidate: np.ndarray) -> tuple[np.ndarray, int, int]:
        # Found by stage 2 across the whole batch; conflicts are counted on the driver.
        repeated = np.zeros(rows.num_rows, dtype=bool)
        for (segment, _), offset in zip(parts, offsets, strict=False):
            found = duplicates.get((table_name, segment))
            if found is not None:
                repeated[offset + found] = True
        return repeated, int(repeated.sum()), 0

    appends, account = finish_source(source, rows, job.lineage, job.batch_id, repeats, job.ivt)
    out: list[dict[str, object]] = []
    for table_name, data in appends.items():
        if table_name in SOURCES[source]:
            out.append(_row("accepted", source, table_name, "", data.num_rows))
        location = job.locations[table_name]
        written_files = write_data_files(
            table_name, data, location, job.batch_id, job.settings.scale
        )
        for path, written, newest in written_files:
            out.append(_row("file", source, table_name, path, written, newest))
    counts = {
        "records_in": account.records_in,
        "quarantined": account.quarantined,
        "filtered": account.filtered,
    }
    out += [_row(counter, source, "", "", n) for counter, n in counts.items()]
    out += [_row("ivt_user", source, "", user, 0) for user in sorted(account.ivt_users)]
    out += [_row("new_field", source, "", name, 0) for name in sorted(account.new_fields)]
    yield pa.RecordBatch.from_pylist(out, schema=_FINISHED)


def _row(
    kind: str, source: str, table: str, name: str, count: int, newest_us: int | None = None
) -> dict[str, object]:
    return {
        "kind": kind,
        "source": source,
        "tbl": table,
        "name": name,
        "count": count,
        "newest_us": newest_us,
    }
