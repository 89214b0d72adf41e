"""``advertisex replay``: rebuild curated tables from the landing zone.

The landing zone is the source of truth (immutable segments), so any stretch of the
tables can be recomputed: the batches that consumed the selected segments are
removed from every table they wrote (their own data files dropped unread, their rows
taken out of compacted files) and their segments are marked pending again — in one
catalog transaction — and then processed as usual. So are the rows a quarantine replay
wrote for records of those segments, its ``ops.batches`` account reduced by them: the
records are judged again with their segments, once. It is also how the rows of a data
file the storage lost come back (``lake.damage``). Whole
batches are replayed (a batch's segments stand or fall together), so accounting in
``ops.batches`` stays exact. Processing is deterministic in segment order, so a replay
yields the same tables again — and the marts' update after it, handed a hash of each row
taken out of the tables it reads (``marts.iceberg.Replayed``, ``marts.taken``), folds in
only those that differ from the rows written again: as a rule none (it rebuilt every mart
of every day kept, 6.4 of a day's 9.1 s on a month's lake).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.errors import UserInputError
from advertisex.lake.damage import batch_bounds, batch_of, batches_in, within
from advertisex.lake.datafiles import remove_files
from advertisex.lake.history import live_files
from advertisex.lake.rewrite import commit_swap, rewrite_without
from advertisex.landing.detect import SOURCES
from advertisex.landing.zone import landing_day
from advertisex.model.schemas import TABLES
from advertisex.runners.lock import erasure_lock, processor_lock

if TYPE_CHECKING:
    from advertisex.lake.tables import Lake
    from advertisex.marts.iceberg import Replayed
    from advertisex.marts.taken import Taken
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
    if start is not None and end is not None and end < start:
        # Swapped by a hurried hand: "nothing to replay" read as done, the day never rebuilt.
        raise UserInputError(
            f"--to {end} is before --from {start}: the range holds no day",
            hint=f"swap them: --from {end} --to {start}",
        )
    data_dir = runner.settings.data_dir
    # Nor a processor, nor an erasure (a replay read a user's records before forget
    # rewrote them, and committed their rows after it): ``runners.lock``.
    with erasure_lock(data_dir, "replay"), processor_lock(data_dir):
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
    # Only the replayed segments are looked up: listing the landing zone to find them read
    # every segment kept (2,160 on a month's lake, tens of millions after months of
    # one-second collector segments).
    landed = runner.landing.sizes(segments)
    gone = sorted(s for s in segments if s not in landed)
    if gone:  # replaying would delete rows that could not be processed again
        raise UserInputError(
            f"{len(gone)} landing segments of the batches to replay no longer exist "
            f"(first: {gone[0]}); landing retention deleted them",
            hint="copy them back from retention.archive into the landing zone, or replay "
            "a later --from",
        )
    # Rows a quarantine replay took from these segments go too, and its batch's account
    # shrinks by them: processed again, those records were filtered or quarantined a second
    # time (the filter and the quarantine dedupe against nothing).
    taken: Counter[tuple[str, str, str]] = Counter()
    unlisted: set[str] = set()  # batches whose ops.batches rows were not listed (their own)
    ops = lake.table("ops.batches")
    accounts = live_files(ops, _of_other_batches(ops, set(batch_ids), unlisted))
    known = batches_in(accounts, lake.settings.scale) | unlisted | set(batch_ids)
    rewritten = _Rewritten()
    swaps = {
        name: _without_batches(lake, name, set(batch_ids), set(segments), taken, known, rewritten)
        for name in _BATCH_TABLES
        if name != "ops.batches"
    }
    swaps["ops.batches"] = _without_batches(
        lake, "ops.batches", set(batch_ids), set(), taken, known, listed=accounts
    )
    try:
        for_marts = _taken_for_marts(runner, swaps, rewritten)
        with lake.catalog.atomic([], forget=segments):
            for name, (removed, added) in swaps.items():
                if removed:
                    commit_swap(lake.table(name), removed, added, None, _REPLAYED)
    except BaseException:
        remove_files([url for _, added in swaps.values() for url in added], lake.settings.scale)
        raise
    lake.refresh()
    swapped = {name for name, (removed, _) in swaps.items() if removed}
    replayed = _replayed(lake, swapped, *for_marts) if for_marts is not None else None
    # Rows of days retention has taken are not brought back: maintain would take them again,
    # and until then queries and the marts' update counted them.
    runner.leave_out_past_retention = True
    try:
        processed = runner.process(progress, None, replayed)
    finally:
        runner.leave_out_past_retention = False
    return LandingReplayReport(batch_ids, len(segments), processed)


_REPLAYED = {"advertisex.replay": "true"}  # the swap's snapshot property

# Past this many rows taken out of the tables the marts read, the marts are rebuilt after
# the replay instead: a replay holds 8 bytes a row taken out (its hash) and, while the
# update compares, 16 a row processed again (160 MB and ≈ 0.5 GB at this cap), where a
# rebuild reads each table once, a bucket at a time.
MARTS_ROWS = 20_000_000


@dataclass
class _Rewritten:
    """What the files a replay rewrites (not taken out whole) lose, of the tables the marts
    read: by table, the hashes of those rows' columns the marts read
    (``marts.taken.row_hashes``; dropped past :data:`MARTS_ROWS` rows) and the files."""

    hashes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    files: dict[str, dict[str, None]] = field(default_factory=dict)
    count: int = 0

    def keep(self, name: str, path: str, gone: pa.Table) -> None:
        from advertisex.marts.maintain import CURATED_READS
        from advertisex.marts.taken import row_hashes

        if name not in CURATED_READS:
            return
        self.count += gone.num_rows
        self.files.setdefault(name, {})[path] = None
        if self.count <= MARTS_ROWS:
            schema = TABLES[name].projected(CURATED_READS[name])
            rows = gone.select(schema.names).cast(schema)
            self.hashes.setdefault(name, []).append(row_hashes(rows))
        else:
            self.hashes = {}

    def of(self, name: str) -> dict[str, None]:
        """The files of ``name`` rewritten, in the order they were (a dict: looked up)."""
        return self.files.get(name, {})


def _taken_for_marts(
    runner: Runner[Any], swaps: dict[str, tuple[list[Any], list[str]]], rewritten: _Rewritten
) -> tuple[dict[str, Taken], dict[str, str]] | None:
    """(the rows the swaps take out of the tables the marts read — the hashes of the
    columns they read, and the files to read them back from —, the marts' state) for the
    marts' update after the replay (``marts.iceberg.Replayed``); None where it would
    rebuild them anyway: marts off or never built, more than :data:`MARTS_ROWS` rows, a
    file that cannot be read (lost or damaged: its rows are what the replay brings back).
    The files taken out whole are read one at a time, and only their hashes kept."""
    from advertisex.marts.iceberg import IcebergMarts, marts_built
    from advertisex.marts.maintain import CURATED_READS
    from advertisex.marts.taken import Taken, row_hashes

    lake = runner.lake
    if not runner.settings.correlation.update_marts or not marts_built(lake):
        return None
    whole = {
        name: [f for f in swaps[name][0] if f.file_path not in rewritten.of(name)]
        for name in CURATED_READS
    }
    count = sum(f.record_count for files in whole.values() for f in files) + rewritten.count
    if count > MARTS_ROWS:
        return None
    taken: dict[str, Taken] = {}
    for name in CURATED_READS:
        schema = TABLES[name].projected(CURATED_READS[name])
        hashes = list(rewritten.hashes.get(name, []))
        urls = [f.file_path for f in whole[name]]
        for url in urls:
            rows = _columns_of(url, schema, lake.settings.scale)
            if rows is None:
                return None
            hashes.append(row_hashes(rows))
        sources = [
            functools.partial(_columns_of, url, schema, lake.settings.scale)
            for url in [*urls, *rewritten.of(name)]
        ]
        joined = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        joined.sort()
        taken[name] = Taken(joined, sources)
    return taken, IcebergMarts(lake).state()


def _columns_of(url: str, schema: pa.Schema, scale: Any) -> pa.Table | None:
    """``schema``'s columns of the data file ``url``; None when it cannot be read (lost,
    cut short, another shape)."""
    import pyarrow.parquet as pq

    from advertisex.util import storage

    filesystem, path = storage.resolve(url, scale)
    try:
        return pq.read_table(path, columns=schema.names, filesystem=filesystem).cast(schema)
    except (OSError, ValueError, pa.ArrowException):
        return None


def _replayed(
    lake: Lake, swapped: set[str], rows: dict[str, Taken], marts_state: dict[str, str]
) -> Replayed | None:
    """``marts.iceberg.Replayed`` of the swap just committed to the tables ``swapped``: the
    current snapshot of each the marts read is its swap (the processor lock is held); None
    when one is not."""
    from advertisex.lake.history import kind
    from advertisex.marts.iceberg import Replayed

    snapshots: dict[str, int] = {}
    for name in swapped & set(rows):
        snapshot = lake.table(name).current_snapshot()
        if snapshot is None or kind(snapshot) != "overwrite":
            return None
        if snapshot.summary is None or snapshot.summary["advertisex.replay"] != "true":
            return None
        snapshots[name] = snapshot.snapshot_id
    return Replayed(rows, snapshots, marts_state)


# A quarantine replay's batch id begins so (``advertisex.quarantine.replay``).
QUARANTINE_REPLAY = "replay-"
# Which account a curated row of a quarantine replay counts under: (source, outcome); None:
# the source is the row's own (``event_table``'s, ``source``).
_OUTCOMES: dict[str, tuple[str | None, str]] = {
    "curated.impressions": ("impressions", "accepted"),
    "curated.clicks": ("clicks", "accepted"),
    "curated.conversions": ("clicks", "accepted"),
    "curated.bid_requests": ("bids", "accepted"),
    "curated.filtered": (None, "filtered"),
    "curated.quarantine": (None, "quarantined"),
}
_EVENT_SOURCES = {table: source for table, (source, _) in _OUTCOMES.items() if source}


def _without_batches(
    lake: Lake,
    name: str,
    batch_ids: set[str],
    segments: set[str] | None = None,
    taken: Counter[tuple[str, str, str]] | None = None,
    known: set[str] | None = None,
    rewritten: _Rewritten | None = None,
    listed: list[Any] | None = None,
) -> tuple[list[Any], list[str]]:
    """(the data files of ``name`` to take out, the files written to take their place) for
    a table without the rows of ``batch_ids``, nothing committed yet. ``rewritten`` keeps
    what each file rewritten (not taken out whole) loses, for the marts. ``listed``: the
    table's live data files, where the caller listed them already.

    Rows of quarantine replays from ``segments`` go as well, counted in ``taken`` by
    (replay batch, source, outcome); ``ops.batches`` (done last) takes those counts off the
    replays' rows (``records_in`` and the outcome), which stay balanced.

    A file a batch wrote holds that batch's rows only, as its name says (``lake.damage``):
    one of the replayed batches' is taken out unread — so a replay rebuilds a file the
    storage lost or damaged — and another batch's is left unread. A file of several
    batches (compaction's, erasure's) is judged by its ``batch_id`` bounds where its entry
    keeps them, against the ``known`` batches (``ops.batches``): holding only replayed
    ones, taken out unread; none, left; else — or without bounds — read, its ``batch_id``
    column alone, and rewritten without the replayed rows. (pyiceberg's delete by
    ``batch_id`` read every file of the table, whose ``batch_id`` had no statistics.)"""
    import pyarrow.parquet as pq

    from advertisex.util import storage

    table = lake.table(name)
    schema = TABLES[name].schema
    scale = lake.settings.scale
    removed: list[Any] = []
    added: list[str] = []
    segments = segments or set()
    taken = Counter() if taken is None else taken
    by_file = "source_file" in schema.names and bool(segments)
    accounts = _taken_accounts(taken) if name == "ops.batches" else {}
    try:
        unread = _of_other_batches(table, batch_ids)
        for data_file in live_files(table, unread) if listed is None else listed:
            owner = batch_of(data_file.file_path)
            if owner is not None:
                if owner in batch_ids:
                    removed.append(data_file)
                continue
            bounds = batch_bounds(table, data_file) if known is not None else None
            if known is not None and bounds is not None:
                held = within(bounds, known)
                if held and held <= batch_ids:
                    removed.append(data_file)
                    continue
                # (a quarantine replay's rows of these segments go too, and its accounts
                # shrink by them: such a file is read)
                of_replays = any(b.startswith(QUARANTINE_REPLAY) for b in held)
                quiet = not (of_replays and (by_file or accounts))
                if quiet and not held & batch_ids and bounds[0] in known and bounds[1] in known:
                    continue  # none of the replayed batches' rows, nor a quarantine replay's
            filesystem, path = storage.resolve(data_file.file_path, scale)
            columns = ["batch_id", *(["source"] if accounts else [])]
            ids = pq.read_table(path, columns=columns, filesystem=filesystem)
            replayed = pc.is_in(ids.column("batch_id"), pa.array(sorted(batch_ids)))
            of_replays = pc.starts_with(ids.column("batch_id"), QUARANTINE_REPLAY)
            if by_file and pc.any(of_replays).as_py():  # their landing files, only then
                files = pq.read_table(path, columns=["source_file"], filesystem=filesystem)
                of_segments = pc.is_in(files.column("source_file"), pa.array(sorted(segments)))
                replayed = pc.or_(replayed, pc.and_(of_replays, of_segments))
            if accounts:
                replayed = pc.or_(replayed, pc.is_in(_account_keys(ids), pa.array(list(accounts))))
            if not pc.any(replayed).as_py():
                continue
            gone, written = rewrite_without(
                data_file.file_path, replayed, schema, "replayed", scale, name
            )
            removed.append(data_file)
            added.extend([written] if written is not None else [])
            if rewritten is not None:
                rewritten.keep(name, data_file.file_path, gone)
            if by_file:
                _count_taken(name, gone, batch_ids, taken)
            if accounts:
                added.extend(_write_reduced(data_file.file_path, gone, accounts, schema, scale))
    except BaseException:
        remove_files(added, scale)  # never to be committed: nobody's files
        raise
    return removed, added


def _of_other_batches(
    table: Any, batch_ids: set[str], unlisted: set[str] | None = None
) -> Callable[[Any], bool]:
    """Which manifests of ``table`` a replay of ``batch_ids`` need not read: those listing
    only files that the commit of a landing batch not replayed added — the manifest holds
    no entry carried over from others (a merged or rewritten manifest does), and the
    snapshot that added it, still in the table's metadata, is an append with another
    landing batch's ``advertisex.batch-id``. Such a file holds that batch's rows alone,
    which a replay never touches (a quarantine replay's rows it may: their ``replay-``
    appends are read). Each such batch is added to ``unlisted``.

    Listing every live file read each manifest of the current snapshot: up to 99 small
    ones a table between merges, about 1 ms each, whatever the day replayed."""
    from advertisex.lake.history import kind

    metadata = table.metadata

    def unread(manifest: Any) -> bool:
        if manifest.existing_files_count != 0 or not manifest.added_files_count:
            return False
        snapshot = metadata.snapshot_by_id(manifest.added_snapshot_id)
        if snapshot is None or snapshot.summary is None or kind(snapshot) != "append":
            return False  # expired (thinned): who added it is not known
        batch = snapshot.summary["advertisex.batch-id"]
        if not batch or batch in batch_ids or batch.startswith(QUARANTINE_REPLAY):
            return False
        if unlisted is not None:
            unlisted.add(batch)
        return True

    return unread


def _count_taken(
    name: str, gone: pa.Table, batch_ids: set[str], taken: Counter[tuple[str, str, str]]
) -> None:
    source, outcome = _OUTCOMES[name]
    for row in gone.select(
        [c for c in ("batch_id", "source", "event_table") if c in gone.schema.names]
    ).to_pylist():
        batch = row["batch_id"]
        if batch in batch_ids or not batch.startswith(QUARANTINE_REPLAY):
            continue
        of = source or row.get("source") or _EVENT_SOURCES[row["event_table"]]
        taken[(batch, of, outcome)] += 1


def _taken_accounts(taken: Counter[tuple[str, str, str]]) -> dict[str, Counter[str]]:
    """``batch_id\\nreplay:<source>`` → outcome → records taken from that account."""
    accounts: dict[str, Counter[str]] = {}
    for (batch, source, outcome), count in taken.items():
        accounts.setdefault(f"{batch}\nreplay:{source}", Counter())[outcome] += count
    return accounts


def _account_keys(ids: pa.Table) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(ids.column("batch_id"), ids.column("source"), "\n")


def _write_reduced(
    url: str, gone: pa.Table, accounts: dict[str, Counter[str]], schema: pa.Schema, scale: Any
) -> list[str]:
    """The ``ops.batches`` rows of quarantine replays in ``gone`` written again beside ``url``
    without the records taken from them (none of the replayed batches' own rows)."""
    import uuid

    import pyarrow.parquet as pq

    from advertisex.util import storage

    rows = []
    for row in gone.to_pylist():
        taken = accounts.get(f"{row['batch_id']}\n{row['source']}")
        if taken is None:
            continue
        for outcome, count in taken.items():
            row[outcome] -= count
            row["records_in"] -= count
        rows.append(row)
    if not rows:
        return []
    target = storage.join(url.rsplit("/", 1)[0], f"replayed-{uuid.uuid4().hex[:16]}.parquet")
    filesystem, path = storage.resolve(target, scale)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=schema), path, filesystem=filesystem, compression="zstd"
    )
    return [target]
