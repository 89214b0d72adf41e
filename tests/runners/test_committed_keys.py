"""The committed-key cache answers exactly what a scan of the current snapshot would,
whatever was committed, looked up, evicted or rewritten in between."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advertisex.config import load_settings
from advertisex.kernels.dedupe import key_hashes
from advertisex.lake.tables import Lake
from advertisex.model.schemas import CLICKS
from advertisex.runners.committed import CommittedKeys

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TABLE = "curated.clicks"


def _clicks(rows: list[tuple[str, int]]) -> pa.Table:
    """Clicks (id, hours after T0)."""
    return pa.Table.from_pylist(
        [
            {
                "event_id": event_id,
                "event_time": T0 + timedelta(hours=hours),
                "user_id": "u",
                "campaign_id": "c",
                "payload_hash": f"h-{event_id}",
                "ingest_time": T0,
                "source_file": "f",
                "source_position": i,
                "batch_id": "b",
            }
            for i, (event_id, hours) in enumerate(rows)
        ],
        schema=CLICKS,
    )


def _compact(lake: Lake) -> None:
    from advertisex.lake.compaction import compact, plan

    lake.refresh()
    table = lake.table(TABLE)
    compact(table, TABLE, plan(table, lake.settings), lake.settings)
    lake.refresh()


Spans = list[tuple[datetime, datetime]]


def _scanned(lake: Lake, *spans: tuple[datetime, datetime]) -> set[tuple[str, str]]:
    """What the runner used to read: a scan of the current snapshot, inclusive bounds."""
    rows = lake.read(TABLE).to_pylist()
    return {
        (r["event_id"], r["payload_hash"])
        for r in rows
        if any(low <= r["event_time"] <= high for low, high in spans)
    }


def _cached(keys: CommittedKeys, *spans: tuple[datetime, datetime]) -> set[tuple[str, str]]:
    rows = keys.lookup(TABLE, list(spans))
    pairs = [] if rows is None else rows.select(["event_id", "payload_hash"]).to_pylist()
    assert len(pairs) == len({(p["event_id"], p["payload_hash"]) for p in pairs})  # no twice
    found = {(p["event_id"], p["payload_hash"]) for p in pairs}
    # What a batch asks: only the rows whose key its candidates share, by key hash.
    wanted = [f"e{i}" for i in range(0, 40, 3)] + ["not-committed"]
    matched = keys.matching(TABLE, np.unique(key_hashes(pa.array(wanted))), list(spans))
    pairs = [] if matched is None else matched.select(["event_id", "payload_hash"]).to_pylist()
    assert {(p["event_id"], p["payload_hash"]) for p in pairs} == {
        pair for pair in found if pair[0] in wanted
    }
    return found


step = st.one_of(
    st.tuples(st.just("commit"), st.lists(st.integers(0, 24 * 6), min_size=1, max_size=6)),
    st.tuples(
        st.just("lookup"),
        st.tuples(st.integers(0, 24 * 6), st.integers(0, 24 * 3), st.integers(0, 24 * 4)),
    ),
    st.tuples(st.just("rewrite"), st.just(None)),
    st.tuples(st.just("compact"), st.just(None)),
)


@pytest.mark.slow
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=1, max_size=12))
def test_a_lookup_equals_a_scan_of_the_current_snapshot(tmp_path: Path, steps: list) -> None:
    data = tmp_path / f"lake-{len(list(tmp_path.iterdir()))}"
    lake = Lake(load_settings(data_dir=data, maintenance={"min_input_files": 2}))
    keys = CommittedKeys(lake, stored_rows_min=len(steps) % 3)  # mapped parts, or some not
    made = 0
    for kind, arg in steps:
        if kind == "commit":
            rows = [(f"e{made + i}", hours) for i, hours in enumerate(arg)]
            made += len(rows)
            lake.commit_batch({TABLE: _clicks(rows)}, [], {})
        elif kind == "compact":  # maintenance: the same rows in fewer files
            _compact(lake)
        elif kind == "rewrite":  # a replay: the table's files replaced by new ones
            table = lake.table(TABLE)
            if table.current_snapshot() is not None:
                table.overwrite(lake.read(TABLE))
                lake.refresh()
        else:  # one span, or two apart (a batch of events far apart): gap hours between
            start, span, gap = arg
            low = T0 + timedelta(hours=start, minutes=30)
            high = low + timedelta(hours=span)
            spans = [(low, high)]
            if gap:
                later = high + timedelta(hours=gap)
                spans.append((later, later + timedelta(hours=span)))
            assert _cached(keys, *spans) == _scanned(lake, *spans)
    low, high = T0, T0 + timedelta(days=30)
    assert _cached(keys, (low, high)) == _scanned(lake, (low, high))


def test_each_way_the_cache_follows_the_tables(tmp_path: Path) -> None:
    lake = Lake(load_settings(data_dir=tmp_path / "data", maintenance={"min_input_files": 2}))
    keys = CommittedKeys(lake, stored_rows_min=1)
    day = timedelta(days=1)
    lake.commit_batch({TABLE: _clicks([("a", 5), ("b", 30)])}, [], {})
    first = ((T0, T0 + day),)
    assert _cached(keys, *first) == {("a", "h-a")}
    # A later batch adds rows to a day the cache holds: its new file is joined in.
    lake.commit_batch({TABLE: _clicks([("c", 6), ("d", 80)])}, [], {})
    assert _cached(keys, *first) == _scanned(lake, *first) == {("a", "h-a"), ("c", "h-c")}
    # Days it never held are read whole (with every file, old and new).
    later = ((T0 + day, T0 + 4 * day),)
    assert _cached(keys, *later) == _scanned(lake, *later) == {("b", "h-b"), ("d", "h-d")}
    assert T0.date() not in keys._tables[TABLE].days  # before the oldest needed: let go
    assert _cached(keys, *first) == _scanned(lake, *first)  # …and read again when needed
    # A compaction changes files, not rows: the cache keeps what it holds.
    held = keys._tables[TABLE]
    _compact(lake)
    assert lake.table(TABLE).current_snapshot().summary["advertisex.upkeep"] == "compaction"
    assert _cached(keys, *later) == _scanned(lake, *later)
    assert keys._tables[TABLE] is held and held.days
    # A rewrite (a replay) replaces the files: the cache starts over from the tables.
    table = lake.table(TABLE)
    table.overwrite(lake.read(TABLE).filter(pa.array([True, False, True, False])))
    lake.refresh()
    everything = ((T0, T0 + 5 * day),)
    assert _cached(keys, *everything) == _scanned(lake, *everything)
    assert len(_cached(keys, *everything)) == 2


def test_snapshots_expired_under_the_cache_are_a_conflict_to_retry(tmp_path: Path) -> None:
    """Maintenance in another process compacted the files and expired the snapshots this
    process's metadata still names (their manifest lists and files are gone): the lookup is
    a conflict the runner retries on fresh metadata, never a crash. Whether the cache
    learns the appended files from this process's own commits or from the manifests."""
    from advertisex.errors import CommitConflictError
    from advertisex.lake import history

    for own in (True, False):
        lake = Lake(load_settings(data_dir=tmp_path / f"data-{own}"))
        keys = CommittedKeys(lake)
        lake.commit_batch({TABLE: _clicks([("a", 5)])}, [], {})
        window = [(T0, T0 + timedelta(days=1))]
        assert _cached(keys, *window) == {("a", "h-a")}
        lake.commit_batch({TABLE: _clicks([("b", 6)])}, [], {})
        table = lake.table(TABLE)
        appended = history.appended_since(table, table.current_snapshot().parent_snapshot_id)
        if not own:
            history._appended.clear()  # as another process's commits would be
        Path(table.current_snapshot().manifest_list.removeprefix("file://")).unlink()
        for data_file in appended or []:
            Path(data_file.file_path.removeprefix("file://")).unlink()
        with pytest.raises(CommitConflictError):
            keys.lookup(TABLE, window)


