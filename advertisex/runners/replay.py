"""``advertisex replay``: rebuild curated tables from the landing zone.

The landing zone is the source of truth (immutable segments), so any stretch of the
tables can be recomputed: the batches that consumed the selected segments are
removed from every table they wrote (their own data files dropped unread, their rows
taken out of compacted files) and their segments are marked pending again — in one
catalog transaction — and then processed as usual. It is also how the rows of a data
file the storage lost come back (``lake.damage``). Whole
batches are replayed (a batch's segments stand or fall together), so accounting in
``ops.batches`` stays exact. Processing is deterministic in segment order, so a replay
yields the same tables again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from advertisex.errors import UserInputError
from advertisex.lake.damage import batch_bounds, batch_of, known_batches, within
from advertisex.lake.datafiles import remove_files
from advertisex.lake.rewrite import commit_swap, rewrite_without
from advertisex.landing.detect import SOURCES
from advertisex.landing.zone import landing_day
from advertisex.model.schemas import TABLES
from advertisex.runners.lock import processor_lock

if TYPE_CHECKING:
    from advertisex.lake.tables import Lake
    from advertisex.runners.runner import ProcessReport, Progress, Runner

# Tables whose rows carry the batch that wrote them.
_BATCH_TABLES = [name for name, spec in TABLES.items() if "batch_id" in spec.schema.names]


@dataclass
class LandingReplayReport:
    batches: list[str]
    segments: int
    process: ProcessReport | None


def select_batches(lake: Lake, start: date | None, end: date | None) -> dict[str, list[str]]:
    """batch id → its segments, for batches that consumed a segment landed in [start, end].

    The ledger is read by ranges — the marks of the segments landed in [start, end] (a
    source's names sort by landing day), then every mark of the batches they name — not
    whole: it keeps a mark for every segment ever committed, tens of millions after months
    of one-second collector segments, and a replay of one day read them all (about 200
    bytes of memory each)."""
    low = "" if start is None else f"{start:%Y-%m-%d}/"
    landed: set[str] = set()
    for source in SOURCES:
        # The day after ``end`` bounds it, where there is one (``--to 9999-12-31``: none).
        high = (
            f"{source}0"  # every name of the source ("0" sorts after its "/")
            if end is None or end == date.max
            else f"{source}/{end + timedelta(days=1):%Y-%m-%d}/"
        )
        marks = lake.segment_marks(between=(f"{source}/{low}", high))
        landed |= {m.batch_id for name, m in marks.items() if landing_day(name) is not None}
    by_batch: dict[str, list[str]] = {}
    for segment, mark in lake.marks_of_batches(landed).items():
        by_batch.setdefault(mark.batch_id, []).append(segment)
    return by_batch


def replay(
    runner: Runner[Any],
    start: date | None = None,
    end: date | None = None,
    progress: Progress | None = None,
) -> LandingReplayReport:
    """Remove the selected batches' rows, mark their segments pending, process again."""
    with processor_lock(runner.settings.data_dir):  # a processor must not run in between
        return _replay(runner, start, end, progress)


def _replay(
    runner: Runner[Any], start: date | None, end: date | None, progress: Progress | None
) -> LandingReplayReport:
    lake = runner.lake
    chosen = select_batches(lake, start, end)
    if not chosen:
        return LandingReplayReport([], 0, None)
    batch_ids = sorted(chosen)
    segments = [s for ids in chosen.values() for s in ids]
    landed = {s.name for s in runner.landing.segments()}
    gone = sorted(s for s in segments if s not in landed)
    if gone:  # replaying would delete rows that could not be processed again
        raise UserInputError(
            f"{len(gone)} landing segments of the batches to replay no longer exist "
            f"(first: {gone[0]}); landing retention deleted them",
            hint="copy them back from retention.archive into the landing zone, or replay "
            "a later --from",
        )
    known = known_batches(lake) | set(batch_ids)
    swaps = {name: _without_batches(lake, name, set(batch_ids), known) for name in _BATCH_TABLES}
    try:
        with lake.catalog.atomic([], forget=segments):
            for name, (removed, added) in swaps.items():
                if removed:
                    commit_swap(lake.table(name), removed, added, None, _REPLAYED)
    except BaseException:
        remove_files([url for _, added in swaps.values() for url in added], lake.settings.scale)
        raise
    lake.refresh()
    return LandingReplayReport(batch_ids, len(segments), runner.process(progress))


_REPLAYED = {"advertisex.replay": "true"}  # the swap's snapshot property


def _without_batches(
    lake: Lake, name: str, batch_ids: set[str], known: set[str] | None = None
) -> tuple[list[Any], list[str]]:
    """(the data files of ``name`` to take out, the files written to take their place) for
    a table without the rows of ``batch_ids``, nothing committed yet.

    A file a batch wrote holds that batch's rows only, as its name says (``lake.damage``):
    one of the replayed batches' is taken out unread — so a replay rebuilds a file the
    storage lost or damaged — and another batch's is left unread. A file of several
    batches (compaction's, erasure's) is judged by its ``batch_id`` bounds where its entry
    keeps them, against the ``known`` batches (``ops.batches``): holding only replayed
    ones, taken out unread; none, left; else — or without bounds — read, its ``batch_id``
    column alone, and rewritten without the replayed rows. (pyiceberg's delete by
    ``batch_id`` read every file of the table, whose ``batch_id`` had no statistics.)"""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from advertisex.lake.history import live_files
    from advertisex.util import storage

    table = lake.table(name)
    schema = TABLES[name].schema
    scale = lake.settings.scale
    removed: list[Any] = []
    added: list[str] = []
    try:
        for data_file in live_files(table):
            owner = batch_of(data_file.file_path)
            if owner is not None:
                if owner in batch_ids:
                    removed.append(data_file)
                continue
            bounds = batch_bounds(table, data_file) if known is not None else None
            if bounds is not None and known is not None:
                held = within(bounds, known)
                if held and held <= batch_ids:
                    removed.append(data_file)
                    continue
                if not held & batch_ids and bounds[0] in known and bounds[1] in known:
                    continue  # none of the replayed batches' rows
            filesystem, path = storage.resolve(data_file.file_path, scale)
            ids = pq.read_table(path, columns=["batch_id"], filesystem=filesystem)
            replayed = pc.is_in(ids.column("batch_id"), pa.array(sorted(batch_ids)))
            if not pc.any(replayed).as_py():
                continue
            _, written = rewrite_without(data_file.file_path, replayed, schema, "replayed", scale)
            removed.append(data_file)
            added.extend([written] if written is not None else [])
    except BaseException:
        remove_files(added, scale)  # never to be committed: nobody's files
        raise
    return removed, added
