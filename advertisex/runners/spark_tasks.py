"""What Spark's Python workers run: the batch kernels over ``mapInArrow`` partitions.

Three stages, each a function from Arrow record batches to Arrow record batches that
Spark ships (with a small picklable job description) to its executors:

1. :func:`prepare` — per task, its share of the batch's landing segments: read, frame,
   standardize, validate, enrich (``batch.standardize_source``, as the embedded runner
   does). It writes each segment's standardized rows once, as an Arrow IPC file in the
   batch's scratch folder (never through the JVM), and its candidates' keys (key,
   payload hash, position) as files too, one per table and key bucket; it yields what
   it wrote: the records framed per segment, each key file with its event-time bounds.
2. :func:`dedupe` — per task, the key files of its share of the buckets: every
   occurrence of a key, and its committed twin if any, is in one bucket, so
   ``find_duplicates`` on the bucket's rows in (segment, row) order gives exactly
   the embedded runner's verdict (a key committed with a version-1 payload hash is
   compared by that version's hash, as there: ``fingerprint.align``, the payloads of
   those few candidates standardized again from their segments). Only the duplicates
   come back to the driver.
3. :func:`finish` — per task, its share of a wave's segments, read back from the
   scratch folder: drop the duplicates, split off quarantine and invalid traffic,
   shape each table's rows (``batch.finish_source``, told the repeats by stage 2) and
   write them as Parquet data files, one per table and event day, into the table's
   location. The driver registers those files in one atomic catalog transaction with
   the batch's checkpoint.

:func:`read_committed` feeds stage 2 the committed keys of the dedupe horizon, read
straight from the tables' data files by the executors and bucketed the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.config import Settings
from advertisex.dims.model import Dimensions
from advertisex.formats.bounded import DecodeLimits
from advertisex.formats.decode import damage_of, frame_segment
from advertisex.kernels.dedupe import SEEN_COLUMNS, find_duplicates, key_column
from advertisex.kernels.fingerprint import align
from advertisex.kernels.ivt import IvtRules
from advertisex.kernels.split import rejected_mask
from advertisex.kernels.standardize import Rules
from advertisex.lake.datafiles import write_data_files
from advertisex.landing.zone import LandingZone, Segment, open_landing
from advertisex.model.schemas import SOURCES
from advertisex.runners.batch import (
    candidates_mask,
    finish_source,
    payloads_of,
    standardize_source,
)
from advertisex.runners.committed import horizon_spans, span_index
from advertisex.util import storage
from advertisex.util.buckets import split as split_by_bucket
from advertisex.util.retry import retrying
from advertisex.util.spark_arrow import read_scratch, write_scratch

# Spark DDL of stage 1's output and the Arrow schema the workers build it with.
PREPARED = (
    "kind string, segment int, source string, records long, reason string, tbl string, "
    "bucket int, keys long, low_us long, high_us long, path string"
)
_PREPARED = pa.schema(
    [
        ("kind", pa.string()),  # rows | keys | unreadable
        ("segment", pa.int32()),  # the segment's index in the batch (rows, unreadable)
        ("source", pa.string()),
        ("records", pa.int64()),  # records framed from the segment (rows)
        ("reason", pa.string()),  # why the segment is unreadable (unreadable)
        ("tbl", pa.string()),  # the table whose dedupe keys the file holds (keys)
        ("bucket", pa.int32()),  # the keys' bucket (keys)
        ("keys", pa.int64()),  # how many keys the file holds (keys)
        ("low_us", pa.int64()),  # event-time bounds of the task's keys of tbl, µs (keys)
        ("high_us", pa.int64()),  # (null for committed keys)
        ("path", pa.string()),  # the key file, in the batch's scratch folder (keys)
    ]
)
# A dedupe key file's rows: a candidate of the batch (its segment and row number in that
# segment's standardized rows), or a committed row (segment -1).
_KEYS = pa.schema(
    [
        ("event_key", pa.string()),
        ("payload_hash", pa.string()),
        ("segment", pa.int32()),
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
    segments: tuple[Segment, ...]  # the batch's segments, by index
    slices: tuple[tuple[int, ...], ...]  # segment indices of each task (input: its number)
    buckets: int  # dedupe key buckets
    scratch: str  # the batch's scratch folder (standardized rows, one file per segment)


@dataclass(frozen=True)
class DedupeJob:
    settings: Settings
    files: tuple[tuple[tuple[str, str], ...], ...]  # each task's key files: (table, path)
    prepared: PrepareJob  # stage 1's job: a segment's payloads are standardized again from it


@dataclass(frozen=True)
class FinishJob:
    settings: Settings
    batch_id: str
    lineage: pa.Table
    ivt: IvtRules | None
    locations: dict[str, str]  # table → its location (where data files go)
    duplicates: object  # Broadcast of {(table, segment): int64 array of row numbers}
    segments: tuple[Segment, ...]  # the batch's segments, by index
    slices: tuple[tuple[int, ...], ...]  # segment indices of each task (input: its number)
    scratch: str  # where stage 1 left each segment's standardized rows


def scratch_file(scratch: str, index: int) -> str:
    """Where stage 1 leaves the standardized rows of the batch's segment ``index``."""
    return storage.join(scratch, f"segment-{index}.arrow")


