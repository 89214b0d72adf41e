"""Mart maintenance in this process, a key bucket at a time: memory bounded by the bucket.

Every step of :class:`advertisex.marts.maintain.Kernels` is partitionable by a key (the
rules only compare events that share it). A step whose inputs hold at most
:data:`BUCKET_ROWS` rows (planned from the data files' record counts) runs on them whole,
as it always did. A bigger one — the first build over a backlog, say — is cut by a hash of
its key into buckets of about that many rows: the curated rows are read a record batch at
a time and each batch's rows appended to their bucket's Arrow IPC file in a temporary
directory; then each bucket is read back and the step runs on it alone. It is the Spark
runner's shuffle (``advertisex.marts.spark``), on the local disk, running the same part
functions:

* ``correlate`` by ``user_id``: its outputs (a row a click, a row a conversion) are kept;
* ``bids`` by ``auction_id`` (impressions without one never win a bid and are not
  written): its outputs are the matched bids summed per rollup key, a few rows a bucket;
* ``hourly`` needs no buckets at all: its rows merge (sums, sketch unions:
  ``kernels.rollup.merge_hourly``), so the impressions are counted a part of about
  :data:`BUCKET_ROWS` rows at a time, then everything else once, and the partial rows
  merged — the view-through touches' impressions picked out of each part on the way.
"""

from __future__ import annotations

import functools
import math
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels.correlate import AUCTION_COLUMNS, MATCH_COLUMNS
from advertisex.kernels.rollup import ROLLUP_COLUMNS, merge_hourly
from advertisex.marts.maintain import (
    MatchingRules,
    Rows,
    bids_part,
    correlate_part,
    hourly_part,
    ordered,
)
from advertisex.marts.store import Chunks, Curated, Slice
from advertisex.model.schemas import TABLES
from advertisex.util.buckets import regrouped, split
from advertisex.util.isolate import release_memory

if TYPE_CHECKING:
    from datetime import datetime

    from advertisex.kernels.windows import Windows

# Rows a step holds at once (all its inputs together): about 1 M curated rows keep the
# processor of a first build under ≈ 1 GiB whatever the backlog (docs/benchmarks.md, issue
# 14 phase 9).
BUCKET_ROWS = 1_000_000
MAX_BUCKETS = 256  # an open file per bucket and input while the rows are written out
FINER = 4  # buckets written per bucket planned

Part = Callable[[dict[str, pa.Table]], dict[str, pa.Table]]


STEPS = ("correlate", "bids", "hourly")  # the order :class:`Held` lists its steps in


@dataclass
class HeldStep:
    """One step run: the buckets planned (1: run whole) and the most rows one bucket, or
    one part of the impressions, held."""

    step: str
    buckets: int
    largest: int = 0

    def bucket(self, rows: int) -> None:
        self.largest = max(self.largest, rows)


@dataclass
class Held:
    """What the steps held, for tests and benchmarks, per step run: in :data:`STEPS` order
    (two steps may run at once), runs of one step in the order they started."""

    runs: list[HeldStep] = field(default_factory=list)

    def step(self, step: str, buckets: int, rows: int = 0) -> HeldStep:
        held = HeldStep(step, buckets, rows)
        self.runs.append(held)  # one list append: atomic under the GIL
        return held

    @property
    def buckets(self) -> list[int]:
        return [run.buckets for run in self._ordered()]

    @property
    def largest(self) -> list[int]:
        return [run.largest for run in self._ordered()]

    def _ordered(self) -> list[HeldStep]:
        return sorted(self.runs, key=lambda run: STEPS.index(run.step))


