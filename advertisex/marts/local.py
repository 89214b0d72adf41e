"""Mart maintenance in this process, a key bucket at a time: memory bounded by the bucket.

Every step of :class:`advertisex.marts.maintain.Kernels` is partitionable by a key (the
rules only compare events that share it). A step whose inputs hold at most
:data:`WHOLE_BUCKETS` times :data:`BUCKET_ROWS` rows (planned from the data files' record
counts) runs on them whole, as it always did. A bigger one — the first build over a
backlog, say — is cut by a hash of its key into buckets: the curated rows are read up
to a run's rows (below) at a time and their rows appended to their bucket's Arrow IPC file
in a folder of the lake's spill directory (``<data_dir>/spill``: the lake's disk, not a
temporary folder that may live in memory; a killed build's folder is removed by the next);
then the buckets are read back a *run* of about half a bucket's rows at a time and the
step runs on each run alone, two runs at once on two threads
(:class:`Room`: what is held at once stays within one :data:`BUCKET_ROWS`, and both cores
work). It is the Spark runner's shuffle (``advertisex.marts.spark``), on the local disk,
running the same part functions:

* ``correlate`` by ``user_id``: its outputs (a row a click, a row a conversion) are kept;
* ``bids`` by ``auction_id`` (impressions without one never win a bid and are not
  written): its outputs are the matched bids summed per rollup key, a few rows a bucket;
* ``hourly`` needs no buckets at all: its rows merge (sums, sketch unions:
  ``kernels.rollup.merge_hourly``), so the impressions are counted a part of about half
  :data:`BUCKET_ROWS` rows at a time (two parts at once), then everything else once, and
  the partial rows merged — the view-through touches' impressions picked out of each part
  on the way. Whole, a rebuild counts them (:meth:`LocalKernels.shown`) while the auctions
  are matched, and the rollup takes those counts.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels.correlate import AUCTION_COLUMNS, MATCH_COLUMNS
from advertisex.kernels.rollup import ROLLUP_COLUMNS, merge_hourly, shown_hourly
from advertisex.marts.maintain import (
    MatchingRules,
    Rows,
    bids_part,
    correlate_part,
    hourly_part,
    ordered,
)
from advertisex.marts.store import Chunks, Curated, Slice, storage_errors
from advertisex.util.buckets import regrouped, split
from advertisex.util.isolate import release_memory
from advertisex.util.spill import PREFIX, ClaimedFolder, place, sweep

if TYPE_CHECKING:
    from datetime import datetime

    from advertisex.kernels.windows import Windows

# Rows a bucketed step's runs hold at once (all its inputs together, two runs of half):
# about 1 M curated rows keep the processor of a first build under ≈ 1 GiB whatever the
# backlog (docs/benchmarks.md, issue 14 phase 9).
BUCKET_ROWS = 1_000_000
# A step over at most this many times ``bucket_rows`` rows runs whole: it holds more than a
# bucketed one, but skips writing every row out and reading it back, and runs beside the
# other whole steps. Two of them at once stay within ≈ 1.3 GiB (the 2 M set's first build,
# whole: 1.0 GiB), and a backlog past them is bucketed.
WHOLE_BUCKETS = 2
MAX_BUCKETS = 256  # an open file per bucket and input while the rows are written out
FINER = 4  # buckets written per bucket planned
# Counts of the impressions' parts a thread keeps before it merges them (with what it
# merged before): each part's rows are ≈ 8 MB of a 10 M backlog's rollup.
MERGE_PARTS = 4
SPILL_PREFIX = PREFIX + "marts-"  # a spill's folder

Part = Callable[[dict[str, pa.Table]], dict[str, pa.Table]]
T = TypeVar("T")
R = TypeVar("R")


STEPS = ("correlate", "bids", "hourly")  # the order :class:`Held` lists its steps in


@dataclass
class HeldStep:
    """One step run: the buckets planned (1: run whole) and the most rows one bucket, or
    one part of the impressions, held."""

    step: str
    buckets: int
    largest: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bucket(self, rows: int, counted: bool = False) -> None:
        """A run of ``rows`` rows held (``counted``: one more bucket, as the impressions'
        parts are counted when they are read); runs of a step may go on two threads."""
        with self._lock:
            self.largest = max(self.largest, rows)
            self.buckets += counted


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
    """Where the steps run. Steps that hold their inputs whole (each within
    :data:`WHOLE_BUCKETS` times ``bucket_rows``) run at once, as the rebuild's attribution
    and auctions do. A step cut into buckets runs them in *runs* of at most half of
    ``bucket_rows`` rows, and no more than :data:`RUNS` runs are held at once — two of one
    step, or one each of two steps — so memory stays bounded by one ``bucket_rows`` while
    both cores have a run to work on (one run at a time left the second core idle through
    a first build over a backlog). Whole steps and bucketed steps do not run beside each
    other."""

    RUNS = 2

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._whole = 0  # steps running whole now
        self._bucketed = 0  # steps running in buckets now
        self._runs = threading.BoundedSemaphore(self.RUNS)

    @contextmanager
    def whole(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._bucketed)
            self._whole += 1
        try:
            yield
        finally:
            with self._changed:
                self._whole -= 1
                self._changed.notify_all()

    @contextmanager
    def bucketed(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._whole)
            self._bucketed += 1
        try:
            yield
        finally:
            with self._changed:
                self._bucketed -= 1
                self._changed.notify_all()

    def runs(self, items: Iterator[T], work: Callable[[T], R]) -> list[R]:
        """``work`` on each of ``items`` (runs of a bucketed step), at most :data:`RUNS` at
        once across the room, on two threads; the results in the items' order. An item
        is taken from ``items`` only once a run may be held (taking one may read its rows),
        and its run ends when ``work`` returns (the memory it freed handed back)."""

        def run(item: T) -> R:
            try:
                return work(item)
            finally:
                release_memory()
                self._runs.release()

        futures: list[Future[R]] = []
        with ThreadPoolExecutor(max_workers=self.RUNS, thread_name_prefix="marts-run") as pool:
            while not any(f.done() and f.exception() is not None for f in futures):
                self._runs.acquire()
                try:
                    item = next(items, _END)
                except BaseException:  # reading the next run failed: the runs begun end first
                    self._runs.release()
                    raise
                if item is _END:
                    self._runs.release()
                    break
                futures.append(pool.submit(run, item))
        return [future.result() for future in futures]  # the first failure, if one failed


_END: Any = object()  # no more items


class LocalKernels:
    """The kernels in this process, on rows read through ``curated``; a step over more than
    :data:`WHOLE_BUCKETS` times ``bucket_rows`` rows runs a bucket at a time (the module
    docstring). Whole reads are made once and kept for the next step. ``correlate`` and
    ``bids`` may run at once on two threads, and a bucketed step's runs two at a time
    (:class:`Room`)."""

    concurrent = True

    def __init__(
        self,
        curated: Curated,
        bucket_rows: int = BUCKET_ROWS,
        spill_dir: Path | None = None,
    ) -> None:
        self.curated = curated
        self.bucket_rows = bucket_rows
        self.whole_rows = WHOLE_BUCKETS * bucket_rows  # a step over more is bucketed
        self.spill_dir = spill_dir
        self.held = Held()
        self.room = Room()
        if spill_dir is not None:  # what builds killed before this one left behind
            sweep(spill_dir)
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

    def shown(self, impressions: Rows, counted: Slice) -> pa.Table | None:
        """``shown_hourly`` of the impressions inside ``counted`` where they are read whole;
        None where :meth:`hourly` counts them a part at a time."""
        chunks = self._whole_chunks(impressions)
        if chunks is False:
            return None
        with self.room.whole():
            return shown_hourly(counted.rows_of(self.rows(impressions, chunks)))

    def hourly(
        self,
        impressions: Rows,
        counted: Slice,
        given: dict[str, pa.Table],
        hours: list[datetime] | None,
        shown: pa.Table | None = None,
    ) -> pa.Table:
        chunks = self._whole_chunks(impressions)
        if chunks is not False:
            with self.room.whole():
                whole = self.rows(impressions, chunks)
                self.held.step("hourly", 1, whole.num_rows)
                tables = {"impressions": whole, **given}
                if shown is not None:
                    tables["shown"] = shown
                return hourly_part(tables, counted, hours)["hourly"]
        with self.room.bucketed():  # the impressions a part at a time, two parts at once
            parted = self.chunks(_only(impressions, ROLLUP_COLUMNS))
            touched = _view_touches(given["conversions"])
            nothing = {name: table.slice(0, 0) for name, table in given.items()}
            held = self.held.step("hourly", 0)
            # Each run's thread keeps the counts of the parts it counted and merges them a
            # few at a time (sums of integers, sketch unions: the same rows in whatever
            # order they merge). Merged at every part, the growing rows were merged again
            # each time: 5 s of a 10 M backlog's first build.
            merged: dict[int, list[pa.Table]] = {}  # a thread's id → its counts so far

            def count(rows: pa.Table) -> pa.Table:
                """A part's impressions counted (kept), and those that are touches."""
                held.bucket(rows.num_rows, counted=True)
                counts = hourly_part({"impressions": rows, **nothing}, counted, hours)["hourly"]
                mine = merged.setdefault(threading.get_ident(), [])
                mine.append(counts)
                if len(mine) > MERGE_PARTS:
                    mine[:] = [merge_hourly(mine)]
                ids = rows.column("impression_id")
                return rows.filter(pc.fill_null(pc.is_in(ids, value_set=touched), False))

            parts = regrouped(parted.parts(), _run_rows(self.bucket_rows))
            touches = self.room.runs(parts, count)
            empty = _only(impressions, ROLLUP_COLUMNS).schema.empty_table()
            answered = hourly_part(
                {"impressions": empty, "touch_impressions": _concat(touches, empty), **given},
                counted,
                hours,
            )["hourly"]
            return merge_hourly([*(c for mine in merged.values() for c in mine), answered])

    def _whole_chunks(self, impressions: Rows) -> Chunks | Literal[False] | None:
        """How ``impressions`` are read whole: kept already (None), or by these chunks;
        False where they hold too many rows and are counted a part at a time."""
        if self._kept(impressions):
            return None
        chunks = self.chunks(impressions)
        return chunks if chunks.rows <= self.whole_rows else False

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
        time when they hold more than ``whole_rows`` rows. Rows of the inputs named in
        ``keyless`` without a key are left out (the step's rules never match them); inputs
        named in ``only`` are written out with those of their columns only (those the part
        reads)."""
        kept = {tag: self.rows(r) for tag, r in reads.items() if self._kept(r)}
        chunks = {tag: self.chunks(r) for tag, r in reads.items() if tag not in kept}
        planned = sum(c.rows for c in chunks.values()) + sum(t.num_rows for t in kept.values())
        if planned <= self.whole_rows:  # whole, read once for every step that asks
            with self.room.whole():
                self.held.step(step, 1, planned)
                return part(
                    {
                        tag: kept[tag] if tag in kept else self.rows(r, chunks[tag])
                        for tag, r in reads.items()
                    }
                )
        with self.room.bucketed():  # a run of buckets at a time, two runs at once
            narrowed = {tag: _only(r, (only or {}).get(tag, r.columns)) for tag, r in reads.items()}
            # Finer buckets than needed, taken a few at a time up to a run's rows: the
            # planned count is an upper bound, and a heavy user makes buckets uneven.
            fine = min(MAX_BUCKETS, FINER * math.ceil(planned / _run_rows(self.bucket_rows)))
            schemas = {tag: request.schema for tag, request in narrowed.items()}
            outputs: dict[str, list[pa.Table]] = {}
            with Spill(fine, self.spill_dir) as spill:
                for tag, schema in schemas.items():
                    if tag in kept:
                        parts = iter([kept[tag]])
                    elif narrowed[tag] == reads[tag]:
                        parts = chunks[tag].parts()
                    else:
                        parts = self.chunks(narrowed[tag]).parts()
                    if tag in keyless:
                        parts = (rows.filter(pc.is_valid(rows.column(key))) for rows in parts)
                    # Spilled up to a run's rows at a time, not a record batch (≈ 0.1 M rows)
                    # at a time: cut into ``fine`` buckets, each batch made parts of ≈ 2 k
                    # rows, an IPC message each, written and read back one by one (a 10 M
                    # backlog's auctions step 8.3 s, now 7.3). Two steps spilling at once
                    # hold no more than two runs do.
                    for rows in regrouped(parts, _run_rows(self.bucket_rows)):
                        spill.add(tag, rows.select(schema.names), key)
                spill.close()
                # No rows: the part on none.
                runs = _runs(spill.rows, _run_rows(self.bucket_rows)) or [[]]
                held = self.held.step(step, len(runs))

                def bucket_run(run: list[int]) -> dict[str, pa.Table]:
                    tables = spill.take(run, schemas)
                    held.bucket(sum(t.num_rows for t in tables.values()))
                    return part(tables)

                for result in self.room.runs(iter(runs), bucket_run):
                    for tag, out in result.items():
                        outputs.setdefault(tag, []).append(out)
            return {tag: ordered(tag, parts) for tag, parts in outputs.items()}


class Spill:
    """Rows of several inputs cut into ``buckets`` by a hash of a key, on disk: one Arrow
    IPC stream file per (input, bucket) in a folder of its own in ``directory`` (default:
    the system's temporary folder), removed on exit — claimed while in use, so that a build
    killed before its exit leaves it to the next build's sweep (``util.spill``)."""

    def __init__(self, buckets: int, directory: Path | None = None) -> None:
        self.buckets = buckets
        # A full disk (say) while spilling: the one-line error of a marts update.
        self._errors = functools.partial(storage_errors, place(directory), "the marts' spill")
        with self._errors():
            self._dir = ClaimedFolder(SPILL_PREFIX, directory)
        self._writers: dict[tuple[str, int], pa.ipc.RecordBatchStreamWriter] = {}
        self.rows = np.zeros(buckets, dtype=np.int64)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            self._dir.cleanup()

    def _path(self, tag: str, bucket: int) -> Path:
        return self._dir.path / f"{tag}-{bucket}.arrow"

    def add(self, tag: str, rows: pa.Table, key: str) -> None:
        """Append ``rows`` to the files of their buckets."""
        with self._errors():
            for bucket, part in split(rows, key, self.buckets):
                writer = self._writers.get((tag, bucket))
                if writer is None:
                    writer = pa.ipc.new_stream(str(self._path(tag, bucket)), part.schema)
                    self._writers[(tag, bucket)] = writer
                writer.write_table(part)
                self.rows[bucket] += part.num_rows

    def take(self, buckets: list[int], schemas: dict[str, pa.Schema]) -> dict[str, pa.Table]:
        """Every input's rows of ``buckets`` (read into memory; their files are removed),
        once every row is added (:meth:`close`); runs of other buckets may be taken at once."""
        self.close()
        tables = {}
        with self._errors():
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

    def close(self) -> None:
        """Every row added: the buckets' files complete."""
        with self._errors():
            while self._writers:
                _, writer = self._writers.popitem()
                writer.close()


def _run_rows(bucket_rows: int) -> int:
    """The most rows a run of a bucketed step holds: half of ``bucket_rows``, two runs at
    once (:class:`Room`)."""
    return max(1, bucket_rows // Room.RUNS)


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


def _concat(parts: list[pa.Table], empty: pa.Table) -> pa.Table:
    return pa.concat_tables([empty, *parts]) if parts else empty


def _view_touches(conversions: pa.Table) -> pa.Array:
    """The impression ids that are touches of view-through conversions."""
    viewed = conversions.filter(pc.equal(conversions.column("attribution"), "view"))
    paths = pc.list_flatten(viewed.column("touch_path"))
    return pc.unique(pc.struct_field(paths, "touch_id"))
