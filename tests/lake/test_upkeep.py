"""Lake upkeep: merged manifests, compaction, snapshot expiry, orphans, retention.

Whatever maintenance does, every table reads the same rows as a copy of it that was
never maintained; and no file a snapshot still references is ever deleted.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advertisex.config import load_settings
from advertisex.lake.expiry import _key
from advertisex.lake.history import live_files, referenced
from advertisex.lake.tables import Lake
from advertisex.lake.upkeep import maintain
from advertisex.model.schemas import CLICKS, QUARANTINE

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 12, 12, tzinfo=UTC)
EAGER = {"min_input_files": 2, "snapshot_max_age_hours": 0, "min_snapshots": 1}


def _lake(data: Path, **sections: Any) -> Lake:
    return Lake(load_settings(data_dir=data, correlation={"update_marts": False}, **sections))


def _batch(first: int, hours: list[int]) -> dict[str, pa.Table]:
    """Clicks (and a quarantined record for each) at ``hours`` after T0."""
    clicks = [
        {
            "event_id": f"e{first + i}",
            "event_time": T0 + timedelta(hours=h),
            "user_id": f"u{(first + i) % 5}",
            "campaign_id": f"c{h % 3}",
            "payload_hash": f"h{first + i}",
            "ingest_time": T0 + timedelta(hours=h),
            "source_file": "f",
            "source_position": i,
            "batch_id": f"b{first}",
        }
        for i, h in enumerate(hours)
    ]
    rejects = [
        {
            "source": "clicks",
            "reasons": ["bad"],
            "raw": f"raw {c['event_id']}",
            "ingest_time": c["ingest_time"],
            "source_file": "f",
            "source_position": 0,
            "batch_id": c["batch_id"],
        }
        for c in clicks
    ]
    return {
        "curated.clicks": pa.Table.from_pylist(clicks, schema=CLICKS),
        "curated.quarantine": pa.Table.from_pylist(rejects, schema=QUARANTINE),
    }


def _rows(lake: Lake, name: str) -> list[str]:
    lake.refresh()
    return sorted(map(repr, lake.read(name).to_pylist()))


def _dangling(lake: Lake) -> list[str]:
    """Files some snapshot references that are not on disk (must always be none)."""
    lake.refresh()
    missing = []
    for name in ("curated.clicks", "curated.quarantine"):
        for url in referenced(lake.table(name)).all():
            if not Path(_key(url)).exists():
                missing.append(url)
    return missing


def test_merged_manifests_stay_few_however_many_commits(tmp_path: Path) -> None:
    counts = {}
    for merge in (True, False):
        upkeep = {"manifest_merge": merge, "manifest_min_count_to_merge": 3}
        lake = _lake(tmp_path / str(merge), maintenance=upkeep)
        for b in range(8):
            lake.commit_batch({"curated.clicks": _batch(b * 10, [b])["curated.clicks"]}, [], {})
        table = lake.table("curated.clicks")
        counts[merge] = len(table.current_snapshot().manifests(table.io))
        assert lake.read("curated.clicks").num_rows == 8
    assert counts[False] == 8
    assert counts[True] <= 3


def test_a_commit_works_out_each_table_metadata_once_per_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyiceberg copies a table's whole metadata — every snapshot time travel keeps — at
    each look: a commit looks once per change, not some twenty times per table, and
    never through pyiceberg's deep copy."""
    import pyiceberg.catalog as iceberg_catalog
    import pyiceberg.table as iceberg

    from advertisex.lake import catalog, transaction

    lake = _lake(tmp_path / "data")
    lake.commit_batch(_batch(0, [0, 30]), [], {})
    looks: list[int] = []
    work_out = transaction.updated_metadata

    def counted(*args: Any, **kwargs: Any) -> Any:
        looks.append(1)
        return work_out(*args, **kwargs)

    def deep_copied(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a commit went through pyiceberg's deep-copying update")

    for module in (transaction, catalog):
        monkeypatch.setattr(module, "updated_metadata", counted)
    for module in (iceberg, iceberg_catalog):
        monkeypatch.setattr(module, "update_table_metadata", deep_copied)
    lake.commit_batch(_batch(100, [4, 40]), [], {})  # two tables, two day files each
    # Per table: the transaction's own view, then the catalog staging the commit.
    assert 0 < len(looks) <= 2 * 3, len(looks)  # pyiceberg alone: 44
    assert len(_rows(lake, "curated.clicks")) == 4


def test_a_table_metadata_file_is_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a table whose metadata location has not moved reuses what was read (or
    staged) before: parsing a metadata.json that lists every snapshot kept was most of
    opening a table, which a batch does several times per table."""
    from pyiceberg.serializers import FromInputFile

    lake = _lake(tmp_path / "data")
    lake.commit_batch(_batch(0, [0, 30]), [], {})
    parsed: list[str] = []
    parse = FromInputFile.table_metadata

    def counted(input_file: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(input_file.location)
        return parse(input_file, *args, **kwargs)

    monkeypatch.setattr(FromInputFile, "table_metadata", staticmethod(counted))
    for b in range(1, 4):
        lake.commit_batch(_batch(b * 10, [b]), [], {})
        lake.refresh()
        assert len(_rows(lake, "curated.clicks")) == 2 + b
    assert parsed == []  # every version was staged here, so known by its location
    other = _lake(tmp_path / "data")  # another process: reads each version once
    assert len(_rows(other, "curated.clicks")) == 5
    other.refresh()
    assert len(_rows(other, "curated.clicks")) == 5
    assert len(parsed) == len(set(parsed)) > 0


step = st.one_of(
    st.tuples(st.just("batch"), st.lists(st.integers(0, 24 * 4), min_size=1, max_size=8)),
    st.tuples(st.just("maintain"), st.booleans()),
)


@pytest.mark.slow
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=2, max_size=7))
def test_compaction_and_expiry_never_change_the_rows(tmp_path: Path, steps: list) -> None:
    run = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
    kept, plain = _lake(run / "kept", maintenance=EAGER), _lake(run / "plain")
    made = 0
    for kind, arg in steps:
        if kind == "batch":
            kept.commit_batch(_batch(made, arg), [], {})
            plain.commit_batch(_batch(made, arg), [], {})
            made += len(arg)
        else:  # arg: run maintenance "days later" (every snapshot old) or now
            later = datetime.now(UTC) + timedelta(days=2) if arg else None
            report = maintain(kept, now=later)
            assert [t.error for t in report.tables if t.error] == []
            assert _dangling(kept) == []
    for name in ("curated.clicks", "curated.quarantine"):
        assert _rows(kept, name) == _rows(plain, name)


def test_a_compacted_partition_is_one_sorted_file_and_old_files_go_with_their_snapshots(
    tmp_path: Path,
) -> None:
    lake = _lake(tmp_path / "data", maintenance=EAGER)
    for b in range(6):
        lake.commit_batch(_batch(b * 10, [1, 30, 2, 5]), [], {})
    clicks = lake.table("curated.clicks")
    small = {f.file_path for f in live_files(clicks)}
    assert len(small) == 12  # 6 batches × 2 event days

    report = maintain(lake, tables=["curated.clicks"], now=datetime.now(UTC) + timedelta(days=2))
    (done,) = report.tables
    assert (done.files_compacted, done.files_written) == (12, 2)
    assert (done.data_files_before, done.data_files_after) == (12, 2)
    assert done.snapshots_expired == 6 and done.files_deleted >= 12
    lake.refresh()
    clicks = lake.table("curated.clicks")
    assert len(clicks.metadata.snapshots) == 1
    assert not any(Path(_key(p)).exists() for p in small)  # replaced, then expired
    for data_file in live_files(clicks):
        rows = pq.read_table(_key(data_file.file_path)).select(["campaign_id", "event_time"])
        ordered = rows.sort_by([("campaign_id", "ascending"), ("event_time", "ascending")])
        assert rows.equals(ordered)  # the table's sort order
    assert lake.read("curated.clicks").num_rows == 24


def test_a_compaction_group_holds_no_more_decoded_rows_than_its_budget(tmp_path: Path) -> None:
    """A group is read whole to be sorted: it is cut where its rows, decoded, would pass
    ``maintenance.compaction_group_bytes`` (a heavy day compacts into more files, each sorted),
    whatever its Parquet bytes."""
    from advertisex.lake import compaction

    budget = {**EAGER, "compaction_group_bytes": 1 << 20}
    lake = _lake(tmp_path / "data", maintenance=budget)
    for b in range(8):  # ≈ 5,000 clicks a batch in one day: ≈ 1 MiB decoded each
        lake.commit_batch(_batch(b * 10_000, [h % 20 for h in range(5_000)]), [], {})
    clicks = lake.table("curated.clicks")
    work = compaction.plan(clicks, lake.settings)
    row = compaction._row_bytes(work.groups[0], lake.settings)
    decoded = [sum(f.record_count for f in group) * row for group in work.groups]
    assert len(work.groups) >= 2 and all(len(g) > 1 for g in work.groups)
    assert max(decoded) <= 1 << 20 < sum(decoded)
    report = maintain(lake, tables=["curated.clicks"], now=datetime.now(UTC) + timedelta(days=2))
    assert report.tables[0].files_written == len(work.groups)
    assert lake.read("curated.clicks").num_rows == 40_000


def test_time_travel_is_kept_for_the_configured_age_and_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyiceberg.table as iceberg

    # Without thinning (a step of 0): the age and the count alone.
    upkeep = {"min_snapshots": 3, "min_input_files": 99, "time_travel_step_minutes": 0}
    lake = _lake(tmp_path / "data", maintenance=upkeep)
    for b in range(5):
        lake.commit_batch(_batch(b * 10, [b]), [], {})
    assert maintain(lake, tables=["curated.clicks"]).tables[0].snapshots_expired == 0  # < 24 h

    def deep_copied(*args: Any, **kwargs: Any) -> Any:
        # pyiceberg's expire_snapshots looks at (deep-copies) the whole metadata twice per
        # snapshot it expires: minutes per table when a follower keeps hundreds.
        raise AssertionError("expiry went through pyiceberg's deep-copying update")

    monkeypatch.setattr(iceberg, "update_table_metadata", deep_copied)
    later = maintain(lake, tables=["curated.clicks"], now=datetime.now(UTC) + timedelta(days=2))
    assert later.tables[0].snapshots_expired == 2
    lake.refresh()
    assert len(lake.table("curated.clicks").metadata.snapshots) == 3
    assert _dangling(lake) == []


def test_orphans_are_deleted_only_past_the_safety_margin(tmp_path: Path) -> None:
    lake = _lake(tmp_path / "data")
    lake.commit_batch(_batch(0, [1, 2]), [], {})
    folder = Path(_key(lake.table("curated.clicks").location())) / "data" / "event_time_day=x"
    folder.mkdir(parents=True)
    old, fresh = folder / "crashed-batch.parquet", folder / "in-flight.parquet"
    for path in (old, fresh):
        pq.write_table(pa.table({"a": [1]}), path)
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))

    dry = maintain(lake, tables=["curated.clicks"], dry_run=True)
    assert dry.tables[0].orphans_deleted == 1 and old.exists()
    report = maintain(lake, tables=["curated.clicks"])
    assert report.tables[0].orphans_deleted == 1
    assert not old.exists() and fresh.exists()
    assert _dangling(lake) == [] and lake.read("curated.clicks").num_rows == 2


def test_retention_deletes_exactly_the_expired_partitions(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    retention = {"days": {"curated.clicks": 8}, "archive": str(archive)}
    lake = _lake(tmp_path / "data", retention=retention)
    hours = [24 * day + 3 for day in range(12)]  # one click a day, 2026-11-01 … 11-12
    lake.commit_batch(_batch(0, hours), [], {})
    report = maintain(lake, tables=["curated.clicks", "curated.quarantine"], now=NOW)
    clicks, quarantine = report.tables
    assert (clicks.partitions_expired, clicks.rows_expired, clicks.archived) == (4, 4, 4)
    assert quarantine.partitions_expired == 0  # no retention configured for it

    days = {r["event_time"].date() for r in lake.read("curated.clicks").to_pylist()}
    assert sorted(days) == [(NOW - timedelta(days=k)).date() for k in range(7, -1, -1)]
    assert lake.read("curated.quarantine").num_rows == 12
    archived = pa.concat_tables(
        [pq.read_table(p) for p in sorted(archive.rglob("*.parquet"))]
    ).to_pylist()
    assert sorted(r["event_id"] for r in archived) == ["e0", "e1", "e2", "e3"]
    assert sorted(p.parent.name for p in archive.rglob("*.parquet"))[0] == (
        "event_time_day=2026-11-01"
    )
    # The accounting stays: retention never touches ops.batches.
    assert maintain(lake, now=NOW).total("rows_expired") == 0


def test_landing_retention_keeps_pending_segments(tmp_path: Path) -> None:
    from advertisex.lake.catalog import SegmentDone
    from advertisex.landing.zone import LandingZone

    archive = tmp_path / "archive"
    lake = _lake(tmp_path / "data", retention={"landing_days": 10, "archive": str(archive)})
    landing = LandingZone(tmp_path / "data" / "landing")
    old_done = landing.write_segment("clicks", b"a\n", at=NOW - timedelta(days=20))
    old_pending = landing.write_segment("clicks", b"b\n", at=NOW - timedelta(days=20))
    new_done = landing.write_segment("clicks", b"c\n", at=NOW - timedelta(days=2))
    marks = [SegmentDone(s.name, "clicks", "b", 1, 2, "t") for s in (old_done, new_done)]
    lake.commit_batch({}, marks, {})

    report = maintain(lake, landing, now=NOW)
    (row,) = [t for t in report.tables if t.table == "landing"]
    assert (row.files_deleted, row.archived) == (1, 1)
    assert {s.name for s in landing.segments()} == {old_pending.name, new_done.name}
    assert (archive / "landing" / old_done.name).read_bytes() == b"a\n"


def test_archived_copies_are_on_the_disk_before_their_originals_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine dying after the deletion must not take the archive's only copy with it.
    from advertisex.lake import durability
    from advertisex.lake.catalog import SegmentDone
    from advertisex.landing.zone import LandingZone

    archive = tmp_path / "archive"
    retention = {"days": {"curated.clicks": 8}, "landing_days": 10, "archive": str(archive)}
    lake = _lake(tmp_path / "data", retention=retention)
    landing = LandingZone(tmp_path / "data" / "landing")
    old = landing.write_segment("clicks", b"a\n", at=NOW - timedelta(days=20))
    lake.commit_batch(
        _batch(0, [3, 24 * 11 + 3]), [SegmentDone(old.name, "clicks", "b", 1, 2, "t")], {}
    )
    synced: list[str] = []
    real = durability._fsync
    monkeypatch.setattr(durability, "_fsync", lambda path: (synced.append(path), real(path)))

    maintain(lake, landing, now=NOW)
    copies = sorted(str(p) for p in archive.rglob("*") if p.is_file())
    assert len(copies) == 2  # the expired day's data file and the landing segment
    assert set(copies) <= set(synced)
    assert str(archive / "landing" / "clicks") in synced  # a new name is its folder's data


def test_landing_retention_keeps_a_file_set_aside_until_it_is_replayed(tmp_path: Path) -> None:
    from advertisex.lake.catalog import SegmentDone
    from advertisex.landing.zone import LandingZone
    from advertisex.runners.runner import Unreadable, set_aside_rows

    lake = _lake(tmp_path / "data", retention={"landing_days": 10})
    landing = LandingZone(tmp_path / "data" / "landing")
    old = landing.write_segment("clicks", b"a\n", at=NOW - timedelta(days=20))
    aside = landing.write_segment("clicks", b"b\n", at=NOW - timedelta(days=20))
    marks = [SegmentDone(s.name, "clicks", "b", 1, 2, "t") for s in (old, aside)]
    entry = set_aside_rows("b", [Unreadable(aside, "decode_timeout: stopped after 30 s")])
    lake.commit_batch({"curated.quarantine": entry}, marks, {})

    maintain(lake, landing, now=NOW)
    assert {s.name for s in landing.segments()} == {aside.name}  # kept for its replay


def test_every_run_is_recorded(tmp_path: Path) -> None:
    from advertisex.lake.upkeep import last_finished, last_runs

    lake = _lake(tmp_path / "data")
    lake.commit_batch(_batch(0, [1]), [], {})
    assert last_finished(lake) is None
    maintain(lake, dry_run=True)
    assert last_finished(lake) is None  # a dry run changes nothing, not even the record
    steps: list[tuple[str, int, int]] = []  # what the progress bar of `maintain` shows
    report = maintain(lake, trigger="schedule", progress=lambda *step: steps.append(step))
    rows = last_runs(lake).to_pylist()
    assert {r["table"] for r in rows} == {"curated.clicks", "curated.quarantine", "ops.maintenance"}
    assert sorted(s[0] for s in steps[:-1]) == sorted(r["table"] for r in rows)
    assert [s[1:] for s in steps] == [(0, 3), (1, 3), (2, 3), (3, 3)] and steps[-1][0] == "done"
    assert {r["run_id"] for r in rows} == {report.run_id}
    assert {r["trigger"] for r in rows} == {"schedule"}
    assert last_finished(lake) == report.finished_at
    stopping = threading.Event()
    stopping.set()  # a follower told to stop: the run ends before the next table
    assert maintain(lake, stop=stopping).tables == []


def test_health_read_from_the_metadata_is_what_pyiceberg_reads(tmp_path: Path) -> None:
    """``status`` reads lake health from the metadata files (no pyiceberg, no SQLAlchemy):
    the same rows as through pyiceberg, after commits, compactions and two runs."""
    from advertisex.lake.compaction import SMALL
    from advertisex.lake.listing import table_looks
    from advertisex.lake.upkeep import _planned_health, health

    lake = _lake(tmp_path / "data", maintenance=EAGER)
    lake.commit_batch(_batch(0, [1, 2]), [], {})
    lake.commit_batch(_batch(2, [1, 30]), [], {})
    maintain(lake)
    lake.commit_batch(_batch(4, [5]), [], {})
    maintain(lake)
    lake.commit_batch(_batch(5, [6]), [], {})
    settings = lake.settings
    assert table_looks(settings.catalog_uri, settings.lake.catalog_name, ["ops.batches"]) == {}
    small = SMALL * settings.maintenance.target_file_bytes
    read = health(lake)
    assert read == _planned_health(lake, small)
    clicks = next(row for row in read if row["table"] == "curated.clicks")
    assert clicks["data_files"] == 3 and clicks["last_maintenance"] is not None


class _Snapshots:
    """A table's snapshot list, for the expiry rules alone (one ``every``, by default a
    minute, parent-linked)."""

    def __init__(self, count: int, now: datetime, every: timedelta = timedelta(minutes=1)) -> None:
        from types import SimpleNamespace

        self.list = [
            SimpleNamespace(
                snapshot_id=k,
                parent_snapshot_id=k - 1 if k else None,
                timestamp_ms=int((now - every * (count - k)).timestamp() * 1000),
            )
            for k in range(count + 1)
        ]
        by_id = {s.snapshot_id: s for s in self.list}
        self.metadata = SimpleNamespace(snapshots=self.list, refs={}, snapshot_by_id=by_id.get)

    def current_snapshot(self) -> Any:
        return self.list[-1]


def test_time_travel_reaches_every_instant_of_the_window_to_within_a_step() -> None:
    from advertisex.lake.expiry import expired_snapshots

    settings = load_settings(maintenance={"time_travel_step_minutes": 5})
    table = _Snapshots(30 * 60, NOW)  # 30 hours of a commit a minute
    doomed = set(expired_snapshots(table, settings, NOW))
    kept = [s for s in table.list if s.snapshot_id not in doomed]
    # Not 1,441: a step each beyond the last hour, a minute each within it.
    assert 24 * 60 // 5 <= len(kept) <= 23 * 60 // 5 + 60 + 12
    stamps = [s.timestamp_ms for s in kept]
    for minutes_ago in range(24 * 60 - 5):  # AS OF any instant: a snapshot at most a step older
        at = int((NOW - timedelta(minutes=minutes_ago)).timestamp() * 1000)
        assert at - max(t for t in stamps if t <= at) <= 5 * 60_000
    assert all(s.snapshot_id not in doomed for s in table.list[-5:])  # the last step: all
    # A reader following the table from snapshot 1,700 (the marts) keeps its chain whole.
    followed = set(expired_snapshots(table, settings, NOW, keep=frozenset({1700})))
    assert not followed & set(range(1700, 30 * 60 + 1)) and followed < doomed


@pytest.mark.parametrize("every_ms", [250, 1_000, 7_000, 60_000])
def test_the_snapshots_kept_are_bounded_however_fast_commits_come(every_ms: int) -> None:
    """min_snapshots + 12 (5 s each in the last minute) + 60 (a minute each in the last
    hour) + 23 h / step, at 4 commits a second as at one a minute."""
    from advertisex.lake.expiry import expired_snapshots

    settings = load_settings(maintenance={"time_travel_step_minutes": 5, "min_snapshots": 10})
    count = min(30 * 3_600_000 // every_ms, 40_000)  # 30 h, or the last 40,000 commits
    table = _Snapshots(count, NOW, timedelta(milliseconds=every_ms))
    doomed = set(expired_snapshots(table, settings, NOW))
    kept = [s for s in table.list if s.snapshot_id not in doomed]
    assert len(kept) <= 10 + 12 + 1 + 60 + 1 + 23 * 60 // 5 + 1
    newest = [s.snapshot_id for s in table.list[-10:]]
    assert not doomed & set(newest)  # the last 10, whatever their age


def test_commits_thin_their_tables_without_robbing_a_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every few commits a table is thinned in its metadata (a burst of commits keeps the
    newest few and one per 5 s): a reader that planned an older snapshot reads it whole,
    the marts' position stays, and maintenance deletes what thinning left behind."""
    # The burst in one time bucket, whatever the clock: on a loaded machine the commits
    # below spanned more than one 5 s bucket and each bucket's newest was rightly kept
    # (the grades themselves are pinned above, against a fixed clock).
    monkeypatch.setattr("advertisex.lake.expiry._bucket", lambda age, timestamp, step: (0, 0))
    upkeep = {"expire_every_commits": 4, "min_snapshots": 2, "min_input_files": 99}
    lake = _lake(tmp_path / "data", maintenance=upkeep)
    lake.commit_batch(_batch(0, [1]), [], {})
    followed = lake.table("curated.clicks").current_snapshot().snapshot_id
    lake.followed = lambda: {"curated.clicks": frozenset({followed})}
    lake.commit_batch(_batch(10, [2]), [], {})
    reader = lake.table("curated.quarantine")  # plans its second snapshot, then waits
    pinned = reader.current_snapshot().snapshot_id
    for b in range(2, 12):
        lake.commit_batch(_batch(b * 10, [b]), [], {})
    lake.refresh()
    clicks = lake.table("curated.clicks").metadata.snapshots
    quarantine = lake.table("curated.quarantine").metadata.snapshots
    assert len(clicks) == 12  # the marts follow clicks from its first: all kept
    assert len(quarantine) <= 2 + 2 and pinned not in {s.snapshot_id for s in quarantine}
    assert reader.scan(snapshot_id=pinned).to_arrow().num_rows == 2  # no file of it deleted
    assert len(_rows(lake, "curated.quarantine")) == 12
    later = maintain(lake, now=datetime.now(UTC) + timedelta(minutes=11))
    assert sum(t.orphans_deleted for t in later.tables) >= 8  # thinned snapshots' lists
    assert _dangling(lake) == [] and len(_rows(lake, "curated.clicks")) == 12


