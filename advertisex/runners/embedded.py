"""The embedded runner: the runner template's two engine steps, in this process, streamed.

A batch is never held in memory whole. Its segments are cut into *pieces* — consecutive
segments of one source, at most ``processor.piece_bytes`` of landing bytes (a bigger
segment is a piece of its own, transformed in slices of about that size) — and
``processor.workers`` threads take the pieces in arrival order, each through:

1. read and frame the piece's segments (each decoded in a worker process under its
   time and memory budget, ``formats.bounded``); standardize, validate, enrich (row-local: the
   workers do this for different pieces at once);
2. dedupe, one piece after the other in arrival order per source: a
   :class:`~advertisex.runners.batch.BatchDedupe` remembers each piece's first
   occurrences for the pieces after it, so the verdicts are those of the whole batch;
3. quarantine, invalid traffic, each table's rows sorted and written as data files
   (again at once).

The threads run side by side because DuckDB, Arrow and Parquet work outside the GIL,
and memory is bounded by the pieces in flight (about one per worker), not by the batch:
a 10 M-event backlog needs what one piece per worker needs. Sources go in
``SOURCE_WAVES`` order: a batch's clicks after all its impressions, whose invalid
traffic they inherit — a click piece is read, standardized and deduplicated beside the
impressions' last pieces, and finishes (step 3) once they are done (:class:`Gate`).
Planning, the commit and everything around it are the template's
(:mod:`advertisex.runners.runner`), which reads the records framed per segment after
:meth:`EmbeddedRunner.transform`.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from advertisex.formats.bounded import DECODE_WORKERS, DecodeLimits, DecodeRefused
from advertisex.formats.bounded import shed as shed_decoders
from advertisex.formats.bounded import warm as warm_decoders
from advertisex.formats.decode import concat_frames, damage_of, frame_segments, framing_groups
from advertisex.lake.datafiles import WrittenFile
from advertisex.landing.zone import Segment
from advertisex.model.schemas import SOURCES
from advertisex.runners.batch import (
    BatchDedupe,
    Repeats,
    SourceAccount,
    Verdict,
    finish_source,
    payloads_of,
    standardize_source,
)
from advertisex.runners.committed import MappedRows
from advertisex.runners.rules import SOURCE_WAVES, BatchRules
from advertisex.runners.runner import (
    Batch,
    Framed,
    ProcessReport,
    Progress,
    Runner,
    Transformed,
)
from advertisex.util import engine
from advertisex.util.allocator import bound_held_memory
from advertisex.util.cores import fit_arrow_threads, usable_cores
from advertisex.util.heap import freeze_startup_heap
from advertisex.util.mapped import release_pages
from advertisex.util.nopandas import refused as refused_pandas
from advertisex.util.retry import retrying

if TYPE_CHECKING:
    from advertisex.marts.iceberg import Replayed
    from advertisex.marts.maintain import MartUpdate


@dataclass(frozen=True)
class Piece:
    """Consecutive segments of one source (by batch index), and its place among the
    source's pieces (``turn``: the order dedupe takes them in)."""

    source: str
    segments: list[tuple[int, Segment]]
    turn: int

    @property
    def size(self) -> int:
        """The piece's weight (:func:`weight`): what it costs in memory, in JSON bytes."""
        return sum(weight(s) for _, s in self.segments)


# What a landing byte of each source holds in memory, against impressions' JSON lines
# (≈ 450 bytes a record): a bid in a deflated Avro container takes ≈ 50 bytes, a click's CSV
# line ≈ 100. A piece's memory follows its records (its frame's and its standardized rows'
# columns), not its landing bytes: weighed by bytes alone, a piece of bids held 8-9 times
# the records of a piece of impressions, and the batch's peak was where the bids went
# through. A bid's rows are narrower than an impression's (no user agent, a shorter raw
# text), so 4 is enough: at 8 the peak was the same (the impressions' pieces set it) and
# twice the pieces each paid their engine calls and data files again.
DENSITY = {"impressions": 1, "clicks": 4, "bids": 4}