def test_a_held_day_takes_its_rows_and_its_index_from_mapped_files(tmp_path: Path) -> None:
    """The key and payload-hash text of the committed keys is not in memory: Arrow's
    allocations do not grow by the rows held, and the cache's parts are memory-mapped. Nor
    are their sorted key hashes and order, 16 bytes a key in the heap for every day of the
    horizon (2.8 GB a day at 2,000 events a second) until 2026-12-07."""
    lake = Lake(load_settings(data_dir=tmp_path / "data"))
    rows = [(f"event-{i:012d}", i % 20) for i in range(20_000)]
    lake.commit_batch({TABLE: _clicks(rows)}, [], {})
    keys = CommittedKeys(lake, stored_rows_min=1_000)
    before = pa.total_allocated_bytes()
    window = [(T0, T0 + timedelta(days=1))]
    assert keys.lookup(TABLE, window) is not None
    [part] = keys._tables[TABLE].days[T0.date()]
    assert part.rows.num_rows == 20_000 and part.rows.nbytes > 20_000 * 40
    assert pa.total_allocated_bytes() - before < part.rows.nbytes // 4
    for array in (part._order, part._sorted):  # views of a mapping, not arrays of the heap
        assert len(array) == 20_000 and not array.flags.owndata and not array.flags.writeable
    wanted = np.unique(key_hashes(pa.array(["event-000000000007", "nope"])))
    found = keys.matching(TABLE, wanted, window)
    assert found is not None and found.column("event_id").to_pylist() == ["event-000000000007"]
    # Its mapping is one util.mapped lets go of the pages of (and forgets with the rows).
    import gc

    from advertisex.util.mapped import release_pages

    gc.collect()  # mappings an earlier test left to the collector are not this one's
    held = release_pages()
    del keys, part, found, array
    gc.collect()
    assert release_pages() == held - 2  # the rows' file and the index's


