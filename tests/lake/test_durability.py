"""What a commit publishes is on the disk before the catalog points at it.

A power cut cannot be staged here, so the tests watch the two halves of the promise:
every ``fsync`` the process makes (by the path of the file descriptor), and every time
the catalog database is told a table's new metadata location. Each file a published
metadata names — itself, its manifest list, its manifests, its live data files and the
folders up to the warehouse — must have been fsync'd before that moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

import advertisex
from advertisex.errors import StorageError
from advertisex.lake.listing import avro_records
from advertisex.synth.generator import generate
from advertisex.util import jsonutil
from tests.disk_events import fsyncs

pytestmark = [pytest.mark.integration]


@contextlib.contextmanager
def _pointers(synced: list[str]) -> Iterator[list[tuple[str, frozenset[str]]]]:
    """(metadata location, paths fsync'd by then) for each location the catalog database
    is told to point a table at, inside the ``with`` block."""
    told: list[tuple[str, frozenset[str]]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "iceberg_tables" not in statement or statement.lstrip()[:6].upper() == "SELECT":
            return
        rows = parameters if isinstance(parameters, list) else [parameters]
        for row in rows:
            values = row.values() if isinstance(row, dict) else row
            for value in values:
                if isinstance(value, str) and value.endswith(".metadata.json"):
                    told.append((value.removeprefix("file://"), frozenset(synced)))

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield told
    finally:
        event.remove(Engine, "before_cursor_execute", before)


def _named(metadata_path: str) -> set[str]:
    """The files the metadata at ``metadata_path`` names as its table's current state."""
    named = {metadata_path}
    metadata = jsonutil.loads(Path(metadata_path).read_bytes())
    current = metadata.get("current-snapshot-id")
    for snapshot in metadata.get("snapshots", []):
        if snapshot["snapshot-id"] != current:
            continue
        manifest_list = snapshot["manifest-list"].removeprefix("file://")
        named.add(manifest_list)
        for manifest in avro_records(manifest_list):
            path = manifest["manifest_path"].removeprefix("file://")
            named.add(path)
            named.update(
                entry["data_file"]["file_path"].removeprefix("file://")
                for entry in avro_records(path)
                if entry["status"] != 2  # deleted
            )
    return named


def _folders(paths: set[str], warehouse: Path) -> set[str]:
    """Each path's folders, up to and including ``warehouse``."""
    found = set()
    for path in paths:
        folder = Path(path).parent
        while folder != warehouse.parent:
            found.add(str(folder))
            folder = folder.parent
    return found


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    generate(out, events=3000, seed=11, start=date(2026, 11, 20))
    return out


def _landed(raw: Path, data: Path) -> Any:
    ax = advertisex.open(data_dir=data)
    ax.ingest([raw / s for s in ("impressions", "clicks", "bids")])
    return ax


def test_every_file_a_table_is_pointed_at_was_fsynced_before(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's atomic commit (curated tables, quarantine, ops.batches) and the marts'
    update after it (pyiceberg's own overwrites, outside any group), the first of a lake:
    the warehouse folder was made with ``mkdir`` alone, its name never flushed in the data
    directory."""
    ax = _landed(raw, tmp_path / "data")
    synced = fsyncs(monkeypatch)
    with _pointers(synced) as told:
        ax.process()
    warehouse = (tmp_path / "data" / "warehouse").resolve()
    pointed = {location for location, _ in told}
    assert any("/curated/impressions/" in p for p in pointed)
    assert any("/marts/campaign_hourly/" in p for p in pointed)
    for location, synced_then in told:
        named = _named(location)
        assert any(p.endswith(".parquet") for p in named) or "/metadata/00000-" in location
        # and the warehouse's own name in the data directory, made by this first batch
        missing = (named | _folders(named, warehouse) | {str(warehouse.parent)}) - synced_then
        assert not missing, f"{location} published before these were fsync'd: {sorted(missing)}"


@pytest.mark.slow
def test_a_disk_that_cannot_take_a_commit_publishes_nothing_and_the_rerun_does(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync failing (EIO: the disk lost the writes) stops the commit before the catalog
    moves; once the disk is well again, the same command commits every record once."""
    ax = _landed(raw, tmp_path / "data")
    real = os.fsync
    warehouse = str((tmp_path / "data" / "warehouse").resolve())

    def failing(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".parquet"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(StorageError, match="Input/output error") as raised:
        ax.process()
    assert "nothing of this commit was published" in str(raised.value)
    assert warehouse in str(raised.value)
    assert ax.query("select count(*) n from ops.batches").to_pylist() == [{"n": 0}]
    monkeypatch.setattr(os, "fsync", real)
    report = ax.process()
    assert report.batches and ax.query("select count(*) n from ops.batches").to_pylist() != [
        {"n": 0}
    ]
    [row] = ax.query(
        "select count(*) n, count(distinct impression_id) ids from curated.impressions"
    ).to_pylist()
    assert row["n"] == row["ids"] > 0