class Room:
    """Steps run at once while each holds its inputs whole (each within ``bucket_rows``); a
    step cut into buckets runs alone, so memory stays bounded by one bucket."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._whole = 0  # steps running whole now
        self._alone = False

    @contextmanager
    def whole(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._alone)
            self._whole += 1
        try:
            yield
        finally:
            with self._changed:
                self._whole -= 1
                self._changed.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and not self._whole)
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()


class LocalKernels:
    """The kernels in this process, on rows read through ``curated``; a step over more than
    ``bucket_rows`` rows runs a bucket at a time (the module docstring). Whole reads, each
    within ``bucket_rows``, are made once and kept for the next step. ``correlate`` and
    ``bids`` may run at once on two threads (:class:`Room`)."""

    concurrent = True

    def __init__(
        self,
        curated: Curated,
        bucket_rows: int = BUCKET_ROWS,
        spill_dir: Path | None = None,
    ) -> None:
        self.curated = curated
        self.bucket_rows = bucket_rows
        self.spill_dir = spill_dir
        self.held = Held()
        self.room = Room()
        self._read: dict[Rows, Future[pa.Table]] = {}  # whole reads, made or under way
        self._reading = threading.Lock()

    def rows(self, request: Rows, chunks: Chunks | None = None) -> pa.Table:
        """``request``'s rows whole, read once (``chunks``: the read planned already); a
        step asking for rows another is reading waits for that read."""
        with self._reading:
            read = self._read.get(request)
            mine = read is None
            if read is None:
                read = self._read[request] = Future()
        if mine:
            try:
                read.set_result((chunks or self.chunks(request)).whole())
            except BaseException as error:
                read.set_exception(error)
        return read.result()

    def _kept(self, request: Rows) -> bool:
        """Whether ``request``'s rows are read whole, or being read."""
        with self._reading:
            return request in self._read

    def chunks(self, request: Rows) -> Chunks:
        return self.curated.chunks(request.table, request.where, request.columns)

    def correlate(
        self,
        impressions: Rows,
        clicks: Rows,
        conversions: Rows,
        recheck: Slice,
        rules: MatchingRules,
    ) -> tuple[pa.Table, pa.Table]:
        part = functools.partial(
            correlate_part, recheck=recheck, windows=rules.windows, campaigns=rules.campaigns
        )
        reads = {"impressions": impressions, "clicks": clicks, "conversions": conversions}
        out = self.run("correlate", reads, "user_id", part, only={"impressions": MATCH_COLUMNS})
        return out["matched"], out["attributed"]

    def bids(self, bids: Rows, auctions: Rows, windows: Windows) -> pa.Table:
        part = functools.partial(bids_part, windows=windows)
        reads = {"bids": bids, "impressions": auctions}
        return self.run(
            "bids",
            reads,
            "auction_id",
            part,
            keyless=("impressions",),
            only={"impressions": AUCTION_COLUMNS},
        )["bids"]

    def hourly(
        self,
        impressions: Rows,
        counted: Slice,
        given: dict[str, pa.Table],
        hours: list[datetime] | None,
    ) -> pa.Table:
        chunks = None if self._kept(impressions) else self.chunks(impressions)
        if chunks is None or chunks.rows <= self.bucket_rows:
            with self.room.whole():
                whole = self.rows(impressions, chunks)
                self.held.step("hourly", 1, whole.num_rows)
                return hourly_part({"impressions": whole, **given}, counted, hours)["hourly"]
        with self.room.alone():  # the impressions a part at a time
            chunks = self.chunks(_only(impressions, ROLLUP_COLUMNS))
            touched = _view_touches(given["conversions"])
            nothing = {name: table.slice(0, 0) for name, table in given.items()}
            merged: list[pa.Table] = []
            touches: list[pa.Table] = []
            held = self.held.step("hourly", 0)
            for rows in regrouped(chunks.parts(), self.bucket_rows):
                held.buckets += 1
                held.bucket(rows.num_rows)
                counts = hourly_part({"impressions": rows, **nothing}, counted, hours)["hourly"]
                merged = [merge_hourly([*merged, counts])]
                ids = rows.column("impression_id")
                touches.append(rows.filter(pc.fill_null(pc.is_in(ids, value_set=touched), False)))
                del rows, ids, counts
                release_memory()
            empty = _schema(_only(impressions, ROLLUP_COLUMNS)).empty_table()
            answered = hourly_part(
                {"impressions": empty, "touch_impressions": _concat(touches, empty), **given},
                counted,
                hours,
            )["hourly"]
            return merge_hourly([*merged, answered])

    def run(
        self,
        step: str,
        reads: dict[str, Rows],
        key: str,
        part: Part,
        keyless: tuple[str, ...] = (),
        only: dict[str, tuple[str, ...]] | None = None,
    ) -> dict[str, pa.Table]:
        """``part`` (the step named ``step``) over all ``reads``, a bucket of ``key`` at a
        time when they hold more than ``bucket_rows`` rows. Rows of the inputs named in
        ``keyless`` without a key are left out (the step's rules never match them); inputs
        named in ``only`` are written out with those of their columns only (those the part
        reads)."""
        kept = {tag: self.rows(r) for tag, r in reads.items() if self._kept(r)}
        chunks = {tag: self.chunks(r) for tag, r in reads.items() if tag not in kept}
        planned = sum(c.rows for c in chunks.values()) + sum(t.num_rows for t in kept.values())
        if planned <= self.bucket_rows:  # whole, read once for every step that asks
            with self.room.whole():
                self.held.step(step, 1, planned)
                return part(
                    {
                        tag: kept[tag] if tag in kept else self.rows(r, chunks[tag])
                        for tag, r in reads.items()
                    }
                )
        with self.room.alone():  # a bucket at a time
            narrowed = {tag: _only(r, (only or {}).get(tag, r.columns)) for tag, r in reads.items()}
            # Finer buckets than needed, taken a few at a time up to ``bucket_rows``: the
            # planned count is an upper bound, and a heavy user makes buckets uneven.
            fine = min(MAX_BUCKETS, FINER * math.ceil(planned / self.bucket_rows))
            schemas = {tag: _schema(request) for tag, request in narrowed.items()}
            outputs: dict[str, list[pa.Table]] = {}
            with Spill(fine, self.spill_dir) as spill:
                for tag, schema in schemas.items():
                    if tag in kept:
                        parts = iter([kept[tag]])
                    elif narrowed[tag] == reads[tag]:
                        parts = chunks[tag].parts()
                    else:
                        parts = self.chunks(narrowed[tag]).parts()
                    for rows in parts:
                        if tag in keyless:
                            rows = rows.filter(pc.is_valid(rows.column(key)))
                        spill.add(tag, rows.select(schema.names), key)
                runs = _runs(spill.rows, self.bucket_rows) or [[]]  # no rows: the part on none
                held = self.held.step(step, len(runs))
                for run in runs:
                    tables = spill.take(run, schemas)
                    held.bucket(sum(t.num_rows for t in tables.values()))
                    for tag, out in part(tables).items():
                        outputs.setdefault(tag, []).append(out)
                    del tables
                    release_memory()
            return {tag: ordered(tag, parts) for tag, parts in outputs.items()}


