"""The marts on real Iceberg tables: incremental commits, atomic state, rebuild after rewrites."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from mart_events import minutes, table

from advertisex.config import load_settings
from advertisex.lake.tables import Lake
from advertisex.marts import maintain
from advertisex.marts.iceberg import (
    IcebergCurated,
    IcebergMarts,
    WithoutRows,
    rebuild_marts,
    rules_for,
    update_marts,
)
from advertisex.marts.store import MemoryCurated, MemoryMarts

pytestmark = pytest.mark.integration

MARTS = [
    "marts.attributed_clicks",
    "marts.attributed_conversions",
    "marts.campaign_hourly",
    "marts.campaign_daily",
]


def _imp(k: int, user: str, at: int, **extra: Any) -> dict[str, Any]:
    return {
        "impression_id": f"imp-{k}",
        "event_time": minutes(at),
        "user_id": user,
        "campaign_id": "c0",
        "ad_creative_id": "a",
        "country": "US",
        "device_type": "mobile",
        "cost": 0.002,
        **extra,
    }


BATCHES: list[dict[str, list[dict[str, Any]]]] = [
    {  # a click and a conversion before the impression that explains them
        "curated.clicks": [
            {"event_id": "clk-1", "event_time": minutes(70), "user_id": "u1", "campaign_id": "c0"}
        ],
        "curated.conversions": [
            {
                "event_id": "cnv-1",
                "event_time": minutes(300),
                "user_id": "u1",
                "campaign_id": "c0",
                "conversion_value": 9.5,
            }
        ],
        "curated.bid_requests": [
            {
                "auction_id": "auc-1",
                "exchange": "x",
                "user_id": "u1",
                "event_time": minutes(59),
                "bid_price": 2.0,
                "floor_price": 1.0,
                "campaign_id": "c0",
            }
        ],
    },
    {"curated.impressions": [_imp(1, "u1", 60, auction_id="auc-1"), _imp(2, "u2", 61)]},
    {  # a late impression that takes the click over, and one for the view-through path
        "curated.impressions": [_imp(3, "u1", 65), _imp(4, "u3", 1500)],
        "curated.conversions": [
            {"event_id": "cnv-2", "event_time": minutes(1510), "user_id": "u3", "campaign_id": "c0"}
        ],
    },
]
CURATED = ["curated.impressions", "curated.clicks", "curated.conversions", "curated.bid_requests"]


def _batch(rows: dict[str, list[dict[str, Any]]]) -> dict[str, pa.Table]:
    return {name: table(name, rows.get(name, [])) for name in CURATED}


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(load_settings(data_dir=tmp_path / "data"))


@pytest.mark.slow
@pytest.mark.parametrize("upkeep", [False, True], ids=["plain", "compacted-between"])
@pytest.mark.parametrize("bucket_rows", [None, 2], ids=["whole", "a-bucket-at-a-time"])
def test_incremental_commits_equal_rebuild(
    tmp_path: Path, upkeep: bool, bucket_rows: int | None
) -> None:
    """``bucket_rows``: the steps run on buckets of two rows, read a record batch at a time
    from the data files (marts/local.py), with the marts of steps run whole."""
    from advertisex.lake.upkeep import maintain as maintain_lake
    from advertisex.marts.iceberg import IcebergCurated, positions
    from advertisex.marts.local import LocalKernels

    upkept = {"min_input_files": 2, "snapshot_max_age_hours": 0, "min_snapshots": 1}
    lake = Lake(load_settings(data_dir=tmp_path / "data", maintenance=upkept))
    settings = lake.settings
    modes, cut = [], []
    for rows in BATCHES:
        lake.commit_batch(_batch(rows), [], {})
        if upkeep:  # compaction and expiry between the marts' runs: still incremental
            report = maintain_lake(lake, tables=CURATED, keep=positions(lake))
            assert not [t.error for t in report.tables if t.error]
        kernels = None if bucket_rows is None else LocalKernels(IcebergCurated(lake), bucket_rows)
        done = update_marts(lake, settings, kernels)
        assert done is not None
        modes.append(done.mode)
        cut.append(kernels is not None and max(kernels.held.buckets) >= 2)
    assert modes == ["rebuild", "incremental", "incremental"]
    assert any(cut) == (bucket_rows is not None)

    everything, expected = MemoryCurated(), MemoryMarts()
    for rows in BATCHES:
        everything.append(_batch(rows))
    maintain.rebuild(everything, expected, rules_for(lake, settings))
    for name in MARTS:
        got = lake.read(name).cast(expected.tables[name].schema)
        assert sorted(map(repr, got.to_pylist())) == sorted(
            map(repr, expected.tables[name].to_pylist())
        ), name

    clicks = lake.read("marts.attributed_clicks").to_pylist()
    assert [(c["event_id"], c["match"], c["impression_id"]) for c in clicks] == [
        ("clk-1", "window", "imp-3")
    ]
    state = IcebergMarts(lake).state()
    snapshot = lake.table("curated.impressions").current_snapshot()
    assert snapshot is not None
    assert state["position:curated.impressions"] == str(snapshot.snapshot_id)


def test_nothing_new_changes_nothing(lake: Lake) -> None:
    lake.commit_batch(_batch(BATCHES[0]), [], {})
    update_marts(lake, lake.settings)
    before = lake.table("marts.campaign_hourly").current_snapshot()
    done = update_marts(lake, lake.settings)
    assert done is not None and done.mode == "unchanged"
    assert lake.table("marts.campaign_hourly").current_snapshot() == before


def test_rewritten_curated_rows_trigger_a_rebuild(lake: Lake) -> None:
    for rows in BATCHES[:2]:
        lake.commit_batch(_batch(rows), [], {})
    update_marts(lake, lake.settings)
    # A replay empties and refills a table: the marts cannot trust their positions.
    lake.table("curated.impressions").overwrite(_batch(BATCHES[1])["curated.impressions"])
    lake.refresh()
    done = update_marts(lake, lake.settings)
    assert done is not None and done.mode == "rebuild"


def test_rebuild_marts_replaces_everything(lake: Lake) -> None:
    for rows in BATCHES:
        lake.commit_batch(_batch(rows), [], {})
    first = rebuild_marts(lake, lake.settings)
    again = rebuild_marts(lake, lake.settings)
    assert first.clicks == again.clicks == 1
    assert lake.read("marts.attributed_conversions").num_rows == 2


def test_a_lake_spills_on_its_own_disk(lake: Lake) -> None:
    """A lake's marts spill under its data directory (a temporary folder may live in
    memory, which a spill is there to spare); tables in memory, in the temporary folder."""
    spill_dir = lake.settings.data_dir / "spill"
    assert maintain._local(IcebergCurated(lake)).spill_dir == spill_dir
    assert maintain._local(WithoutRows(IcebergCurated(lake), {})).spill_dir == spill_dir
    assert maintain._local(MemoryCurated()).spill_dir is None


def test_the_marts_tables_are_opened_while_the_marts_are_computed(lake: Lake) -> None:
    """A new lake's mart tables are created beside the first build, not on its commit: the
    attribution here waits until the catalog has all four (it would wait in vain if they
    were opened only to replace their rows), and the marts come out whole."""
    import time

    from advertisex.marts.local import LocalKernels

    class Watching(LocalKernels):
        seen: list[str] = []

        def correlate(self, *args: Any, **kwargs: Any) -> tuple[pa.Table, pa.Table]:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                self.seen = [name for name in MARTS if lake.catalog.table_exists(name)]
                if len(self.seen) == len(MARTS):
                    break
                time.sleep(0.01)
            return super().correlate(*args, **kwargs)

    lake.commit_batch(_batch(BATCHES[0]), [], {})
    assert not [name for name in MARTS if lake.catalog.table_exists(name)]
    # Reading a new lake's marts state and campaign windows makes no table.
    assert IcebergMarts(lake).state() == {} and rules_for(lake, lake.settings).campaigns is None
    assert not lake.catalog.table_exists("marts.state")
    assert not lake.catalog.table_exists("dims.campaigns")
    kernels = Watching(IcebergCurated(lake))
    done = update_marts(lake, lake.settings, kernels)
    assert done is not None and done.mode == "rebuild"
    assert kernels.seen == MARTS
    assert lake.read("marts.attributed_clicks").column("event_id").to_pylist() == ["clk-1"]
    assert lake.read("marts.campaign_daily").num_rows == 1
    committed = lake.data_files_of(MARTS)  # written beside or not, each file committed once
    for name in MARTS:
        assert _parquet_files(lake, name) == {str(Path(p)) for p in committed[name]}, name


def test_a_first_build_after_the_first_batch_reads_its_kept_rows_without_a_plan(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new lake's first batch kept the rows the marts read (``Lake.keep_written``): the
    marts' first build takes them without planning a read of the curated tables (their
    manifests), and computes the marts a build over the files does."""
    from advertisex.lake.tables import Lake as LakeClass
    from advertisex.marts.store import Slice

    every = {name: [row for rows in BATCHES for row in rows.get(name, [])] for name in CURATED}
    lake.keep_written(maintain.CURATED_READS, 1 << 30)
    lake.commit_batch(_batch(every), [], {})

    def no_plan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a read of the curated tables was planned")

    with monkeypatch.context() as patched:
        for name in ("read_planned", "read_within", "read_on_days"):
            patched.setattr(LakeClass, name, no_plan)
        curated = IcebergCurated(lake)
        impressions = "curated.impressions"
        columns = maintain.CURATED_READS[impressions]
        chunks = curated.chunks(impressions, Slice.everything(), columns)
        assert chunks.rows == len(every[impressions]) == chunks.whole().num_rows
        done = update_marts(lake, lake.settings)
    assert done is not None and done.mode == "rebuild"
    built = {name: lake.read(name) for name in MARTS}
    lake.forget_written()
    rebuild_marts(lake, lake.settings)  # the files read, planned
    for name in MARTS:
        assert _canonical(lake.read(name)) == _canonical(built[name]), name


