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
