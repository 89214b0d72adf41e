from datetime import UTC, datetime

import pyarrow as pa
import pytest

from advertisex.config import load_settings
from advertisex.errors import CommitConflictError, StorageError
from advertisex.lake.catalog import SegmentDone
from advertisex.lake.tables import Lake
from advertisex.model.schemas import BATCHES, CLICKS
from tests.catalog_race import lose_every_create_race

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _click(event_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "event_id": event_id,
                "event_time": NOW,
                "user_id": "u",
                "campaign_id": "c",
                "payload_hash": "h",
                "ingest_time": NOW,
                "source_file": "f",
                "source_position": 1,
                "batch_id": "b",
            }
        ],
        schema=CLICKS,
    )


def _batch_row(batch_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "batch_id": batch_id,
                "source": "clicks",
                "started_at": NOW,
                "committed_at": NOW,
                "files": 1,
                "bytes": 1,
                "records_in": 1,
                "accepted": 1,
                "quarantined": 0,
                "filtered": 0,
                "duplicates": 0,
                "conflicts": 0,
                "segments": ["s"],
            }
        ],
        schema=BATCHES,
    )


def _mark(segment: str) -> SegmentDone:
    return SegmentDone(segment, "clicks", "b", 1, 1, NOW.isoformat())


@pytest.fixture
def lake(tmp_path):
    return Lake(load_settings(data_dir=tmp_path))


def test_tables_and_segment_marks_commit_together(lake):
    lake.commit_batch(
        {"curated.clicks": _click("e1"), "ops.batches": _batch_row("b1")}, [_mark("s1")], {}
    )
    assert lake.read("curated.clicks").num_rows == 1
    assert lake.read("ops.batches").num_rows == 1
    assert lake.done_segments() == {"s1"}
    assert lake.table("curated.clicks").spec().fields[0].name == "event_time_day"


def test_a_failed_publish_leaves_no_table_changed_and_no_segment_done(lake, monkeypatch):
    lake.commit_batch({"curated.clicks": _click("e1")}, [_mark("s1")], {})
    # Simulate a crash between staging and publishing: the catalog transaction fails.
    original = lake.catalog._publish

    def crash(*args):
        raise OSError("disk vanished")

    monkeypatch.setattr(lake.catalog, "_publish", crash)
    with pytest.raises(StorageError, match="disk vanished"):  # one line for the CLI, no trace
        lake.commit_batch(
            {"curated.clicks": _click("e2"), "ops.batches": _batch_row("b2")}, [_mark("s2")], {}
        )
    monkeypatch.setattr(lake.catalog, "_publish", original)
    lake.refresh()
    assert lake.read("curated.clicks").column("event_id").to_pylist() == ["e1"]
    assert lake.read("ops.batches").num_rows == 0
    assert lake.done_segments() == {"s1"}


def test_a_writer_that_publishes_in_between_makes_the_whole_group_fail(lake, tmp_path, monkeypatch):
    other = Lake(load_settings(data_dir=tmp_path))
    original = lake.catalog._publish

    def publish_after_someone_else(*args):
        other.commit_batch({"curated.clicks": _click("e1")}, [_mark("s1")], {})
        original(*args)

    monkeypatch.setattr(lake.catalog, "_publish", publish_after_someone_else)
    with pytest.raises(CommitConflictError) as lost:
        lake.commit_batch(
            {"curated.clicks": _click("e2"), "ops.batches": _batch_row("b2")}, [_mark("s2")], {}
        )
    # Any writer may have won (maintain, forget, a replay): the hint names them and says
    # to run the command again, not only that a second processor runs.
    assert "maintain, forget or a replay" in lost.value.hint
    assert "run this command again" in lost.value.hint
    lake.refresh()
    assert lake.read("curated.clicks").column("event_id").to_pylist() == ["e1"]
    assert lake.read("ops.batches").num_rows == 0
    assert lake.done_segments() == {"s1"}


def test_a_table_created_by_an_older_schema_gains_the_new_columns(lake, tmp_path, monkeypatch):
    from advertisex.model import schemas

    spec = schemas.TABLES["curated.clicks"]
    old = schemas.TableSpec(
        spec.namespace,
        spec.name,
        pa.schema([f for f in spec.schema if f.name != "extras"]),
        spec.id_column,
        spec.partition_by_day,
        spec.sort_by,
    )
    monkeypatch.setitem(schemas.TABLES, "curated.clicks", old)
    lake.commit_batch({"curated.clicks": _click("e1").drop_columns(["extras"])}, [_mark("s1")], {})
    monkeypatch.setitem(schemas.TABLES, "curated.clicks", spec)
    newer = Lake(load_settings(data_dir=tmp_path))
    newer.commit_batch({"curated.clicks": _click("e2")}, [_mark("s2")], {})
    rows = (
        newer.read("curated.clicks").sort_by("event_id").select(["event_id", "extras"]).to_pylist()
    )
    assert rows == [{"event_id": "e1", "extras": None}, {"event_id": "e2", "extras": None}]


