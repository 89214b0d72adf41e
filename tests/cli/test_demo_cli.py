"""``advertisex demo``: checks only what it made, --fresh deletes only what it made, and it
says how to reach ``advertisex`` when the virtualenv is not activated."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_fresh_refuses_to_delete_a_lake_holding_more_than_the_demo(cli, tmp_path, seed_samples):
    data = tmp_path / "data"
    assert cli(data, "demo", "--events", "3000")[0] == 0
    assert cli(data, "ingest", str(seed_samples))[0] == 0
    code, _, err = cli(data, "demo", "--events", "3000", "--fresh")
    assert code == 2 and "--fresh would delete" in err
    assert "landing files that did not come from the demo" in err
    code, out, _ = cli(data, "query", "select count(*) n from raw.impressions", "--format", "json")
    assert code == 0 and '"n": 100' in out  # the seed samples are still there


def test_fresh_starts_over_when_the_lake_is_only_the_demos(cli, tmp_path):
    data = tmp_path / "data"
    assert cli(data, "demo", "--events", "3000")[0] == 0
    code, _, err = cli(data, "demo", "--events", "3000", "--fresh")
    assert code == 0 and "every table matches truth.json" in err
    code, out, _ = cli(
        data, "query", "select count(distinct batch_id) n from ops.batches", "--format", "json"
    )
    assert code == 0 and '"n": 1' in out  # one processing run since the fresh start


def test_a_second_demo_checks_only_its_own_rows(cli, tmp_path, seed_samples):
    data = tmp_path / "data"
    assert cli(data, "demo", "--events", "3000")[0] == 0
    assert cli(data, "ingest", str(seed_samples))[0] == 0
    assert cli(data, "process")[0] == 0
    code, _, err = cli(data, "demo", "--events", "3000")
    assert code == 0 and "every table matches truth.json" in err and "MISMATCH" not in err


def test_the_demo_says_how_to_run_advertisex_without_an_activated_venv(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    code, _, err = cli(tmp_path / "data", "demo", "--events", "2000")
    assert code == 0 and "advertisex is not on your PATH" in err and "/activate" in err