# Tables each piece adds a few rows to — what it set aside: the quarantine (≈ a record in
# a thousand), the invalid traffic (≈ 1 %) — gathered across the batch's pieces and written
# when they hold this much, and at the batch's end: written by each piece, the 2 M-event
# batch left 27 and 20 files of 8.5 and 50 KB, each a Parquet file and a manifest entry of
# its own for the commit, the readers and upkeep. Bounded: a batch of nothing but
# malformed records writes a file every GATHERED_BYTES of their raw text.
GATHERED = ("curated.quarantine", "curated.filtered")
GATHERED_BYTES = 16 << 20

# Rows of a merged part of a batch's remembered keys (its earlier pieces' first
# occurrences: key and payload-hash text, ≈ 45 bytes a row) from which the part is kept in
# a mapped file, not in memory: a batch of 1 GiB remembers ≈ 5-6 M keys, 340-370 MiB held
# by its last piece — the 10 M backlog's peak. Smaller parts (a few pieces' keys) stay in
# memory, so a row is written about twice as parts merge, not at every merge.
EARLIER_STORED_ROWS_MIN = 1 << 19


def weight(segment: Segment) -> int:
    """What ``segment`` weighs against ``processor.piece_bytes``: its bytes times its
    source's records per byte (:data:`DENSITY`)."""
    return segment.size * DENSITY.get(segment.source, 1)


def plan_pieces(segments: list[tuple[int, Segment]], piece_bytes: int) -> list[Piece]:
    """Cut indexed segments into pieces of one source and at most ``piece_bytes`` each
    (at least one segment), keeping arrival order within each source; the pieces come
    turn by turn across the sources."""
    pieces: list[Piece] = []
    open_piece: dict[str, list[tuple[int, Segment]]] = {}
    open_weight: dict[str, int] = {}  # the open piece's weight, kept as it grows
    turns: dict[str, int] = {}

    def close(source: str) -> None:
        pieces.append(Piece(source, open_piece.pop(source), turns.get(source, 0)))
        open_weight.pop(source)
        turns[source] = turns.get(source, 0) + 1

    for index, segment in segments:
        source, heavy = segment.source, weight(segment)
        if source in open_piece and open_weight[source] + heavy > piece_bytes:
            close(source)
        open_piece.setdefault(source, []).append((index, segment))
        open_weight[source] = open_weight.get(source, 0) + heavy
    for source in list(open_piece):
        close(source)
    # Taken turn by turn across the sources (a source's first piece, the other's first, then
    # their second …), arrival order within a turn: the workers then run pieces of different
    # sources side by side, where a source's consecutive pieces side by side made the second
    # wait for the first's dedupe (≈ 0.4 s of a worker's time idle over a 2 M batch).
    return sorted(pieces, key=lambda p: (p.turn, p.segments[0][0]))