def test_parts_merged_as_batches_come_keep_their_index_mapped_too(tmp_path: Path) -> None:
    """Micro-batches' parts merge as they pile up (``append_part``): once a merged part is
    stored, its index is mapped with it, and finds the same rows."""
    from advertisex.kernels.dedupe import KeyIndex, append_part
    from advertisex.runners.committed import MappedRows

    store = MappedRows(100, tmp_path)
    parts: list[KeyIndex] = []
    for batch in range(8):
        rows = pa.table({"k": [f"k{batch}-{i}" for i in range(40)]})
        parts = append_part(parts, KeyIndex(rows, key_hashes(rows.column("k"))), store=store)
    stored = [p for p in parts if len(p) >= 100]
    assert stored and not list(tmp_path.iterdir())
    assert all(not p._sorted.flags.owndata and not p._order.flags.owndata for p in stored)
    assert all(p._sorted.flags.owndata for p in parts if len(p) < 100)  # small: in memory
    wanted = np.unique(key_hashes(pa.array(["k0-3", "k7-39", "k9-0"])))
    found = [k for p in parts for k in p.matching(wanted).column("k").to_pylist()]
    assert found == ["k0-3", "k7-39"]


def test_mapped_rows_leave_no_file_behind(tmp_path: Path) -> None:
    from advertisex.runners.committed import MappedRows

    store = MappedRows(1, tmp_path)
    rows = _clicks([(f"e{i}", i) for i in range(100)])
    mapped = store(rows)
    assert mapped.equals(rows) and not list(tmp_path.iterdir())

    def failing() -> Any:
        yield rows
        raise OSError("the read broke off")

    with pytest.raises(OSError):
        store.written(failing(), rows.schema, lambda part: np.zeros(part.num_rows, np.uint64))
    assert not list(tmp_path.iterdir())


