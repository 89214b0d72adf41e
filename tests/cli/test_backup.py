"""``advertisex backup``: the lake as of one moment, taken while it runs, restored whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from advertisex import synth
from advertisex.util.timeutil import parse_date
from tests.disk_events import disk_events

pytestmark = pytest.mark.integration

BUG = "this is a bug in advertisex"
COUNTS = (
    "select (select count(*) from curated.impressions) i, (select count(*) from curated.clicks) c, "
    "(select count(*) from curated.bid_requests) b, (select count(*) from ops.batches) o"
)


def _counts(cli, data: Path) -> str:
    code, out, err = cli(data, "query", COUNTS, "--format", "csv")
    assert code == 0, err
    return out.splitlines()[1]


def _generated(tmp_path: Path, name: str, seed: int) -> Path:
    folder = tmp_path / name
    synth.generate(folder, events=600, seed=seed, start=parse_date("2026-11-02"))
    return folder


def test_a_backup_taken_while_the_lake_commits_restores_the_lake_of_its_moment(
    cli, tmp_path, monkeypatch
):
    """A batch committed and the lake maintained while the backup copies its files (after
    its databases): restored in the lake's place, the backup holds the lake as it was when
    it began — its rows, its done files, its ingest index — and takes the later input as
    new, once."""
    import advertisex
    from advertisex.lake import backup as backup_module

    data, copy = tmp_path / "data", tmp_path / "backups" / "monday"
    first, later = _generated(tmp_path, "first", 5), _generated(tmp_path, "later", 6)
    assert cli(data, "ingest", str(first))[0] == 0
    assert cli(data, "process")[0] == 0
    at_backup = _counts(cli, data)

    copy_tables = backup_module._copy_tables

    def meanwhile(*args):  # the lake goes on between the databases' copy and the files'
        ax = advertisex.open(data_dir=data, correlation={"update_marts": False})
        ax.ingest([str(later)])
        ax.process()
        ax.maintain()
        copy_tables(*args)

    monkeypatch.setattr(backup_module, "_copy_tables", meanwhile)
    code, out, err = cli(data, "backup", str(copy))
    assert code == 0 and BUG not in err, err
    assert "backed up the lake" in out + err and "landing files" in out + err
    monkeypatch.setattr(backup_module, "_copy_tables", copy_tables)
    after = _counts(cli, data)
    assert after != at_backup

    shutil.rmtree(data)  # the lake lost; the backup put in its place
    copy.rename(data)
    assert _counts(cli, data) == at_backup
    code, out, err = cli(data, "status")
    assert code == 0 and BUG not in err, err
    assert "LakeFilesDamaged" not in cli(data, "monitor", "--once")[1]
    code, out, err = cli(data, "ingest", str(first))
    assert code == 0 and "0 landed" in out + err, out + err  # its index came along
    code, out, err = cli(data, "ingest", str(later))
    assert code == 0
    assert cli(data, "process")[0] == 0
    assert _counts(cli, data) == after  # the later input taken once, as the lake did


def test_a_backup_used_elsewhere_is_a_copy_until_relocated(cli, tmp_path):
    data, copy = tmp_path / "data", tmp_path / "copy"
    assert cli(data, "ingest", str(_generated(tmp_path, "first", 5)))[0] == 0
    assert cli(data, "process")[0] == 0
    assert cli(data, "backup", str(copy))[0] == 0
    assert _counts(cli, copy) == _counts(cli, data)  # it reads
    assert cli(copy, "ingest", str(_generated(tmp_path, "later", 6)))[0] == 0
    code, _, err = cli(copy, "process")
    assert code == 2 and "is a copy of the one in" in err, err
    assert cli(copy, "relocate")[0] == 0
    assert cli(copy, "process")[0] == 0
    assert _counts(cli, copy) != _counts(cli, data)  # its own lake now


def test_a_backup_refuses_what_it_cannot_copy_whole_and_leaves_nothing(cli, tmp_path):
    data = tmp_path / "data"
    code, _, err = cli(data, "backup", str(tmp_path / "b"))
    assert code == 2 and "there is no lake" in err, err
    assert cli(data, "ingest", str(_generated(tmp_path, "first", 5)))[0] == 0
    assert cli(data, "process")[0] == 0
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for target, says in (
        (tmp_path / "full", "is not an empty folder"),
        (data / "inside", "inside the lake's data directory"),
        (tmp_path / "full" / "x" / "b", "cannot write the backup to"),  # under a file
        ("", "name a new folder for the backup"),
    ):
        code, _, err = cli(data, "backup", str(target))
        assert code == 2 and says in err and BUG not in err, err
    lost = sorted((data / "warehouse" / "curated" / "impressions").rglob("*.parquet"))[0]
    lost.unlink()
    code, _, err = cli(data, "backup", str(tmp_path / "b"))
    assert code == 2 and lost.name in err and BUG not in err, err
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.partial-*"))


def test_a_backup_is_under_its_name_on_the_disk_before_it_is_reported(cli, tmp_path, monkeypatch):
    """The copy was synced to the disk, then renamed from its hidden partial name to the
    one asked for, and that rename was not flushed: after a power cut the "done" backup
    could be a ``.monday.partial-…`` folder that looks like an interrupted one."""
    import os

    data, copy = tmp_path / "data", tmp_path / "backups" / "monday"
    assert cli(data, "ingest", str(_generated(tmp_path, "first", 5)))[0] == 0
    assert cli(data, "process")[0] == 0
    events = disk_events(monkeypatch, (os, "rename"))
    code, _, err = cli(data, "backup", str(copy))
    monkeypatch.undo()
    assert code == 0, err
    named = events.index(("named", str(copy)))
    assert ("fsync", str(copy.parent)) in events[named:]


def test_a_backup_flushes_what_it_wrote_and_not_every_disk(cli, tmp_path, monkeypatch):
    """It ended with os.sync(), which flushes every disk of the machine (minutes on a busy
    shared host) for a backup that needs its own files on the disk: every file and folder
    it wrote is fsync'd before it is named, the folders made for it after, and no more."""
    import os

    data, copy = tmp_path / "data", tmp_path / "backups" / "2026" / "monday"
    assert cli(data, "ingest", str(_generated(tmp_path, "first", 5)))[0] == 0
    assert cli(data, "process")[0] == 0
    whole_machine: list[bool] = []
    monkeypatch.setattr(os, "sync", lambda: whole_machine.append(True))
    events = disk_events(monkeypatch, (os, "rename"))
    code, _, err = cli(data, "backup", str(copy))
    monkeypatch.undo()
    assert code == 0, err
    assert not whole_machine
    named = events.index(("named", str(copy)))
    partial = next(Path(p) for _, p in events if ".monday.partial-" in p)
    while not partial.name.startswith(".monday.partial-"):
        partial = partial.parent
    before = {Path(p) for kind, p in events[:named] if kind == "fsync"}
    written = {partial / p.relative_to(copy) for p in copy.rglob("*")} | {partial}
    assert written <= before, sorted(written - before)[:5]
    assert all(p.is_relative_to(partial) for p in before)  # nothing of the lake's own
    after = [p for kind, p in events[named:] if kind == "fsync"]
    assert after == [str(copy.parent), str(copy.parent.parent), str(tmp_path)]