def key_file(scratch: str, table_name: str, bucket: int, producer: str) -> str:
    """Where ``producer`` (a stage-1 task, a reader of committed keys) leaves its keys of
    ``table_name`` in ``bucket``."""
    return storage.join(scratch, "keys", f"{table_name}-{bucket}-{producer}.arrow")


# ---------------------------------------------------------------- stage 1: prepare


def prepare(batches: Iterator[pa.RecordBatch], job: PrepareJob) -> Iterator[pa.RecordBatch]:
    """Task numbers → their segments' standardized rows and dedupe key files (in the
    scratch folder), and what they hold."""
    zone = open_landing(job.settings)
    limits = DecodeLimits.of(job.settings.processor)  # a hostile segment cannot stall the task
    for batch in batches:
        for task in batch.column(0).to_pylist():
            keys: dict[str, list[pa.Table]] = {}
            for index in job.slices[task]:
                yield from _prepare_segment(index, job, zone, limits, keys)
            for table_name, parts in keys.items():
                yield from _key_files(table_name, pa.concat_tables(parts), job, f"t{task}")


def _prepare_segment(
    index: int,
    job: PrepareJob,
    zone: LandingZone,
    limits: DecodeLimits,
    keys: dict[str, list[pa.Table]],
) -> Iterator[pa.RecordBatch]:
    """One segment's standardized rows to a scratch file; its candidates' keys added to
    ``keys``."""
    segment = job.segments[index]
    try:
        frame = _frame(index, job, zone, limits)
    except Exception as error:  # unreadable: the driver moves it aside
        reason = f"{type(error).__name__}: {error}"
        yield _prepared(kind="unreadable", segment=index, reason=reason)
        return
    # Only a key committed with a version-1 hash needs the payload: stage 2 standardizes
    # the segment again then (_payloads), rather than every batch writing it here.
    rows = standardize_source(segment.source, frame, job.rules, job.dims)
    rows = rows.append_column("row_number", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    write_scratch(rows, scratch_file(job.scratch, index), job.settings.scale)
    # A frame that ends in a damage record names it (the driver's report lists the file).
    yield _prepared(
        kind="rows",
        segment=index,
        source=segment.source,
        records=frame.num_rows,
        reason=damage_of(frame),
    )
    rejected = rejected_mask(rows.column("reasons"))
    for table_name in SOURCES[segment.source]:
        chosen = rows.filter(pa.array(candidates_mask(table_name, rows, rejected)))
        if chosen.num_rows:
            keys.setdefault(table_name, []).append(
                pa.table(
                    {
                        "event_key": key_column(table_name, chosen),
                        "payload_hash": chosen.column("payload_hash"),
                        "segment": pa.array(np.full(chosen.num_rows, index, dtype=np.int32)),
                        "row_number": chosen.column("row_number"),
                        "event_time": chosen.column("event_time"),
                    }
                )
            )


def _frame(index: int, job: PrepareJob, zone: LandingZone, limits: DecodeLimits) -> pa.Table:
    """The framed records of the batch's segment ``index``."""
    segment = job.segments[index]
    data = retrying(functools.partial(zone.read, segment), what=f"reading {segment.name}")
    return frame_segment(index, segment, data, limits)


def _key_files(
    table_name: str, keys: pa.Table, job: PrepareJob, producer: str
) -> Iterator[pa.RecordBatch]:
    """A task's candidate keys of ``table_name``, bucketed by key, with their time bounds:
    apart for each cluster of event times whose dedupe horizons meet
    (:func:`~advertisex.runners.committed.horizon_spans`), so that an event of 1970 among
    today's does not make the driver read the committed keys of every day between."""
    times = keys.column("event_time")
    spans = horizon_spans(times, timedelta(days=job.settings.processor.dedupe_horizon_days))
    clusters = [keys]
    if len(spans) > 1:  # a key of no time (validation rejects it first) in the first
        clusters = _split(keys, np.maximum(span_index(times, spans), 0), len(spans))
    for number, cluster in enumerate(clusters):
        bounds = pc.min_max(cluster.column("event_time").cast(pa.int64()))
        yield from _bucket_files(
            table_name,
            cluster,
            job.settings,
            job.buckets,
            job.scratch,
            producer if number == 0 else f"{producer}s{number}",
            low_us=bounds["min"].as_py(),
            high_us=bounds["max"].as_py(),
        )


def _split(rows: pa.Table, labels: np.ndarray, count: int) -> list[pa.Table]:
    """``rows`` by their label, 0 to ``count`` - 1."""
    return [rows.filter(pa.array(labels == label)) for label in range(count)]


def _bucket_files(
    table_name: str,
    keys: pa.Table,
    settings: Settings,
    buckets: int,
    scratch: str,
    producer: str,
    **bounds: object,
) -> Iterator[pa.RecordBatch]:
    """``keys`` cut into key files by bucket; one :data:`PREPARED` row per file."""
    for bucket, part in split_by_bucket(_as_keys(keys), "event_key", buckets):
        path = key_file(scratch, table_name, bucket, producer)
        write_scratch(part, path, settings.scale)
        yield _prepared(
            kind="keys", tbl=table_name, bucket=bucket, keys=part.num_rows, path=path, **bounds
        )


def _as_keys(rows: pa.Table) -> pa.Table:
    return pa.table([rows.column(f.name).cast(f.type) for f in _KEYS], schema=_KEYS)


def _prepared(**values: object) -> pa.RecordBatch:
    """One row of :func:`prepare`'s output; columns not given are null."""
    return pa.RecordBatch.from_arrays(
        [pa.array([values.get(f.name)], f.type) for f in _PREPARED], schema=_PREPARED
    )


# ---------------------------------------------------------------- stage 2: dedupe


def dedupe(batches: Iterator[pa.RecordBatch], job: DedupeJob) -> Iterator[pa.RecordBatch]:
    """Task numbers → the duplicates among their key files (every file of some buckets;
    committed keys have segment -1)."""
    for batch in batches:
        for task in batch.column(0).to_pylist():
            parts: dict[str, list[pa.Table]] = {}
            for table_name, path in job.files[task]:
                parts.setdefault(table_name, []).append(read_scratch(path, job.settings.scale))
            for table_name, tables in parts.items():
                yield _duplicates_among(table_name, pa.concat_tables(tables), job.prepared)


def _duplicates_among(table_name: str, mine: pa.Table, job: PrepareJob) -> pa.RecordBatch:
    """The repeats among the keys of ``table_name`` (all of some buckets): the first
    candidate by (segment, row) is kept, unless a committed key came before it. A key
    committed with a version-1 payload hash is compared by that version's hash
    (``fingerprint.align``, as the embedded dedupe does)."""
    committed = pc.less(mine.column("segment"), 0)
    batch = mine.filter(pc.invert(committed)).sort_by(
        [("segment", "ascending"), ("row_number", "ascending")]
    )
    seen = mine.filter(committed)
    seen_keys, seen_hashes = (
        (seen.column("event_key"), seen.column("payload_hash")) if seen.num_rows else (None, None)
    )
    hashes = align(
        batch.column("event_key"),
        batch.column("payload_hash"),
        functools.partial(_payloads, batch, job),
        seen_keys,
        seen_hashes,
    )
    found = find_duplicates(batch.column("event_key"), hashes, seen_keys, seen_hashes)
    hit = pa.array(found.is_duplicate)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([table_name] * found.count, pa.string()),
            batch.column("segment").filter(hit).combine_chunks(),
            batch.column("row_number").filter(hit).combine_chunks(),
            pa.array(found.is_conflict[found.is_duplicate]),
        ],
        schema=_DUPLICATES,
    )


