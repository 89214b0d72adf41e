"""A data file the lake's storage lost or damaged: every verb that reads it says which file
and how to get its rows back, and ``replay`` does (``lake.damage``, docs/robustness.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from advertisex import synth
from advertisex.util.timeutil import parse_date
from tests.kept_lakes import KeptLake

pytestmark = pytest.mark.integration

BUG = "this is a bug in advertisex"
COUNTS = (
    "select (select count(*) from curated.impressions) i, "
    "(select count(*) from curated.bid_requests) b, (select count(*) from ops.batches) o"
)
ONE_MORE = (
    '{"impression_id":"late-1","timestamp":"2026-11-02T12:00:00Z","ad_creative_id":"c",'
    '"user_id":"u","website":"https://example.com/a"}\n'
)


def _damage(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "cut short":
        with path.open("r+b") as file:
            file.truncate(1000)
    else:  # written over with what is not Parquet
        path.write_bytes(b"not parquet " * 10_000)


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> KeptLake:
    """Lakes ingested and processed once (as ``cli`` does it: the marts left alone), each
    test given its own copy: "processed", 3,000 events, for each way a data file is
    damaged; "small", 500, for each piece of metadata lost and for the catalog."""
    import shutil

    import advertisex

    kept = KeptLake(tmp_path_factory.mktemp("damage"))
    for state, events in (("processed", 3000), ("small", 500)):
        shutil.rmtree(kept.data, ignore_errors=True)
        source = kept.root / f"in-{events}"
        synth.generate(source, events=events, seed=5, start=parse_date("2026-11-02"))
        ax = advertisex.open(data_dir=kept.data, correlation={"update_marts": False})
        ax.ingest([str(source)])
        ax.process()
        kept.keep(state)
    return kept


@pytest.mark.parametrize("how", ["missing", "cut short", "written over"])
def test_a_file_the_storage_lost_is_named_with_the_way_back_and_replay_rebuilds_it(
    cli, processed, tmp_path, how
):
    data = processed.restored("processed")
    code, before, err = cli(data, "query", COUNTS, "--format", "csv")
    assert code == 0, err
    files = sorted((data / "warehouse" / "curated" / "impressions").rglob("*.parquet"))
    _damage(files[0], how)

    code, _, err = cli(data, "query", "select count(*) from curated.impressions")
    assert code == 2 and BUG not in err, err
    assert "LakeFilesDamaged" in _alerts(data)  # and the operations team hears of it
    assert "cannot be read (lost or damaged outside advertisex)" in err
    assert files[0].name in err and "curated.impressions" in err
    replay = re.search(r"advertisex (replay --from \S+ --to \S+)", err)
    assert replay, err

    # The next batch's dedupe lookup reads the same day's files: the same message, nothing
    # committed, and no retries of what no retry mends.
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "late.ndjson").write_text(ONE_MORE)
    assert cli(data, "ingest", str(tmp_path / "more"), "--source", "impressions")[0] == 0
    code, _, err = cli(data, "process")
    assert code == 2 and BUG not in err and files[0].name in err, err
    assert "retry" not in err

    code, _, err = cli(data, *replay.group(1).split())
    assert code == 0 and BUG not in err, err
    assert "LakeFilesDamaged" not in _alerts(data)
    code, after, err = cli(data, "query", COUNTS, "--format", "csv")
    # Every row back, and the late impression too: the replayed batch took the pending
    # segment with it (one batch, a row of ops.batches a source, as before).
    i, b, o = before.splitlines()[1].split(",")
    assert after.splitlines()[1] == f"{int(i) + 1},{b},{o}", (before, after)


def _alerts(data: Path) -> set[str]:
    """The alert names the lake's monitors would raise now (no notification sent)."""
    import advertisex
    from advertisex.monitor.checks import evaluate
    from advertisex.monitor.gather import Gatherer

    ax = advertisex.open(data_dir=data)
    observations = Gatherer(ax.settings, ax.lake).observe()
    findings, _ = evaluate(observations, ax.settings.monitor, only=frozenset({"lake_files"}))
    return {f.alertname for f in findings}


@pytest.mark.parametrize("lost", ["metadata.json", "manifest list", "manifest"])
def test_a_table_whose_metadata_the_storage_lost_is_named_by_every_verb(cli, processed, lost):
    """Iceberg reads nothing of a table whose metadata file, manifest list or a manifest
    is gone: each verb says which file, and that a backup is the way back (it was a bug
    report; maintain said another writer had changed the table meanwhile)."""
    data = processed.restored("small")
    folder = data / "warehouse" / "curated" / "impressions" / "metadata"
    newest = {
        "metadata.json": sorted(folder.glob("*.metadata.json"))[-1],
        "manifest list": max(folder.glob("snap-*.avro"), key=lambda p: p.stat().st_mtime_ns),
        "manifest": sorted(p for p in folder.glob("*.avro") if not p.name.startswith("snap-"))[-1],
    }[lost]
    newest.unlink()
    for verb in (["query", "select count(*) from curated.impressions"], ["status"], ["maintain"]):
        code, _, err = cli(data, *verb)
        assert code == 2 and BUG not in err, (verb, err)
        assert "cannot be read (lost or damaged outside advertisex)" in err, (verb, err)
        assert newest.name in err and "from a backup of the lake" in err, (verb, err)


def test_a_lake_whose_catalog_is_gone_says_so_and_is_never_made_anew_beside_its_tables(
    cli, processed, tmp_path
):
    """catalog.db deleted (or left out of a copy): every verb that reads or writes tables
    refuses, naming it — opened anew, it was made empty, queries answered nothing and the
    next process took every landed file again into new tables beside the old ones. Intake
    goes on. The two ways back the hint gives both work."""
    data = processed.restored("small")
    code, before, err = cli(data, "query", COUNTS, "--format", "csv")
    kept = (data / "catalog.db").read_bytes()
    (data / "catalog.db").unlink()
    for verb in (["query", COUNTS], ["process"], ["maintain"], ["status"]):
        code, _, err = cli(data, *verb)
        assert code == 2 and BUG not in err, (verb, err)
        assert "but no catalog" in err and "restore catalog.db from a backup" in err, err
    assert not (data / "catalog.db").exists()
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "late.ndjson").write_text(ONE_MORE)
    assert cli(data, "ingest", str(tmp_path / "more"), "--source", "impressions")[0] == 0

    (data / "catalog.db").write_bytes(kept)  # restored from a backup
    assert cli(data, "process")[0] == 0
    code, restored, err = cli(data, "query", COUNTS, "--format", "csv")
    i, b, o = before.splitlines()[1].split(",")
    assert restored.splitlines()[1] == f"{int(i) + 1},{b},{int(o) + 1}", (before, restored)

    (data / "catalog.db").unlink()  # the other way: the tables made again from landing
    (data / "warehouse").rename(tmp_path / "warehouse-aside")
    assert cli(data, "process")[0] == 0
    code, rebuilt, err = cli(data, "query", COUNTS, "--format", "csv")
    assert code == 0 and rebuilt.splitlines()[1].split(",")[:2] == [str(int(i) + 1), b], err
