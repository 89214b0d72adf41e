"""The shared catalog: Iceberg's SQL catalog and the segment checkpoints on PostgreSQL.

A real server (started by the fixture on 127.0.0.1), chosen by configuration alone
(``lake.catalog_uri``). The batch commit stays atomic there: a table moved by
another writer between staging and publishing fails the whole group — no pointer
swap and no segment mark survives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import create_engine, inspect

from advertisex.errors import CommitConflictError
from advertisex.lake.catalog import SegmentDone
from advertisex.model.schemas import TABLES
from tests.catalog_race import lose_every_create_race

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMPRESSIONS = b"".join(
    b'{"timestamp":"2026-11-10T10:00:%02dZ","ad_creative_id":"cr-1","user_id":"u%d",'
    b'"website":"news.example","impression_id":"imp-%d"}\n' % (i, i % 3, i % 7)
    for i in range(20)
)
CLICKS = b"timestamp,user_id,campaign_id,event_type,event_id\n" + b"".join(
    b"2026-11-10T10:01:%02dZ,u%d,cmp-1,click,clk-%d\n" % (i, i, i) for i in range(5)
)


def _open(tmp_path: Path, url: str):  # type: ignore[no-untyped-def]
    import advertisex

    # One catalog name per test: the tests share the server, as several deployments could.
    return advertisex.open(
        data_dir=tmp_path / "data", lake={"catalog_uri": url, "catalog_name": tmp_path.name}
    )


def test_two_first_runs_creating_the_catalogs_tables_on_postgres_both_open_it(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on SQLite (tests/lake/test_catalog.py): the other first run created the catalog's
    tables between this one's check and its CREATE. PostgreSQL's "relation already exists"
    is a programming error, not an operational one: the catalog opens all the same."""
    from sqlalchemy import text

    fresh = f"race_{tmp_path.name.lower()}"[:60]  # a database of its own: no tables yet
    with create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as server:
        server.execute(text(f'CREATE DATABASE "{fresh}"'))
    lost = lose_every_create_race(monkeypatch)
    ax = _open(tmp_path, postgres_url.rsplit("/", 1)[0] + f"/{fresh}")
    assert ax.lake.table("curated.clicks").name() == ("curated", "clicks")
    assert len(lost) == 2
    assert ax.lake.done_segments() == set()


def test_ingest_and_process_with_the_catalog_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "impressions.ndjson").write_bytes(IMPRESSIONS)
    (drop / "clicks.csv").write_bytes(CLICKS)
    ax = _open(tmp_path, postgres_url)
    assert [r.status for r in ax.ingest([str(drop)])] == ["landed", "landed"]
    report = ax.process()
    impressions = report.accounts["impressions"]
    assert (impressions.records_in, impressions.accepted, impressions.duplicates) == (20, 7, 13)
    assert report.accounts["clicks"].accepted == 5

    # The catalog lives in PostgreSQL: Iceberg's JDBC-catalog tables plus our checkpoints.
    engine = create_engine(postgres_url)
    names = set(inspect(engine).get_table_names())
    assert {"iceberg_tables", "iceberg_namespace_properties", "advertisex_segments"} <= names
    assert not (tmp_path / "data" / "catalog.db").exists()

    # A second platform on the same catalog sees everything, and nothing is pending.
    again = _open(tmp_path, postgres_url)
    assert again.query("select count(*) n from curated.impressions").to_pylist() == [{"n": 7}]
    assert len(again.lake.done_segments()) == 2
    assert again.process().batches == []


def test_a_commit_group_that_loses_a_race_publishes_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    from advertisex.lake.tables import Lake

    ax = _open(tmp_path, postgres_url)
    lake, rival = ax.lake, Lake(ax.settings)
    batches = TABLES["ops.batches"].schema
    row = {name: None for name in batches.names} | {
        "batch_id": "b-1",
        "source": "impressions",
        "started_at": datetime(2026, 11, 10, tzinfo=UTC),
        "committed_at": datetime(2026, 11, 10, tzinfo=UTC),
        "segments": [],
    }
    for counter in ("files", "bytes", "records_in", "accepted", "quarantined", "filtered"):
        row[counter] = 0
    row["duplicates"] = row["conflicts"] = 0
    data = pa.Table.from_pylist([row], schema=batches)
    quarantine_before = lake.table("curated.quarantine").metadata_location
    lake.table("ops.batches")  # loaded (and created) before the rival moves it
    mark = SegmentDone("impressions/2026-11-10/10/x.ndjson", "impressions", "b-1", 1, 1, "now")

    with pytest.raises(CommitConflictError), lake.catalog.atomic([mark]):
        lake.table("curated.quarantine").append(TABLES["curated.quarantine"].schema.empty_table())
        lake.table("ops.batches").append(data)  # staged
        rival.table("ops.batches").append(data)  # committed at once: our pointer is stale

    lake.refresh()
    assert mark.segment not in lake.done_segments()
    assert lake.table("curated.quarantine").metadata_location == quarantine_before
    assert ax.query("select count(*) n from ops.batches").to_pylist() == [{"n": 1}]  # the rival's
