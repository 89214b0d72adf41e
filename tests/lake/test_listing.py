"""lake.listing lists a table's current data files exactly as pyiceberg's plan does."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.expressions import EqualTo

from advertisex.lake.listing import current_files
from advertisex.model.schemas import BATCHES


def batch_rows(ids: list[str]) -> pa.Table:
    """``ops.batches`` rows with the given ids (a small table any test can append)."""
    at = datetime(2026, 11, 20, tzinfo=UTC)
    counts = dict.fromkeys(
        ("files", "bytes", "records_in", "accepted", "quarantined", "filtered", "duplicates"), 0
    )
    rows = [
        {
            "batch_id": i,
            "source": "clicks",
            "started_at": at,
            "committed_at": at,
            "conflicts": 0,
            "segments": [],
            **counts,
        }
        for i in ids
    ]
    return pa.Table.from_pylist(rows, schema=BATCHES)


def _listed(ax, name: str) -> list[str] | None:
    found = current_files(ax.settings.catalog_uri, ax.settings.lake.catalog_name, [name])
    return None if found is None else sorted(found[name])


def test_listing_follows_appends_overwrites_and_deletes_like_pyiceberg(ax):
    assert _listed(ax, "ops.batches") == []  # no catalog yet: every table is empty
    table = ax.lake.table("ops.batches")
    assert _listed(ax, "ops.batches") == []  # created, no snapshot
    table.append(batch_rows(["a", "b"]))
    table = ax.lake.catalog.load_table("ops.batches")
    table.append(batch_rows(["c"]))
    assert len(_listed(ax, "ops.batches")) == 2
    table = ax.lake.catalog.load_table("ops.batches")
    table.delete(EqualTo("batch_id", "c"))  # the file holding c leaves the snapshot
    table = ax.lake.catalog.load_table("ops.batches")
    table.overwrite(batch_rows(["d"]))  # every earlier file is replaced
    ax.lake.refresh()
    planned = sorted(ax.lake._planned_files("ops.batches"))
    assert _listed(ax, "ops.batches") == planned and len(planned) == 1
    assert ax.lake.data_files("ops.batches") == planned
    got = ax.query("select list(batch_id) as ids from ops.batches").column("ids")[0].as_py()
    assert got == ["d"]


def test_listing_reads_all_tables_from_one_catalog_state(ax):
    ax.lake.table("ops.batches").append(batch_rows(["a"]))
    found = current_files(
        ax.settings.catalog_uri, ax.settings.lake.catalog_name, ["ops.batches", "ops.alerts"]
    )
    assert found is not None
    assert len(found["ops.batches"]) == 1 and found["ops.alerts"] == []


def test_other_catalogs_are_left_to_pyiceberg():
    assert current_files("postgresql://db/catalog", "advertisex", ["ops.batches"]) is None


def test_a_table_that_did_not_move_is_listed_without_reading_its_manifests(ax, monkeypatch):
    """The console and the monitor look every 30 s for months: a metadata file names the
    same files for ever, so its manifests are read once; a commit names new ones."""
    from advertisex.lake import listing

    table = ax.lake.table("ops.batches")
    table.append(batch_rows(["a"]))
    first = _listed(ax, "ops.batches")
    read: list[str] = []
    original = listing.avro_records
    monkeypatch.setattr(listing, "avro_records", lambda path: read.append(path) or original(path))
    assert _listed(ax, "ops.batches") == first and read == []
    ax.lake.catalog.load_table("ops.batches").append(batch_rows(["b"]))
    assert len(_listed(ax, "ops.batches")) == 2 and read  # the new snapshot's are read