def test_segments_another_processor_committed_first_are_a_commit_conflict(lake, tmp_path):
    """Two processors on one shared catalog (the lock keeps local ones apart): the second
    commit of the same segments fails whole, as commit_conflict, and changes nothing."""
    other = Lake(load_settings(data_dir=tmp_path))
    other.commit_batch({"curated.clicks": _click("e1")}, [_mark("s1")], {})
    with pytest.raises(CommitConflictError, match="committed by another processor"):
        lake.commit_batch(
            {"curated.clicks": _click("e1"), "ops.batches": _batch_row("b1")}, [_mark("s1")], {}
        )
    lake.refresh()
    assert lake.read("curated.clicks").num_rows == 1
    assert lake.read("ops.batches").num_rows == 0


def test_committed_segments_by_name_range_and_among_names(lake):
    marks = [_mark("clicks/2026-01-01/07/a"), _mark("clicks/2026-01-01/08/b")]
    lake.commit_batch({"ops.batches": _batch_row("b1")}, marks, {})
    hour = ("clicks/2026-01-01/07/", "clicks/2026-01-01/08/")
    assert lake.done_segments(between=hour) == {"clicks/2026-01-01/07/a"}
    assert lake.done_segments(among=["x", "clicks/2026-01-01/08/b"]) == {"clicks/2026-01-01/08/b"}
    [(name, mark)] = lake.segment_marks(between=hour).items()
    assert (name, mark.batch_id, mark.records) == ("clicks/2026-01-01/07/a", "b", 1)


def test_driver_errors_become_a_transient_error(tmp_path):
    from sqlalchemy import create_engine

    from advertisex.errors import CatalogUnavailableError, TransientError
    from advertisex.lake.catalog import SegmentLedger, translate_driver_errors

    engine = create_engine(f"sqlite:///{tmp_path}/no/such/folder/catalog.db")
    translate_driver_errors(engine)
    with pytest.raises(CatalogUnavailableError) as caught:
        SegmentLedger(engine).names()
    assert isinstance(caught.value, TransientError) and caught.value.retryable
    assert SegmentLedger.open(f"sqlite:///{tmp_path}/never-made.db") is None


def test_two_first_runs_creating_one_namespace_at_once_both_open_the_table(tmp_path, monkeypatch):
    """A processor and a ``maintain`` started together on a new lake: both found no table
    and passed pyiceberg's namespace check before either inserted the namespace. The
    loser's insert fails on the key, which must read as "already exists", not an error."""
    from pyiceberg.exceptions import NoSuchTableError

    first, second = Lake(load_settings(data_dir=tmp_path)), Lake(load_settings(data_dir=tmp_path))
    first.table("curated.clicks")
    looked = {"table": False, "namespace": False}
    load_table, namespace_exists = second.catalog.load_table, second.catalog.namespace_exists

    def first_look_finds_no_table(identifier):
        if not looked["table"]:
            looked["table"] = True
            raise NoSuchTableError(identifier)
        return load_table(identifier)

    def first_check_finds_no_namespace(namespace):
        if not looked["namespace"]:
            looked["namespace"] = True
            return False
        return namespace_exists(namespace)

    monkeypatch.setattr(second.catalog, "load_table", first_look_finds_no_table)
    monkeypatch.setattr(second.catalog, "namespace_exists", first_check_finds_no_namespace)
    assert second.table("curated.clicks").name() == ("curated", "clicks")
    assert looked == {"table": True, "namespace": True}


def test_two_first_runs_creating_the_catalogs_tables_at_once_both_open_it(tmp_path, monkeypatch):
    """Both found the catalog's tables missing; the other created them before this one's
    CREATE, which failed with "already exists": the catalog opens all the same (seen in
    ``process`` and ``maintain`` started together on a new lake)."""
    lost = lose_every_create_race(monkeypatch)
    lake = Lake(load_settings(data_dir=tmp_path))
    assert lake.table("curated.clicks").name() == ("curated", "clicks")
    assert len(lost) == 2
    assert lake.done_segments() == set()


