"""Where the lake is: made once by a verb that stores data (and said so), never by a read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.disk_events import fsyncs

READ_VERBS = [
    ["query", "select 1"],
    ["status"],
    ["report", "campaigns"],
    ["quarantine", "list"],
    ["dims", "list"],
    ["alerts"],
    ["console", "--port", "0"],
]


@pytest.mark.parametrize("args", [*READ_VERBS, ["process"]], ids=lambda a: " ".join(a))
def test_a_read_on_a_missing_lake_says_so_and_makes_nothing(cli, tmp_path, args):
    """``process`` too: nothing can be pending where no lake is. In the wrong folder it made
    an empty lake there and said "every landed file is already processed"."""
    data = tmp_path / "data"
    code, _, err = cli(data, *args)
    assert code == 2 and f"there is no lake at {data}" in err and "advertisex ingest" in err
    assert not data.exists()


@pytest.mark.parametrize("args", READ_VERBS, ids=lambda a: " ".join(a))
def test_a_read_where_the_data_dir_is_a_file_says_so(cli, tmp_path, args):
    """It said "there is no lake at …", which sent the user to make one where a file is
    in the way (the verbs that write said "a file of that name is in the way")."""
    data = tmp_path / "data"
    data.write_text("not a lake")
    code, _, err = cli(data, *args)
    assert code == 2 and f"the data directory {data} is a file, not a folder" in err, err
    assert "→ set data_dir (ADVERTISEX_DATA_DIR)" in err and data.read_text() == "not a lake"


def test_the_first_write_makes_the_lake_and_says_where_once(cli, tmp_path, seed_samples):
    data = tmp_path / "data"
    code, _, err = cli(data, "ingest", str(seed_samples / "ad_impressions.json"))
    assert code == 0 and f"created a new lake at {data}" in err
    code, _, err = cli(data, "ingest", str(seed_samples / "ad_impressions.json"))
    assert "created a new lake" not in err
    code, out, err = cli(
        data, "query", "select count(*) n from raw.impressions", "--format", "json"
    )
    assert code == 0 and '"n": 100' in out


@pytest.mark.parametrize("where", ["/proc/advertisex-nope", "a-file/data"])
def test_a_data_dir_that_cannot_be_made_is_one_clear_error(cli, tmp_path, where, seed_samples):
    (tmp_path / "a-file").write_text("in the way")
    data = tmp_path / where if not where.startswith("/") else where
    code, _, err = cli(data, "ingest", str(seed_samples))
    assert code == 2 and "Traceback" not in err
    assert f"cannot create the data directory {data}" in err and "ADVERTISEX_DATA_DIR" in err


def test_a_moved_lake_says_where_it_was_made_not_that_it_is_a_bug(cli, tmp_path):
    """Iceberg records where every table's files are: a lake moved to another folder finds
    none of them. Every verb says where the lake was made and what to do, not "a bug"."""
    from datetime import date

    from advertisex.synth import generate

    generate(tmp_path / "in", events=300, seed=3, start=date(2026, 11, 10))
    made = tmp_path / "made"
    assert cli(made, "ingest", str(tmp_path / "in"))[0] == 0
    assert cli(made, "process")[0] == 0
    moved = tmp_path / "moved"
    made.rename(moved)
    for args in (["query", "select count(*) from curated.impressions"], ["process"], ["status"]):
        code, _, err = cli(moved, *args)
        assert code == 2, (args, err)
        assert f"was made in {made}" in err and f"move it back to {made}" in err, err
        assert "bug" not in err and "Traceback" not in err
    moved.rename(made)  # back where it was made: it answers again
    code, out, _ = cli(
        made, "query", "select count(*) as n from curated.impressions", "--format", "json"
    )
    assert code == 0 and '"n": 0' not in out and '"n": ' in out


@pytest.mark.slow
def test_a_copied_lake_reads_but_never_writes_into_the_originals_folders(cli, tmp_path):
    """A copy (``cp -r data copy``) still names the original's files: written through,
    its batches landed in the original's folders (deleted there as orphans) and its
    maintenance could delete files the original reads. Every verb that writes refuses,
    saying what to do; reads answer; the original is untouched; the same lake reached
    through another name (a symlink) is not a copy."""
    import shutil
    from datetime import date

    from advertisex.synth import generate

    generate(tmp_path / "in", events=300, seed=3, start=date(2026, 11, 10))
    generate(tmp_path / "more", events=300, seed=4, start=date(2026, 11, 11))
    made = tmp_path / "made"
    assert cli(made, "ingest", str(tmp_path / "in"))[0] == 0
    assert cli(made, "process")[0] == 0
    assert cli(made, "dims", "load", str(tmp_path / "in" / "dims" / "campaigns.csv"))[0] == 0
    copy = tmp_path / "copy"
    shutil.copytree(made, copy)
    before = sorted(p for p in (made / "warehouse").rglob("*"))
    assert cli(copy, "ingest", str(tmp_path / "more"))[0] == 0  # its own landing zone
    marts = {"ADVERTISEX_CORRELATION__UPDATE_MARTS": "true"}
    landing = {p: p.read_bytes() for p in (copy / "landing").rglob("*") if p.is_file()}
    code, out, _ = cli(
        made, "query", "select min(user_id) u from curated.impressions", "--format", "json"
    )
    user = json.loads(out)[0]["u"]
    # dims load writes through pyiceberg itself: a changed campaign in a table the original has
    changed = (tmp_path / "in" / "dims" / "campaigns.csv").read_text().replace(",USD,", ",EUR,")
    (tmp_path / "changed.csv").write_text(changed)
    campaigns = str(tmp_path / "changed.csv")
    verbs = [["process"], ["maintain"], ["report", "refresh"], ["forget", "-u", user]]
    for args in [*verbs, ["dims", "load", campaigns]]:
        code, _, err = cli(copy, *args, **marts)
        err = " ".join(err.split())
        assert code == 2, (args, err)
        assert f"is a copy of the one in {made}" in err and "read-only" in err, (args, err)
        assert f"work in {made}" in err and "Traceback" not in err, (args, err)
    up = subprocess.run(  # refused before the collector, processor and monitors start
        [sys.executable, "-m", "advertisex.cli.app", "up", "--port", "0"],
        env={**os.environ, "ADVERTISEX_DATA_DIR": str(copy), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert up.returncode == 2 and f"is a copy of the one in {made}" in up.stderr, up.stderr
    assert sorted(p for p in (made / "warehouse").rglob("*")) == before
    assert {p: p.read_bytes() for p in (copy / "landing").rglob("*") if p.is_file()} == landing
    code, out, _ = cli(copy, "query", "select count(*) as n from curated.impressions")
    assert code == 0 and "Traceback" not in out
    code, out, err = cli(copy, "status")  # says so where a user looks first
    assert code == 0 and "read-only: " in " ".join((out + err).split())
    code, out, _ = cli(made, "status", "--format", "json")
    assert code == 0 and json.loads(out)["read_only"] is None
    (tmp_path / "link").symlink_to(made)
    assert cli(tmp_path / "link", "ingest", str(tmp_path / "more"))[0] == 0
    assert cli(tmp_path / "link", "process")[0] == 0


def _count(cli, data, table="curated.impressions"):
    code, out, err = cli(data, "query", f"select count(*) as n from {table}", "--format", "json")
    assert code == 0, err
    return json.loads(out)[0]["n"]


def test_relocate_makes_a_moved_lake_this_folders_own(cli, tmp_path):
    """Moved, then relocated where it is now: it answers, takes new batches and upkeep,
    and a second relocation has nothing to do."""
    from datetime import date

    from advertisex.synth import generate

    generate(tmp_path / "in", events=300, seed=3, start=date(2026, 11, 10))
    generate(tmp_path / "more", events=300, seed=4, start=date(2026, 11, 11))
    made = tmp_path / "made"
    assert cli(made, "ingest", str(tmp_path / "in"))[0] == 0
    assert cli(made, "process")[0] == 0
    before = _count(cli, made)
    moved = tmp_path / "moved"
    made.rename(moved)
    code, out, err = cli(moved, "relocate")
    assert code == 0 and "relocated" in err + out and f"from {made}/warehouse" in err + out
    assert _count(cli, moved) == before
    assert cli(moved, "ingest", str(tmp_path / "more"))[0] == 0
    assert cli(moved, "process", ADVERTISEX_CORRELATION__UPDATE_MARTS="true")[0] == 0
    assert _count(cli, moved) > before
    assert _count(cli, moved, "marts.campaign_hourly") > 0
    assert cli(moved, "maintain")[0] == 0
    code, out, err = cli(moved, "relocate", "--format", "json")
    assert code == 0 and json.loads(out)["tables"] == []
    assert not made.exists()


@pytest.mark.slow
def test_relocate_makes_a_copy_a_lake_of_its_own_and_leaves_the_original_as_it_was(cli, tmp_path):
    """A copy relocated takes batches of its own; the original's folders are byte for byte
    the same names, its answers the same; with the original deleted, the copy still reads
    every table, goes on incrementally with the marts and runs its upkeep."""
    import shutil
    from datetime import date

    from advertisex.synth import generate

    generate(tmp_path / "in", events=300, seed=3, start=date(2026, 11, 10))
    generate(tmp_path / "more", events=300, seed=4, start=date(2026, 11, 11))
    marts = {"ADVERTISEX_CORRELATION__UPDATE_MARTS": "true"}
    made = tmp_path / "made"
    assert cli(made, "ingest", str(tmp_path / "in"))[0] == 0
    assert cli(made, "process", **marts)[0] == 0
    before = {t: _count(cli, made, t) for t in ("curated.impressions", "marts.campaign_hourly")}
    listing = sorted((made / "warehouse").rglob("*"))
    copy = tmp_path / "copy"
    shutil.copytree(made, copy)
    code, out, err = cli(copy, "relocate")
    assert code == 0 and f"from {made}/warehouse" in " ".join((err + out).split())
    assert cli(copy, "ingest", str(tmp_path / "more"))[0] == 0
    assert cli(copy, "process", **marts)[0] == 0
    after = _count(cli, copy)
    assert after > before["curated.impressions"]
    assert sorted((made / "warehouse").rglob("*")) == listing
    assert {t: _count(cli, made, t) for t in before} == before
    shutil.rmtree(made)
    assert _count(cli, copy) == after
    code, out, err = cli(copy, "report", "refresh", "--rebuild", **marts)
    assert code == 0, err
    assert cli(copy, "maintain")[0] == 0
    assert _count(cli, copy) == after


def test_a_new_data_directory_is_flushed_in_its_parent(open_lake, tmp_path, monkeypatch):
    """The data directory (and any folder made above it) was made with ``mkdir`` alone: a
    power cut after ``ingest`` answered into a new lake could take the whole folder, and
    everything it had landed, with it."""
    flushed = fsyncs(monkeypatch)
    data = tmp_path / "new" / "data"
    assert open_lake(data).create_data_dir()
    assert not open_lake(data).create_data_dir()  # there already: said so, not made again
    assert str(tmp_path) in flushed and str(tmp_path / "new") in flushed
