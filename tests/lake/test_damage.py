"""``lake.damage``: which data files the storage lost or damaged, and the way back told."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from advertisex.config import load_settings
from advertisex.errors import CommitConflictError, LakeDamagedError, UserInputError
from advertisex.lake.damage import damaged_files, explained
from advertisex.lake.history import live_files
from advertisex.lake.tables import Lake
from advertisex.model.schemas import CLICKS

pytestmark = pytest.mark.integration


def _lake(tmp_path: Path) -> Lake:
    lake = Lake(load_settings(data_dir=tmp_path / "data", correlation={"update_marts": False}))
    click = {
        "event_id": "e1",
        "event_time": datetime(2026, 11, 1, tzinfo=UTC),
        "user_id": "u",
        "campaign_id": "c",
        "payload_hash": "h",
        "ingest_time": datetime(2026, 11, 1, tzinfo=UTC),
        "source_file": "f",
        "source_position": 0,
        "batch_id": "b",
    }
    lake.commit_batch({"curated.clicks": pa.Table.from_pylist([click], schema=CLICKS)}, [], {})
    return lake


def _file(lake: Lake) -> Path:
    (data_file,) = live_files(lake.table("curated.clicks"))
    return Path(data_file.file_path.removeprefix("file://"))


def test_a_sound_lake_has_no_damaged_file_and_its_errors_are_left_as_they_were(tmp_path):
    lake = _lake(tmp_path)
    assert damaged_files(lake) == []
    assert explained(lake, FileNotFoundError(2, "gone")) is None  # an expired snapshot's
    assert explained(lake, UserInputError("bad SQL")) is None


def test_a_file_cut_short_is_named_with_both_sizes_and_a_backup_as_the_way_back(tmp_path):
    lake = _lake(tmp_path)
    path = _file(lake)
    recorded = path.stat().st_size
    with path.open("r+b") as file:
        file.truncate(10)
    (found,) = damaged_files(lake)
    assert found.table == "curated.clicks" and found.problem == (
        f"10 bytes where the table recorded {recorded:,}"
    )
    told = explained(lake, CommitConflictError("changed while it was read"))
    assert told is None  # a conflict with no read failure behind it is what it says
    try:
        raise CommitConflictError("changed while it was read") from FileNotFoundError(2, "x")
    except CommitConflictError as conflict:
        told = explained(lake, conflict)
    assert isinstance(told, LakeDamagedError) and told.code == "lake_damaged"
    # Not a batch's file (written with no batch id: "commit-…"): nothing to replay.
    assert str(path) in told.message and told.hint == "restore it from a backup of the lake"
