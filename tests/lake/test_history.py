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


def test_every_file_of_a_table_only_this_process_appended_to_is_known_without_a_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``all_appended_here``: the files of a table whose every snapshot is an append of this
    process — those a scan plans — and None where a snapshot is another's or not an append."""
    from advertisex.lake import history

    lake = Lake(load_settings(data_dir=tmp_path, correlation={"update_marts": False}))
    assert history.all_appended_here(lake.table("curated.clicks")) is None  # no snapshot
    lake.commit_batch({"curated.clicks": _clicks(["a1"])}, [], {})
    lake.commit_batch({"curated.clicks": _clicks(["b1"])}, [], {})
    table = lake.table("curated.clicks")
    planned = [task.file.file_path for task in table.scan().plan_files()]
    known = history.all_appended_here(table)
    assert known is not None
    assert sorted(f.file_path for f in known) == sorted(planned) and len(planned) == 2
    looked_at: list[object] = []
    kind = history.kind
    monkeypatch.setattr(history, "kind", lambda s: looked_at.append(s) or kind(s))
    monkeypatch.setattr(history, "_appended", {})  # as another process sees the table
    assert history.all_appended_here(table) is None
    assert not looked_at  # a history it does not remember is not walked
    lake.commit_batch({"curated.clicks": _clicks(["c1"])}, [], {})  # this process's again
    assert history.all_appended_here(lake.table("curated.clicks")) is None  # older: unknown


def test_manifest_entries_are_pyicebergs_own(tmp_path: Path) -> None:
    """The manifests' reader built once a schema (``history._entries``) reads what
    pyiceberg's ``fetch_manifest_entry`` does, entry for entry — deleted entries, inherited
    sequence numbers and statistics included — for every manifest of tables partitioned or
    not, after appends, a merge and a removal. (It stands on pyiceberg's parts: an upgrade
    that changed them fails here.)"""
    from pyiceberg.manifest import ManifestFile

    from advertisex.lake import history
    from advertisex.lake.rewrite import commit_swap

    settings = load_settings(
        data_dir=tmp_path,
        correlation={"update_marts": False},
        maintenance={"manifest_min_count_to_merge": 2},
    )
    lake = Lake(settings)
    for ids in (["a1"], ["b1", "b2"], ["c1"]):
        lake.commit_batch({"curated.clicks": _clicks(ids)}, [], {})
    table = lake.table("curated.clicks")
    commit_swap(table, live_files(table)[:1], [], None)  # deleted entries, a rewritten manifest
    lake.refresh()
    assert history._manifest_file() is not None  # this pyiceberg has the parts
    read, statuses, merged = 0, set(), False
    for name in ("curated.clicks", "ops.batches"):
        table = lake.table(name)
        for snapshot in table.metadata.snapshots:
            for manifest in snapshot.manifests(table.io):
                ours = history._entries(manifest, table.io)
                theirs = ManifestFile.fetch_manifest_entry(
                    manifest, table.io, discard_deleted=False
                )
                assert ours == theirs and [e.data_file for e in ours] == [
                    e.data_file for e in theirs
                ]
                read += 1
                statuses |= {e.status.name for e in ours}
                merged |= bool(manifest.existing_files_count)
    assert read > 4 and statuses == {"ADDED", "EXISTING", "DELETED"} and merged


def _manifest_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the manifests read from now on, in order."""
    from advertisex.lake import history

    reads: list[str] = []
    entries = history._entries

    def counted(manifest: object, io: object) -> list[object]:
        reads.append(manifest.manifest_path)  # type: ignore[attr-defined]
        return entries(manifest, io)

    monkeypatch.setattr(history, "_entries", counted)
    return reads