def test_a_keys_file_a_killed_writer_left_is_swept_and_one_being_written_is_not(
    tmp_path: Path,
) -> None:
    import os

    from advertisex.config import load_settings
    from advertisex.lake.tables import Lake
    from advertisex.runners.committed import KEYS_PREFIX, CommittedKeys, MappedRows
    from advertisex.util.spill import claimed_file

    left = tmp_path / f"{KEYS_PREFIX}killed.arrow"  # its writer's lock went with it
    left.write_bytes(b"half a part")
    claim, in_use = claimed_file(KEYS_PREFIX, ".arrow", tmp_path)  # another writer's
    try:
        MappedRows(1, tmp_path)
        assert not left.exists() and in_use.exists()
    finally:
        in_use.unlink()
        os.close(claim)
    lake = Lake(load_settings(data_dir=tmp_path / "data"))
    assert CommittedKeys(lake)._store.directory == lake.settings.spill_dir


def test_a_full_disk_while_storing_keys_is_the_batchs_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from advertisex.errors import StorageError
    from advertisex.runners.committed import MappedRows

    def no_space(*_: Any, **__: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pa.ipc, "new_file", no_space)
    with pytest.raises(StorageError, match=r"cannot write the dedupe keys under .*: No space"):
        MappedRows(1, tmp_path)(_clicks([(f"e{i}", i) for i in range(10)]))
    assert not list(tmp_path.iterdir())  # the file claimed for them removed
    monkeypatch.undo()
    taken = tmp_path / "spill"
    taken.write_text("not a folder")  # nor one it can make: the same one line, no crash
    with pytest.raises(StorageError, match=r"cannot write the dedupe keys under .*spill: File"):
        MappedRows(1, taken)(_clicks([("e1", 1)]))


def test_events_decades_apart_read_only_the_days_of_their_horizons(tmp_path: Path) -> None:
    """A batch holding an event of 1970-01-01 (a producer's "no time") among this month's
    is compared with the keys committed within the horizon of each — not with those of
    every day between, which the lookup read a day at a time (≈ 20,500 days: 53 s for a
    batch of two impressions)."""
    from advertisex.runners.committed import DedupeLookup

    lake = Lake(load_settings(data_dir=tmp_path / "data"))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    hours_before = (T0 - epoch) // timedelta(hours=1)
    committed = [("near-epoch", 48 - hours_before), ("in-1990", 24 * 7300 - hours_before)]
    lake.commit_batch({TABLE: _clicks([*committed, ("near-now", -30)])}, [], {})
    lookup = DedupeLookup(lake, timedelta(days=7), CommittedKeys(lake))
    candidates = pa.table({"event_time": pa.array([epoch, T0], pa.timestamp("us", "UTC"))})
    wanted = np.unique(key_hashes(pa.array(["near-epoch", "in-1990", "near-now"])))
    found = lookup(TABLE, candidates, wanted)
    assert found is not None
    assert sorted(found.column("event_id").to_pylist()) == ["near-epoch", "near-now"]
    assert len(lookup.keys._tables[TABLE].days) == 2 * 15  # two horizons' days, no more


def test_a_days_read_takes_files_written_before_a_day_partition(tmp_path: Path) -> None:
    """``Lake.read_days`` splits a table's files by their day partition; files of a spec
    without one (a table whose partitioning changed) are read a day at a time by filter."""
    lake = Lake(load_settings(data_dir=tmp_path / "data"))
    lake.commit_batch({TABLE: _clicks([("a", 5), ("b", 30)])}, [], {})
    fields = ("event_id", "event_time")
    by_day = lake.read_days(TABLE, T0.date(), (T0 + timedelta(days=3)).date(), fields)
    assert {day: read.table().column("event_id").to_pylist() for day, read in by_day.items()} == {
        T0.date(): ["a"],
        (T0 + timedelta(days=1)).date(): ["b"],
    }
    table = lake.table(TABLE)
    with table.update_spec() as update:
        update.remove_field("event_time_day")
    lake.refresh()
    lake.commit_batch({TABLE: _clicks([("c", 6), ("d", 80)])}, [], {})
    by_day = lake.read_days(TABLE, T0.date(), (T0 + timedelta(days=3)).date(), fields)
    assert {
        day: sorted(read.table().column("event_id").to_pylist()) for day, read in by_day.items()
    } == {
        T0.date(): ["a", "c"],
        (T0 + timedelta(days=1)).date(): ["b"],
        (T0 + timedelta(days=3)).date(): ["d"],
    }