def test_a_read_of_a_snapshot_expired_meanwhile_is_a_conflict_to_retry(tmp_path: Path) -> None:
    """Maintenance in another process deleted the files of the snapshot this lake's
    metadata still names: the read is retried on fresh metadata, not a crash."""
    from advertisex.errors import CommitConflictError, TransientError

    lake = _lake(tmp_path / "data")
    lake.commit_batch(_batch(0, [1, 2]), [], {})
    stale = lake.table("curated.clicks").current_snapshot()
    _lake(tmp_path / "data").commit_batch(_batch(10, [3]), [], {})  # another process
    Path(_key(stale.manifest_list)).unlink()  # as expiry does once the snapshot is gone
    with pytest.raises(CommitConflictError, match="changed while it was read") as raised:
        lake.read("curated.clicks")
    assert isinstance(raised.value, TransientError)  # the runner's batch retry takes it
    lake.refresh()
    assert lake.read("curated.clicks").num_rows == 3  # the files now live


def test_maintain_packs_the_old_index_markers_of_ingested_files(ax, tmp_path: Path) -> None:
    from advertisex.landing.zone import PACK_MARKERS_AFTER, content_hash, marker

    f = tmp_path / "imps.ndjson"
    f.write_bytes(
        b'{"timestamp":"2026-11-02T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'
    )
    [first] = ax.ingest([str(f)])
    placed = ax.landing.root / marker(content_hash(f.read_bytes()))
    old = (datetime.now(UTC) - PACK_MARKERS_AFTER - timedelta(hours=1)).timestamp()
    os.utime(placed, (old, old))
    report = ax.maintain()
    assert [t.markers_packed for t in report.tables if t.table == "landing"] == [1]
    assert not placed.exists()
    [again] = ax.ingest([str(f)])
    assert again.status == "already" and again.segment == first.segment


