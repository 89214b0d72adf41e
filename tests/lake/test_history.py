"""Inside ``manifests_read_once`` each manifest (and manifest list) is read once, however
often maintenance or an erasure looks at a table's files; outside it, every look reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from advertisex.config import load_settings
from advertisex.lake.history import live_files, manifests_read_once, referenced
from advertisex.lake.tables import Lake
from tests.lake.test_erasure import _clicks

pytestmark = pytest.mark.integration


def test_each_manifest_is_read_once_inside_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(load_settings(data_dir=tmp_path, correlation={"update_marts": False}))
    lake.commit_batch({"curated.clicks": _clicks(["a1"])}, [], {})
    lake.commit_batch({"curated.clicks": _clicks(["b1"])}, [], {})
    table = lake.table("curated.clicks")
    reads = _manifest_reads(monkeypatch)
    with manifests_read_once():
        files = live_files(table)
        assert live_files(table) == files and len(files) == 2
        assert set(referenced(table).data) == {f.file_path for f in files}
    assert len(reads) == len(set(reads)) == 2  # two manifests, each read once
    live_files(table)
    assert len(reads) == 4  # outside the block: read again


def test_files_this_process_appended_are_known_without_reading_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the lake's own commits, ``appended_since`` answers from what they added —
    the same files the manifests list — and reads the manifests for anyone else's."""
    from advertisex.lake import history

    lake = Lake(load_settings(data_dir=tmp_path, correlation={"update_marts": False}))
    lake.commit_batch({"curated.clicks": _clicks(["a1"])}, [], {})
    first = lake.table("curated.clicks").current_snapshot()
    assert first is not None
    lake.commit_batch({"curated.clicks": _clicks(["b1"])}, [], {})
    lake.commit_batch({"curated.clicks": _clicks(["c1"])}, [], {})
    table = lake.table("curated.clicks")
    reads = _manifest_reads(monkeypatch)
    known = history.appended_since(table, first.snapshot_id)
    assert known is not None and len(known) == 2 and not reads
    monkeypatch.setattr(history, "_appended", {})  # as another process sees the table
    listed = history.appended_since(table, first.snapshot_id)
    assert listed is not None and reads
    assert sorted(known, key=lambda f: f.file_path) == sorted(listed, key=lambda f: f.file_path)


def _manifest_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the manifests read from now on, in order."""
    from pyiceberg.manifest import ManifestFile

    reads: list[str] = []
    fetch = ManifestFile.fetch_manifest_entry

    def counted(self: ManifestFile, *args: object, **kwargs: object) -> object:
        reads.append(self.manifest_path)
        return fetch(self, *args, **kwargs)

    monkeypatch.setattr(ManifestFile, "fetch_manifest_entry", counted)
    return reads
