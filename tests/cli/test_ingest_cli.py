"""``advertisex ingest`` fails when nothing landed and shows real sizes; a batch that was all
quarantined is a warning, not only "every record accounted for"."""

from __future__ import annotations

import json


def test_ingest_of_only_unrecognised_files_fails_and_shows_their_sizes(cli, tmp_path, seed_samples):
    files = [seed_samples / "README.md", seed_samples / "bid_requests.schema.json"]
    code, out, err = cli(tmp_path / "data", "ingest", *map(str, files), "--format", "json")
    assert code == 2 and "nothing landed: all 2 files were skipped" in err
    rows = json.loads(out)
    assert [r["bytes"] for r in rows] == [f.stat().st_size for f in files]
    assert all(r["status"] == "skipped" for r in rows)


def test_ingest_of_files_already_landed_is_a_successful_no_op(cli, tmp_path, seed_samples):
    data, file = tmp_path / "data", str(seed_samples / "clicks_conversions.csv")
    assert cli(data, "ingest", file)[0] == 0
    code, _, err = cli(data, "ingest", file)
    assert code == 0 and "0 landed, 1 already ingested" in err and "Next:" not in err


def test_a_batch_quarantined_whole_is_a_warning(cli, tmp_path):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"timestamp": "not a time", "user_id": "u"}\n{"website": "w"}\n')
    data = tmp_path / "data"
    assert cli(data, "ingest", str(bad), "--source", "impressions")[0] == 0
    code, _, err = cli(data, "process")
    assert code == 0
    assert "warning: every one of the 2 impressions records was quarantined" in err


def test_ingest_of_an_empty_folder_or_a_mistyped_path_fails_and_makes_no_lake(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_text("x")
    data = tmp_path / "data"
    code, _, err = cli(data, "ingest", str(tmp_path / "empty"))
    assert code == 2 and "holds no file to ingest" in err
    code, _, err = cli(data, "ingest", str(tmp_path / "nope" / "*.csv"))
    assert code == 2 and "no such file, folder or matching glob" in err
    assert not data.exists() and "created a new lake" not in err