def _watched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """("fsync" | "unlink", path) of every fsync and file deletion from now on, in order."""
    events: list[tuple[str, str]] = []
    fsync, unlink = os.fsync, Path.unlink

    def watched_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def watched_unlink(path: Path, missing_ok: bool = False) -> None:
        events.append(("unlink", str(path)))
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(os, "fsync", watched_fsync)
    monkeypatch.setattr(Path, "unlink", watched_unlink)
    return events


def _durable_before(events: list[tuple[str, str]], copy: Path, top: Path, moment: int) -> None:
    """``copy``, and every folder from its own up to ``top``'s parent, fsync'd before
    ``events[moment]``."""
    synced = {path for what, path in events[:moment] if what == "fsync"}
    needed = [copy, *[f for f in copy.parents if f == top or top in f.parents], top.parent]
    missing = [str(p) for p in needed if str(p) not in synced]
    assert not missing, f"not on the disk before {events[moment]}: {missing}"


def test_a_landing_segments_archive_copy_is_on_the_disk_before_it_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The copy was written and the original deleted at once: a power cut after could
    # leave neither (the copy's bytes, or its folders' names, never on the disk).
    from advertisex.lake.catalog import SegmentDone
    from advertisex.landing.zone import LandingZone

    archive = tmp_path / "archive"
    lake = _lake(tmp_path / "data", retention={"landing_days": 10, "archive": str(archive)})
    landing = LandingZone(tmp_path / "data" / "landing")
    old = [landing.write_segment("clicks", b"a\n", at=NOW - timedelta(days=20)) for _ in "ab"]
    lake.commit_batch({}, [SegmentDone(s.name, "clicks", "b", 1, 2, "t") for s in old], {})
    events = _watched(monkeypatch)
    report = maintain(lake, landing, now=NOW)
    monkeypatch.undo()
    (row,) = [t for t in report.tables if t.table == "landing"]
    assert (row.files_deleted, row.archived) == (2, 2)
    for segment in old:
        deleted = events.index(("unlink", str(landing.root / segment.name)))
        _durable_before(events, archive / "landing" / segment.name, archive, deleted)