def _canonical(rows: pa.Table) -> list[str]:
    return sorted(repr(row) for row in rows.to_pylist())


def _first_batch(lake: Lake) -> None:
    """Every batch's rows as one first batch of a new lake."""
    every = {name: [row for rows in BATCHES for row in rows.get(name, [])] for name in CURATED}
    lake.commit_batch(_batch(every), [], {})


def test_a_first_build_writes_every_mart_beside_and_plans_its_statistics_there(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new lake's first build writes each mart's files on the thread beside, the daily
    rollup's too, and works out there the statistics plan their commit takes: the commit
    on the update's serial tail plans only the state's."""
    import threading

    import pyiceberg.io.pyarrow as pyarrow_io

    _first_batch(lake)
    writers: dict[str, str] = {}
    planners: list[str] = []
    write_files = lake.write_files
    plan = pyarrow_io.compute_statistics_plan

    def watched_write(appends: Any, prefix: str) -> Any:
        writers.update(dict.fromkeys(appends, threading.current_thread().name))
        return write_files(appends, prefix)

    def watched_plan(*args: Any, **kwargs: Any) -> Any:
        planners.append(threading.current_thread().name)
        return plan(*args, **kwargs)

    monkeypatch.setattr(lake, "write_files", watched_write)
    monkeypatch.setattr(pyarrow_io, "compute_statistics_plan", watched_plan)
    done = update_marts(lake, lake.settings)
    assert done is not None and done.mode == "rebuild"
    assert all(writers[name].startswith("marts-beside") for name in MARTS), writers
    assert not writers["marts.state"].startswith("marts-beside")
    on_the_tail = [name for name in planners if not name.startswith("marts-beside")]
    assert len(on_the_tail) == 1 and len(planners) == len(MARTS) + 1, planners
    committed = lake.data_files_of(MARTS)
    for name in MARTS:
        assert _parquet_files(lake, name) == {str(Path(p)) for p in committed[name]}, name


def test_statistics_that_cannot_be_planned_beside_are_planned_by_the_commit(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning a mart's statistics beside is a head start only: failing there, it is done
    in the commit, and the update succeeds."""
    import threading

    from advertisex.lake import datafiles

    _first_batch(lake)
    data_file = datafiles.data_file
    failed: list[str] = []

    def not_beside(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith("marts-beside"):
            failed.append(args[2])
            raise RuntimeError("no plan beside")
        return data_file(*args, **kwargs)

    monkeypatch.setattr(datafiles, "data_file", not_beside)
    done = update_marts(lake, lake.settings)
    assert done is not None and done.mode == "rebuild" and failed
    assert lake.read("marts.campaign_hourly").num_rows == _hourly_rows_of_all(lake).num_rows


def test_the_commit_adds_the_other_marts_while_the_hourly_one_is_still_written(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hourly rollup's files, written beside, are taken last: the marts written before
    it are added to the commit meanwhile (this write waits until they are)."""
    import threading

    from advertisex.marts import iceberg

    _first_batch(lake)
    added: list[str] = []
    others_added = threading.Event()
    hourly_waited: list[bool] = []
    write_files = lake.write_files
    add_files = iceberg.add_files

    def slow_hourly(appends: Any, prefix: str) -> Any:
        if "marts.campaign_hourly" in appends:
            hourly_waited.append(others_added.wait(timeout=10))
        return write_files(appends, prefix)

    def watched_add(table: Any, *args: Any) -> Any:
        added.append(table.name()[-1])
        if {"attributed_clicks", "attributed_conversions", "state"} <= set(added):
            others_added.set()
        return add_files(table, *args)

    monkeypatch.setattr(lake, "write_files", slow_hourly)
    monkeypatch.setattr(iceberg, "add_files", watched_add)
    done = update_marts(lake, lake.settings)
    assert done is not None and done.mode == "rebuild"
    assert hourly_waited == [True]
    assert added[-2:] == ["campaign_hourly", "campaign_daily"]  # in the order offered
    assert lake.read("marts.campaign_hourly").num_rows == _hourly_rows_of_all(lake).num_rows


def _hourly_rows_of_all(lake: Lake) -> pa.Table:
    everything, built = MemoryCurated(), MemoryMarts()
    everything.append(
        _batch({n: [r for rows in BATCHES for r in rows.get(n, [])] for n in CURATED})
    )
    maintain.rebuild(everything, built, rules_for(lake, lake.settings))
    return built.tables["marts.campaign_hourly"]


def _parquet_files(lake: Lake, name: str) -> set[str]:
    namespace, table_name = name.split(".")
    folder = Path(lake.settings.warehouse_uri.removeprefix("file://")) / namespace / table_name
    return {str(p) for p in folder.rglob("*.parquet")}


def _hourly_rows(lake: Lake) -> pa.Table:
    """A first build's hourly rows, computed apart (the marts as rows in memory)."""
    everything, built = MemoryCurated(), MemoryMarts()
    everything.append(_batch(BATCHES[0]))
    maintain.rebuild(everything, built, rules_for(lake, lake.settings))
    return built.tables["marts.campaign_hourly"]


def test_a_rebuilt_marts_rows_are_written_when_offered_and_committed_as_written(lake: Lake) -> None:
    """Offered rows of a new mart are in data files before the commit, which commits those
    files: none written twice, none left over."""
    from concurrent.futures import ThreadPoolExecutor

    from advertisex.marts.store import Slice

    hourly = _hourly_rows(lake)
    with ThreadPoolExecutor(max_workers=1) as beside:
        marts = IcebergMarts(lake, beside)
        marts.offer("marts.campaign_hourly", hourly)
        beside.submit(lambda: None).result()  # what was queued before it is done
        early = _parquet_files(lake, "marts.campaign_hourly")
        assert early and lake.table("marts.campaign_hourly").current_snapshot() is None
        marts.replace({"marts.campaign_hourly": (Slice.everything(), hourly)}, {"k": "v"})
        marts.discard_offered()
    assert _parquet_files(lake, "marts.campaign_hourly") == early
    committed = lake.data_files_of(["marts.campaign_hourly"])["marts.campaign_hourly"]
    assert {str(Path(p)) for p in committed} == early
    assert lake.read("marts.campaign_hourly").num_rows == hourly.num_rows


def test_offered_rows_no_commit_takes_leave_no_file(lake: Lake) -> None:
    """Rows offered, then a failure before the commit (or other rows committed instead):
    the files written for them are removed."""
    from concurrent.futures import ThreadPoolExecutor

    from advertisex.marts.store import Slice

    hourly = _hourly_rows(lake)
    with ThreadPoolExecutor(max_workers=1) as beside:
        marts = IcebergMarts(lake, beside)
        marts.offer("marts.campaign_hourly", hourly)
        marts.discard_offered()
    assert not _parquet_files(lake, "marts.campaign_hourly")
    assert lake.table("marts.campaign_hourly").current_snapshot() is None

    other = hourly.slice(0, 1)
    with ThreadPoolExecutor(max_workers=1) as beside:
        marts = IcebergMarts(lake, beside)
        marts.offer("marts.campaign_hourly", hourly)
        marts.replace({"marts.campaign_hourly": (Slice.everything(), other)}, {"k": "v"})
    committed = lake.data_files_of(["marts.campaign_hourly"])["marts.campaign_hourly"]
    assert _parquet_files(lake, "marts.campaign_hourly") == {str(Path(p)) for p in committed}
    assert lake.read("marts.campaign_hourly").num_rows == 1


def test_a_mart_that_cannot_be_written_beside_fails_the_update_and_leaves_no_file(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hourly mart's files, written beside, meet a full disk: the update fails with the
    storage error, nothing is committed, and no mart keeps a file."""
    import threading

    from advertisex.errors import StorageError

    lake.commit_batch(_batch(BATCHES[0]), [], {})
    write_files = lake.write_files

    def full_disk(appends: Any, prefix: str) -> Any:
        if "marts.campaign_hourly" in appends and threading.current_thread().name.startswith(
            "marts-beside"
        ):
            raise StorageError("cannot write marts.campaign_hourly data: no space left on device")
        return write_files(appends, prefix)

    monkeypatch.setattr(lake, "write_files", full_disk)
    with pytest.raises(StorageError, match="no space left"):
        update_marts(lake, lake.settings)
    for name in MARTS:
        assert not _parquet_files(lake, name), name
        assert lake.table(name).current_snapshot() is None, name
    monkeypatch.undo()
    done = update_marts(lake, lake.settings)  # room again: the next update builds them
    assert done is not None and done.mode == "rebuild"
    assert lake.read("marts.campaign_hourly").num_rows > 0


def test_a_late_batch_over_many_days_replaces_the_marts_by_their_days(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Late clicks on eight days apart make a slice of eight runs of hours: more than
    ``FEW_RANGES``, so the marts' rows are read by the partitions of those days and replaced
    by rewriting those days' files, with no filter of eight clauses (or of the clicks'
    users) given to pyiceberg — which weighed each clause against every data file (60 late
    clicks over 200 days: 28 s). The days the batch does not reach keep their files, and
    the marts are those a rebuild makes."""
    from advertisex.marts import iceberg

    day = 24 * 60
    shown = [_imp(k, f"u{k}", 2 * k * day + 60) for k in range(12)]
    first = {"curated.impressions": shown}
    late = {
        "curated.clicks": [
            {"event_id": f"clk-{k}", "event_time": minutes(2 * k * day + 90), "user_id": f"u{k}",
             "campaign_id": "c0"}
            for k in range(0, 12, 3)
        ] + [
            {"event_id": f"clk-x{k}", "event_time": minutes(2 * k * day + 95), "user_id": "nobody",
             "campaign_id": "c0"}
            for k in range(1, 12, 3)
        ],
    }  # fmt: skip
    lake.commit_batch(_batch(first), [], {})
    assert update_marts(lake, lake.settings).mode == "rebuild"  # type: ignore[union-attr]
    hourly = "marts.campaign_hourly"
    before = {f.file.file_path for f in lake.table(hourly).scan().plan_files()}

    overwritten: list[str] = []
    overwrite = iceberg._overwrite
    monkeypatch.setattr(
        iceberg,
        "_overwrite",
        lambda table, *a: (overwritten.append(table.name()[-1]), overwrite(table, *a))[1],
    )
    lake.commit_batch(_batch(late), [], {})
    done = update_marts(lake, lake.settings)
    assert done is not None and done.mode == "incremental"
    assert "campaign_hourly" not in overwritten and "attributed_clicks" not in overwritten

    everything, expected = MemoryCurated(), MemoryMarts()
    for rows in (first, late):
        everything.append(_batch(rows))
    maintain.rebuild(everything, expected, rules_for(lake, lake.settings))
    for name in MARTS:
        got = lake.read(name).cast(expected.tables[name].schema)
        assert sorted(map(repr, got.to_pylist())) == sorted(
            map(repr, expected.tables[name].to_pylist())
        ), name
    after = {f.file.file_path for f in lake.table(hourly).scan().plan_files()}
    assert len(before & after) == 12 - 8  # four days with an impression and no click kept


def test_a_read_by_days_leaves_out_the_files_whose_times_meet_no_range(lake: Lake) -> None:
    """``Lake.read_on_days`` reads whole day partitions, but of those only the files whose
    event-time bounds meet one of the ranges asked for, as pyiceberg's plan would."""
    from advertisex.util.timeutil import to_micros

    for at in (60, 20 * 60, 25 * 60):  # two files on the first day, one on the next
        lake.commit_batch(_batch({"curated.impressions": [_imp(at, "u1", at)]}), [], {})
    first, second = minutes(0).date(), minutes(25 * 60).date()
    fields = ("impression_id", "event_time")

    def read(*within: tuple[int, int]) -> list[str]:
        planned = lake.read_on_days("curated.impressions", {first, second}, fields, within)
        return sorted(planned.table().column("impression_id").to_pylist())

    def hours(lo: int, hi: int) -> tuple[int, int]:
        return to_micros(minutes(lo * 60)), to_micros(minutes(hi * 60))

    assert read() == ["imp-1200", "imp-1500", "imp-60"]
    assert read(hours(0, 2)) == ["imp-60"]  # the day's other file is left out
    assert read(hours(0, 2), hours(24, 26)) == ["imp-1500", "imp-60"]
    assert read(hours(2, 19), hours(21, 24)) == []


def test_the_marts_files_keep_the_statistics_they_are_read_by(lake: Lake) -> None:
    """A mart's data files keep bounds of its partition and sort columns (and of
    ``user_id``, which an erasure passes files over by), not of every column: a backfill's
    first build writes a file a day a mart, and every column's cost ≈ 1 ms a file."""
    import pyarrow.parquet as pq

    for rows in BATCHES:
        lake.commit_batch(_batch(rows), [], {})
    update_marts(lake, lake.settings)

    def kept(name: str) -> set[str]:
        [path] = lake.data_files(name)[:1]
        metadata = pq.ParquetFile(path).metadata.row_group(0)
        columns = (metadata.column(i) for i in range(metadata.num_columns))
        return {c.path_in_schema for c in columns if c.is_stats_set}

    assert kept("marts.campaign_hourly") == {"campaign_id", "hour"}
    assert {"campaign_id", "event_time", "user_id"} == kept("marts.attributed_clicks")
    bounds = lake.table("marts.attributed_clicks").scan().plan_files()
    schema = lake.table("marts.attributed_clicks").schema()
    with_bounds = {schema.find_column_name(i) for t in bounds for i in t.file.lower_bounds}
    assert with_bounds == {"campaign_id", "event_time", "user_id"}


def test_an_update_that_loses_its_commit_to_another_is_done_again_on_fresh_tables(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``report refresh`` beside ``process`` (each brings the marts up to date): the one
    that committed second failed with "table metadata moved on while the commit was
    prepared (Added data files were found matching the filter for snapshots set()!)" and a
    hint that it was "retried on fresh metadata", which nothing did. The retry is quiet: a
    lost race is no warning (nothing logged at that level reaches a terminal)."""
    other = Lake(load_settings(data_dir=lake.settings.data_dir))
    lake.commit_batch(_batch(BATCHES[0]), [], {})
    update_marts(lake, lake.settings)
    lake.commit_batch(_batch(BATCHES[1]), [], {})
    replace, raced = IcebergMarts.replace, []

    def another_commits_first(self: IcebergMarts, *args: Any) -> None:
        if self.lake is lake and not raced:
            raced.append(update_marts(other, other.settings))
        replace(self, *args)

    monkeypatch.setattr(IcebergMarts, "replace", another_commits_first)
    caplog.set_level(logging.INFO, "advertisex.retry")
    done = update_marts(lake, lake.settings)
    assert raced[0] is not None and raced[0].mode == "incremental"
    assert done is not None and done.mode == "unchanged"  # done already, by the other
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("marts update failed" in r.getMessage() for r in caplog.records)  # it raced
    monkeypatch.undo()
    expected = {name: sorted(map(repr, lake.read(name).to_pylist())) for name in MARTS}
    rebuild_marts(lake, lake.settings)
    assert {name: sorted(map(repr, lake.read(name).to_pylist())) for name in MARTS} == expected