class Spill:
    """Rows of several inputs cut into ``buckets`` by a hash of a key, on disk: one Arrow
    IPC stream file per (input, bucket) in a temporary directory, removed on exit."""

    def __init__(self, buckets: int, directory: Path | None = None) -> None:
        self.buckets = buckets
        self._dir = tempfile.TemporaryDirectory(prefix="advertisex-marts-", dir=directory)
        self._writers: dict[tuple[str, int], pa.ipc.RecordBatchStreamWriter] = {}
        self.rows = np.zeros(buckets, dtype=np.int64)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()
        self._dir.cleanup()

    def _path(self, tag: str, bucket: int) -> Path:
        return Path(self._dir.name) / f"{tag}-{bucket}.arrow"

    def add(self, tag: str, rows: pa.Table, key: str) -> None:
        """Append ``rows`` to the files of their buckets."""
        for bucket, part in split(rows, key, self.buckets):
            writer = self._writers.get((tag, bucket))
            if writer is None:
                writer = pa.ipc.new_stream(str(self._path(tag, bucket)), part.schema)
                self._writers[(tag, bucket)] = writer
            writer.write_table(part)
            self.rows[bucket] += part.num_rows

    def take(self, buckets: list[int], schemas: dict[str, pa.Schema]) -> dict[str, pa.Table]:
        """Every input's rows of ``buckets`` (read into memory; their files are removed)."""
        self._close()
        tables = {}
        for tag, schema in schemas.items():
            parts = [schema.empty_table()]
            for bucket in buckets:
                path = self._path(tag, bucket)
                if path.exists():
                    with pa.OSFile(str(path)) as source:
                        parts.append(pa.ipc.open_stream(source).read_all().cast(schema))
                    path.unlink()
            tables[tag] = pa.concat_tables(parts)
        return tables

    def _close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def _runs(rows: np.ndarray, most: int) -> list[list[int]]:
    """Consecutive buckets grouped into runs of at most ``most`` rows (or one bucket)."""
    runs: list[list[int]] = []
    held = 0
    for bucket, count in enumerate(rows.tolist()):
        if not count:
            continue
        if runs and held + count <= most:
            runs[-1].append(bucket)
            held += count
        else:
            runs.append([bucket])
            held = count
    return runs


def _only(request: Rows, columns: tuple[str, ...]) -> Rows:
    """``request`` for those of its columns in ``columns``."""
    return Rows(request.table, request.where, tuple(c for c in request.columns if c in columns))


def _schema(request: Rows) -> pa.Schema:
    return pa.schema([TABLES[request.table].schema.field(c) for c in request.columns])


def _concat(parts: list[pa.Table], empty: pa.Table) -> pa.Table:
    return pa.concat_tables([empty, *parts]) if parts else empty


def _view_touches(conversions: pa.Table) -> pa.Array:
    """The impression ids that are touches of view-through conversions."""
    viewed = conversions.filter(pc.equal(conversions.column("attribution"), "view"))
    paths = pc.list_flatten(viewed.column("touch_path"))
    return pc.unique(pc.struct_field(paths, "touch_id"))