def test_a_partitions_archive_copy_is_on_the_disk_before_retention_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Retention's commit lets the next expiry delete the files, in the same maintain run
    # when the snapshot before it is old enough: the copies must be on the disk first.
    from advertisex.lake import retention as retention_module

    archive = tmp_path / "archive"
    lake = _lake(
        tmp_path / "data",
        retention={"days": {"curated.clicks": 8}, "archive": str(archive)},
    )
    lake.commit_batch(_batch(0, [24 * day + 3 for day in range(12)]), [], {})
    events = _watched(monkeypatch)
    swap = retention_module.commit_swap

    def watched_swap(*args: Any, **kwargs: Any) -> None:
        events.append(("commit", ""))
        swap(*args, **kwargs)

    monkeypatch.setattr(retention_module, "commit_swap", watched_swap)
    report = maintain(lake, tables=["curated.clicks"], now=NOW)
    monkeypatch.undo()
    assert report.tables[0].archived == 4
    committed = events.index(("commit", ""))
    copies = sorted(archive.rglob("*.parquet"))
    assert len(copies) == 4
    for copy in copies:
        _durable_before(events, copy, archive, committed)


def test_a_table_left_as_it_was_is_said_in_one_line_and_the_raw_text_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``ops.maintenance.error`` (and so ``maintain``'s table and the console) held
    pyiceberg's own text — ``ValidationException: Requirement failed: branch main has
    changed: expected id 123, found 456`` — or a storage error's stack of paths: what
    failed and what to do, in one line, is stored; the raw text is in the log."""
    import errno
    import logging

    from pyiceberg.exceptions import ValidationException

    from advertisex.lake import compaction
    from advertisex.lake.upkeep import last_runs

    lake = _lake(tmp_path / "data", maintenance=EAGER)
    lake.commit_batch(_batch(0, [1, 2]), [], {})
    lake.commit_batch(_batch(10, [1, 2]), [], {})
    raw = "Requirement failed: branch main has changed: expected id 123, found 456"

    def lost(*args: Any, **kwargs: Any) -> int:
        raise ValidationException(raw)

    monkeypatch.setattr(compaction, "compact", lost)
    with caplog.at_level(logging.INFO, logger="advertisex.lake.upkeep"):
        report = maintain(lake, tables=["curated.clicks"])
    said = report.tables[0].error
    assert said == (
        "changed by another writer meanwhile (a batch, forget, a rebuild): left as it was; "
        "the next run tries again"
    )
    assert [r["error"] for r in last_runs(lake).to_pylist() if r["table"] == "curated.clicks"] == [
        said
    ]
    assert raw in caplog.text  # for whoever looks into it

    def broken(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EIO, "/very/long/path/of/a/file.parquet: pyarrow said IOError")

    monkeypatch.setattr(compaction, "compact", broken)
    caplog.clear()
    said = maintain(lake, tables=["curated.clicks"]).tables[0].error
    assert said is not None and "\n" not in said and "pyarrow said" not in said
    assert said.startswith("a file of the warehouse could not be read or written (Input/output")
    assert "pyarrow said IOError" in caplog.text