class Turns:
    """Dedupe's order: piece ``turn`` of a source waits until the pieces before it are
    done. A failure anywhere releases every waiter (they raise instead of waiting)."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._failed = False
        self._changed = threading.Condition()

    @contextmanager
    def of(self, piece: Piece) -> Iterator[None]:
        with self._changed:
            while not self._failed and self._next.get(piece.source, 0) != piece.turn:
                self._changed.wait()
            if self._failed:
                raise RuntimeError("an earlier piece of the batch failed")
        yield

    def done(self, piece: Piece) -> None:
        with self._changed:
            self._next[piece.source] = piece.turn + 1
            self._changed.notify_all()

    def fail(self) -> None:
        with self._changed:
            self._failed = True
            self._changed.notify_all()


class Gate:
    """The rules a later wave's pieces finish by: opened with them once the earlier waves'
    pieces are done (their invalid-traffic users in them); a failure anywhere releases
    every waiter (they raise instead of waiting)."""

    def __init__(self) -> None:
        self._rules: BatchRules | None = None
        self._done = threading.Event()

    def open(self, rules: BatchRules) -> None:
        self._rules = rules
        self._done.set()

    def fail(self) -> None:
        self._done.set()

    def wait(self) -> BatchRules:
        self._done.wait()
        if self._rules is None:
            raise RuntimeError("an earlier piece of the batch failed")
        return self._rules


class EmbeddedRunner(Runner[Framed]):
    """Runs the batch kernels in this process, piece by piece on worker threads."""

    def run_batch(
        self,
        segments: list[Segment],
        progress: Progress | None = None,
        now: datetime | None = None,
        report: ProcessReport | None = None,
    ) -> tuple[dict[str, SourceAccount], str]:
        bound_held_memory()  # before the pieces' threads make their arenas
        fit_arrow_threads()  # a container's CPU limit, not its host's cores
        # Nothing of a batch needs pandas, which Arrow would import on the batch's first
        # array (the lineage table, on the serial start): 0.3-0.4 s of CPU and 20-50 MiB.
        with refused_pandas():
            return super().run_batch(segments, progress, now, report)

    def update_marts(
        self, progress: Progress | None = None, replayed: Replayed | None = None
    ) -> MartUpdate | None:
        # The marts decode nothing: idle decoder workers would sit beside their build
        # (two of them 0.2-0.4 GiB of the process tree); the next batch starts them again.
        if (
            self.settings.correlation.update_marts
            and DecodeLimits.of(self.settings.processor).isolated
        ):
            shed_decoders()
        # Nor do the marts. A run with nothing new opens its first Iceberg table here, and
        # pyiceberg's FileIO imports pyarrow.dataset, which imports pandas (0.25 s of CPU
        # on the command's serial tail) to leave it unused.
        with refused_pandas():
            return super().update_marts(progress, replayed)

    @contextmanager
    def read(self, batch: Batch) -> Iterator[Framed]:
        # Segments are read piece by piece in transform; what they gave is filled in here.
        yield Framed(records={}, unreadable={})

    def transform(self, batch: Batch, framed: Framed) -> Transformed:
        processor = self.settings.processor
        limits = DecodeLimits.of(processor)  # each segment's decode budget
        if limits.isolated:
            warm_decoders()  # the workers start while the first segments are read
        present = {s.source for s in batch.segments}
        # Opened (created, on a new lake: ≈ 0.1-0.15 s) on a thread beside the first pieces'
        # framing, which needs none of them: a piece asking for one waits until it is open.
        opened = self.lake.open_beside(_written_tables(present))
        freeze_startup_heap()  # at the first batch: the runner's modules
        # and the tables' metadata, once they are open
        opened.add_done_callback(lambda _: freeze_startup_heap("tables"))
        engine.spill_to(self.settings.spill_dir)  # not the folder the command ran in
        # The batch's remembered keys kept in mapped files once merged parts are big.
        dedupe = BatchDedupe(
            batch.rules.dedupe, MappedRows(EARLIER_STORED_ROWS_MIN, self.settings.spill_dir)
        )
        run = _Run(batch, framed, limits, dedupe)
        accounts: dict[str, SourceAccount] = {}
        rules = batch.rules
        # Every wave's pieces are queued at once, in wave order: a later wave's piece is
        # read, standardized and deduplicated beside the earlier waves' last pieces, and
        # waits for the invalid-traffic users they caught only to finish (its gate). The
        # pool takes pieces in order, so a piece waits only for pieces already running.
        gates = [Gate() for _ in SOURCE_WAVES[1:]]
        waves: list[list[Future[SourceAccount]]] = []
        try:
            # The workers share the cores: each kernel statement runs on its share of them.
            share = max(1, usable_cores() // processor.workers)
            with ThreadPoolExecutor(
                max_workers=processor.workers, initializer=engine.share_cores, initargs=(share,)
            ) as pool:
                try:
                    for k, wave in enumerate(SOURCE_WAVES):
                        indexed = [(i, s) for i, s in enumerate(batch.segments) if s.source in wave]
                        pieces = plan_pieces(indexed, processor.piece_bytes)
                        gate = gates[k - 1] if k else None
                        waves.append(
                            [pool.submit(self._piece, run, p, rules, gate) for p in pieces]
                        )
                    for k, futures in enumerate(waves):
                        self.check_cancel()
                        users: set[str] = set()
                        for account in _in_order(futures, run.turns):
                            accounts.setdefault(account.source, SourceAccount(account.source)).add(
                                account
                            )
                            users |= account.ivt_users
                        rules = rules.with_ivt_users(users)
                        if k < len(gates):
                            gates[k].open(rules)
                except BaseException:
                    for waiting in gates:  # pieces waiting for a wave that will not end
                        waiting.fail()
                    for future in (f for futures in waves for f in futures):
                        future.cancel()
                    raise
            opened.result()  # every table the batch may write exists, as it did before
            # What the pieces set aside, gathered across the batch (:data:`GATHERED`).
            run.wrote(self.lake.write_files(run.gather({}, last=True), batch.id))
        except BaseException:
            # Every piece has stopped (the pool waited): what they wrote is nobody's.
            self.lake.remove_files({n: [f.url for f in w] for n, w in run.files.items()})
            raise
        finally:
            run.framers.shutdown(cancel_futures=True)
            # A failed batch also waits for its tables' thread: none is left making a table
            # once the command has let go of the lake (its processor lock).
            opened.exception()
        return Transformed(run.files, accounts)

    def _piece(
        self, run: _Run, piece: Piece, rules: BatchRules, gate: Gate | None = None
    ) -> SourceAccount:
        """One piece through the three steps (see the module docstring); ``gate``: the rules
        of the earlier waves, which its invalid traffic is judged by, once they are done."""
        frames = []
        groups = framing_groups(piece.segments)
        frame_group = functools.partial(self._frame_group, run)
        # Groups of small segments go to both decoder workers at once: a piece of thousands
        # of them otherwise kept one worker busy while its thread waited for each answer.
        framed = (
            run.framers.map(frame_group, groups)
            if any(len(group) > 1 for group in groups)
            else map(frame_group, groups)
        )
        for group in framed:
            for index, frame in group:
                if isinstance(frame, Exception):
                    run.framed.unreadable[index] = _unreadable(frame)
                    continue
                run.framed.records[index] = frame.num_rows
                damage = damage_of(frame)
                if damage is not None:
                    run.framed.damaged[index] = damage
                frames.append(frame)
        run.read(len(piece.segments))
        total = SourceAccount(piece.source)
        if not frames:
            with run.turns.of(piece):
                run.turns.done(piece)
            return total
        frame = concat_frames(frames)
        del frames
        count = max(1, math.ceil(piece.size / self.settings.processor.piece_bytes))
        step = math.ceil(frame.num_rows / count) or 1
        for start in range(0, frame.num_rows, step):
            self.check_cancel()
            sliced = frame.slice(start, step)
            rows = standardize_source(piece.source, sliced, rules.validation, rules.dims)
            payloads = payloads_of(piece.source, sliced, rules.validation, rules.dims)
            with run.turns.of(piece):
                found = run.dedupe.verdicts(piece.source, rows, payloads)
                if start + step >= frame.num_rows:
                    run.turns.done(piece)
            # The slice's texts, parsed, and the stored keys its lookups read leave this
            # process's memory (util.mapped): a piece ended holding its whole segment.
            release_pages()
            if gate is not None:
                rules, gate = gate.wait(), None
            appends, account = finish_source(
                piece.source, rows, run.batch.lineage, run.batch.id, _told(found), rules.ivt
            )
            del rows
            total.add(account)
            run.wrote(self.lake.write_files(run.gather(appends), run.batch.id))
        return total

    def _frame_group(
        self, run: _Run, group: list[tuple[int, Segment]]
    ) -> list[tuple[int, pa.Table | Exception]]:
        """One group of :func:`framing_groups` read and framed: each segment's frame, or
        why it could not be read or framed."""
        self.check_cancel()
        # A segment alone is mapped, not read: the decoder worker maps the same pages
        # (util.mapped). Small ones are read, and sent to it together.
        reader = self.landing.read_mapped if len(group) == 1 else self.landing.read
        failed: list[tuple[int, pa.Table | Exception]] = []
        read = []
        for index, segment in group:
            try:
                data = retrying(functools.partial(reader, segment), what=f"reading {segment.name}")
            except Exception as error:  # a file that cannot be read must not block the rest
                failed.append((index, error))
                continue
            read.append((index, segment, data))
        framed = frame_segments(read, run.limits, self.cancel)
        return failed + [(index, frame) for (index, _, _), frame in zip(read, framed, strict=True)]


def _unreadable(error: Exception) -> str:
    """Why a segment was set aside: a refused decode says its code (over its time or memory
    budget, or crashed), anything else its type."""
    if isinstance(error, DecodeRefused):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _told(found: dict[str, Verdict]) -> Repeats:
    """The dedupe step of ``finish_source``: verdicts already found."""
    return lambda table_name, _: found[table_name]


def _in_order(futures: list[Future[SourceAccount]], turns: Turns) -> Iterator[SourceAccount]:
    """The pieces' results in order; on the first failure the others are released
    (they stop at their next dedupe turn) and the failure is raised."""
    try:
        for future in futures:
            yield future.result()
    except BaseException:
        turns.fail()
        for future in futures:
            future.cancel()
        raise


class _Run:
    """What the pieces of one batch share: the framed counts, the dedupe state and its
    turns, the files written so far and the segments read (for the progress callback)."""

    def __init__(
        self, batch: Batch, framed: Framed, limits: DecodeLimits, dedupe: BatchDedupe
    ) -> None:
        self.batch, self.framed, self.limits, self.dedupe = batch, framed, limits, dedupe
        self.turns = Turns()
        # Threads that frame groups of small segments for the pieces, one a decoder worker.
        self.framers = ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="framer")
        self.files: dict[str, list[WrittenFile]] = {}
        self._segments_read = 0
        self._lock = threading.Lock()
        self._gathered: dict[str, list[pa.Table]] = {}  # GATHERED tables' rows not written
        self._gathered_bytes: dict[str, int] = {}

    def read(self, segments: int) -> None:
        with self._lock:
            self._segments_read += segments
            if self.batch.progress:
                self.batch.progress("read", self._segments_read, len(self.batch.segments))

    def wrote(self, written: dict[str, list[WrittenFile]]) -> None:
        with self._lock:
            for name, files in written.items():
                self.files.setdefault(name, []).extend(files)

    def gather(self, appends: dict[str, pa.Table], last: bool = False) -> dict[str, pa.Table]:
        """A piece's rows to write now: its own tables', and those of a :data:`GATHERED`
        table once the batch's pieces gathered :data:`GATHERED_BYTES` of them (``last``:
        whatever is left, at the batch's end)."""
        now = {name: rows for name, rows in appends.items() if name not in GATHERED}
        with self._lock:
            for name in GATHERED:
                rows = appends.get(name)
                if rows is not None and rows.num_rows:
                    self._gathered.setdefault(name, []).append(rows)
                    self._gathered_bytes[name] = self._gathered_bytes.get(name, 0) + rows.nbytes
                if name in self._gathered and (
                    last or self._gathered_bytes[name] >= GATHERED_BYTES
                ):
                    now[name] = pa.concat_tables(self._gathered.pop(name))
                    del self._gathered_bytes[name]
        return now


def _written_tables(sources: set[str]) -> list[str]:
    """Tables a batch of ``sources`` may write to, in the order its pieces need them: the
    first wave's tables (their pieces' dedupe looks there first), the tables of what the
    pieces set aside (written at the batch's end), the later waves'."""
    names = [t for source in SOURCE_WAVES[0] if source in sources for t in SOURCES[source]]
    names += ["curated.quarantine", "curated.filtered"]
    for wave in SOURCE_WAVES[1:]:
        names += [t for source in wave if source in sources for t in SOURCES[source]]
    return names
