"""``relocate`` all or nothing: a copy missing one of its files is refused, named, and left
as it was; once the file is back, the same call relocates every table."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

import advertisex
from advertisex.errors import LakeCopiedError, UserInputError
from advertisex.synth.generator import generate

pytestmark = [pytest.mark.integration]


def _pointers(data: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data / "catalog.db") as con:
        return sorted(con.execute("SELECT table_name, metadata_location FROM iceberg_tables"))


def test_a_copy_missing_a_manifest_is_refused_whole_then_relocated_whole(
    tmp_path: Path,
) -> None:
    generate(tmp_path / "in", events=1500, seed=2, start=date(2026, 11, 20))
    made = tmp_path / "made"
    ax = advertisex.open(data_dir=made)
    ax.ingest([tmp_path / "in" / s for s in ("impressions", "clicks", "bids")])
    ax.process()
    copy = tmp_path / "copy"
    shutil.copytree(made, copy)
    manifest = next((copy / "warehouse" / "curated" / "impressions" / "metadata").glob("*-m0.avro"))
    hidden = manifest.rename(tmp_path / manifest.name)
    before = _pointers(copy)
    with pytest.raises(UserInputError, match=f"{manifest} is missing"):
        advertisex.open(data_dir=copy).relocate()
    assert _pointers(copy) == before  # no table moved, the ones rewritten before included
    with pytest.raises(LakeCopiedError):
        advertisex.open(data_dir=copy).maintain()  # still a copy: read-only
    hidden.rename(manifest)
    moved = advertisex.open(data_dir=copy).relocate()
    assert moved.was == str(made / "warehouse") and len(moved.tables) == len(before)
    assert all(str(copy) in location for _, location in _pointers(copy))
    assert _pointers(made) != _pointers(copy)
    count = "select count(*) n from curated.impressions"
    assert advertisex.open(data_dir=copy).query(count) == ax.query(count)