def _payloads(candidates: pa.Table, job: PrepareJob, positions: np.ndarray) -> pa.Array:
    """The payload texts of the ``candidates`` at ``positions`` (rows of a key file: their
    segment and row number), those rows of their segments standardized again
    (``batch.payloads_of``): stage 1 kept none, and only a key committed with a version-1
    hash asks."""
    zone = open_landing(job.settings)
    limits = DecodeLimits.of(job.settings.processor)
    segments = candidates.column("segment").to_numpy()[positions]
    rows = candidates.column("row_number").to_numpy()[positions]
    at, texts = [], []
    for index in np.unique(segments).tolist():
        mine = np.flatnonzero(segments == index)
        source = job.segments[index].source
        payloads = payloads_of(source, _frame(index, job, zone, limits), job.rules, job.dims)
        at.append(mine)
        texts.append(payloads(rows[mine]).combine_chunks())
    return pa.concat_arrays(texts).take(pa.array(np.argsort(np.concatenate(at))))


def read_committed(
    batches: Iterator[pa.RecordBatch], settings: Settings, buckets: int, scratch: str
) -> Iterator[pa.RecordBatch]:
    """Data files of committed rows (table, path, event-time bounds in µs) → their keys,
    as key files in the scratch folder, bucketed as :func:`prepare` buckets the
    candidates (one :data:`PREPARED` row per file)."""
    import uuid

    import pyarrow.parquet as pq

    keys: dict[str, list[pa.Table]] = {}
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
            keys.setdefault(table_name, []).append(
                pa.table(
                    {
                        "event_key": key_column(table_name, data),
                        "payload_hash": data.column("payload_hash"),
                        "segment": pa.array(np.full(n, -1, dtype=np.int32)),
                        "row_number": pa.array(np.full(n, -1, dtype=np.int64)),
                    }
                )
            )
    producer = f"c{uuid.uuid4().hex[:12]}"  # tasks of this job do not know each other
    for table_name, parts in keys.items():
        keys_of_table = pa.concat_tables(parts)
        yield from _bucket_files(table_name, keys_of_table, settings, buckets, scratch, producer)


# ---------------------------------------------------------------- stage 3: finish


def finish(batches: Iterator[pa.RecordBatch], job: FinishJob) -> Iterator[pa.RecordBatch]:
    """Task numbers → their segments' standardized rows (from the scratch folder) as
    Parquet data files, and their accounting."""
    for batch in batches:
        for task in batch.column(0).to_pylist():
            by_source: dict[str, list[tuple[int, pa.Table]]] = {}
            for index in job.slices[task]:
                rows = read_scratch(scratch_file(job.scratch, index), job.settings.scale)
                by_source.setdefault(job.segments[index].source, []).append((index, rows))
            for source, parts in by_source.items():
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
        for file in written_files:  # the driver reads each footer when it commits the file
            out.append(_row("file", source, table_name, file.url, file.rows, file.newest))
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