def test_two_threads_opening_one_table_open_it_once(lake, monkeypatch):
    """The marts' tables open on a thread of their own while the update reads some of them
    (marts.iceberg.update_marts): a table asked for twice at once is opened once, and both
    get that table."""
    import threading
    import time

    lake.table("curated.clicks")  # the catalog and its namespace exist
    lake.refresh()
    loads = []
    load_table = lake.catalog.load_table

    def slow_load(name):
        loads.append(name)
        time.sleep(0.2)  # the other thread asks meanwhile
        return load_table(name)

    monkeypatch.setattr(lake.catalog, "load_table", slow_load)
    opened = []
    threads = [
        threading.Thread(target=lambda: opened.append(lake.table("curated.clicks")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["curated.clicks"]
    assert len(opened) == 2 and opened[0] is opened[1]


def test_tables_opened_beside_are_opened_by_their_thread_alone(lake, monkeypatch):
    """Lake.open_beside: a thread asking for one of the tables before it is open waits for
    it (no two threads create tables at once), then gets the same table."""
    import threading
    import time

    lake.table("curated.quarantine")  # the catalog and its namespaces exist
    creators = []
    go_on = threading.Event()
    create = Lake._create

    def slow_create(self, spec):
        creators.append((spec.qualified, threading.current_thread().name))
        go_on.wait(timeout=20)
        return create(self, spec)

    monkeypatch.setattr(Lake, "_create", slow_create)
    opened = lake.open_beside(["curated.clicks", "curated.conversions"])
    asked = []
    asking = threading.Thread(target=lambda: asked.append(lake.table("curated.conversions")))
    asking.start()
    time.sleep(0.2)  # it asks while the first table is still being created
    go_on.set()
    opened.result(timeout=20)
    asking.join()
    assert creators == [("curated.clicks", "tables"), ("curated.conversions", "tables")]
    assert asked == [lake.table("curated.conversions")]


def test_a_table_that_fails_to_open_beside_fails_its_future_and_holds_no_other(lake, monkeypatch):
    lake.table("curated.quarantine")
    create = Lake._create

    def fails_clicks(self, spec):
        if spec.qualified == "curated.clicks":
            raise StorageError("the disk is full")
        return create(self, spec)

    monkeypatch.setattr(Lake, "_create", fails_clicks)
    opened = lake.open_beside(["curated.clicks", "curated.conversions"])
    with pytest.raises(StorageError, match="disk is full"):
        opened.result(timeout=20)
    assert lake.table("curated.conversions") is not None  # not held by the failed opening


def test_a_catalog_is_not_made_only_while_its_sqlite_file_is_missing(tmp_path):
    """What a new lake's first batch skips (no dimensions, no committed rows to ask its
    tables for) holds only for a SQLite catalog on disk not made yet: an in-memory one, or
    a catalog server's, may hold tables already."""
    lake = Lake(load_settings(data_dir=tmp_path))
    assert not lake.catalog_made()
    lake.table("curated.clicks")
    assert lake.catalog_made()
    for uri in ("sqlite:///:memory:", "postgresql+psycopg://adx@db/lake"):
        other = Lake(load_settings(data_dir=tmp_path / "other", lake={"catalog_uri": uri}))
        assert other.catalog_made(), uri


def test_a_commit_retried_after_a_lost_race_is_not_announced(lake, tmp_path, caplog):
    """pyiceberg logged "Commit failed due to a concurrent update, retrying (1/10) in 103
    ms" for each retry the tables ask for: with no logging set up, Python printed it on the
    terminal of whoever ran ``process`` while another writer committed."""
    other = Lake(load_settings(data_dir=tmp_path))
    stale = lake.table("curated.clicks")
    other.commit_batch({"curated.clicks": _click("e1")}, [_mark("s1")], {})
    with caplog.at_level("DEBUG"):
        stale.append(_click("e2"))  # loses to the commit above, is retried, lands
    assert sorted(stale.scan().to_arrow().column("event_id").to_pylist()) == ["e1", "e2"]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pyiceberg")] == []


def test_an_old_metadata_version_another_writer_deleted_is_not_announced(tmp_path, caplog):
    """A commit deletes the ``metadata.json`` that falls off the versions kept; maintenance
    and ``forget`` delete old versions too. When one of them got there first, pyiceberg
    logged "Failed to delete metadata file …" as a warning, which Python printed on the
    terminal of ``forget`` (and in ``up``'s log) under a live pipeline. A version still
    there that cannot be deleted is still announced."""
    from pathlib import Path
    from urllib.parse import urlparse

    lake = Lake(load_settings(data_dir=tmp_path, maintenance={"metadata_versions": 1}))
    table = lake.table("curated.clicks")
    table.append(_click("e1"))
    table.append(_click("e2"))  # the version before the last one kept is now the oldest
    oldest = Path(urlparse(table.metadata.metadata_log[0].metadata_file).path)
    oldest.unlink()  # deleted by another writer
    with caplog.at_level("DEBUG"):
        table.append(_click("e3"))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pyiceberg")] == []
    stuck = Path(urlparse(table.metadata.metadata_log[0].metadata_file).path)
    stuck.unlink()
    stuck.mkdir()
    (stuck / "x").write_text("a folder in its place: it cannot be deleted")
    with caplog.at_level("DEBUG"):
        table.append(_click("e4"))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pyiceberg")] == [
        f"Failed to delete metadata file {stuck.as_uri()}"
    ]
