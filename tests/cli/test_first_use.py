"""Where the lake is: made once by a verb that stores data (and said so), never by a read."""

from __future__ import annotations

import pytest

READ_VERBS = [
    ["query", "select 1"],
    ["status"],
    ["report", "campaigns"],
    ["quarantine", "list"],
    ["dims", "list"],
    ["alerts"],
    ["console", "--port", "0"],
]


@pytest.mark.parametrize("args", READ_VERBS, ids=lambda a: " ".join(a))
def test_a_read_on_a_missing_lake_says_so_and_makes_nothing(cli, tmp_path, args):
    data = tmp_path / "data"
    code, _, err = cli(data, *args)
    assert code == 2 and f"there is no lake at {data}" in err and "advertisex ingest" in err
    assert not data.exists()


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
