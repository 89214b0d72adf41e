"""``advertisex demo``: checks only what it made, --fresh deletes only what it made, and it
says how to reach ``advertisex`` when the virtualenv is not activated."""

from __future__ import annotations

import pytest

from tests.cli_fixtures import in_fresh_interpreter

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
    (data / "spill").mkdir(exist_ok=True)  # what a batch that stored its keys leaves (1 M events)
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
    marts = {"ADVERTISEX_CORRELATION__UPDATE_MARTS": "true"}  # the report reads them
    code, out, err = cli(tmp_path / "data", "demo", "--events", "2000", COLUMNS="100", **marts)
    assert code == 0 and "advertisex is not on your PATH" in err and "/activate" in err
    # Its report and its accounting (as `report campaigns` and `process` show them) on a
    # 100-column terminal: tables of their most looked-at columns, not blocks.
    assert "one record per block" not in out and "│ cmp-001 " in out and "│ clicks " in out
    assert "more columns, too wide for 100: advertisex report campaigns --columns all" in err
    assert "1 more column, too wide for 100: --format json shows it" in err  # balanced
    assert max(len(line) for line in out.splitlines()) <= 100


def test_the_demo_times_each_phase_and_lands_what_it_generates_while_generating(cli, tmp_path):
    from advertisex.util import jsonutil

    code, out, _ = cli(tmp_path / "data", "demo", "--events", "2000", "--format", "json")
    assert code == 0
    result = jsonutil.loads(out)
    assert all(row["match"] for row in result["truth_check"])
    generated = {
        f.read_bytes()
        for source in ("impressions", "clicks", "bids")
        for f in (tmp_path / "data" / "demo-input" / source).iterdir()
    }
    generated.discard(b"")  # an hour without impressions: an empty file, skipped
    # each handed over to ingest as written; the same bytes (a header alone) land once
    assert result["landed"] == len(generated)
    phases = ("generate", "ingest", "process", "report", "check", "total")
    assert set(result["timings_s"]) == set(result["cpu_s"]) == set(phases)
    parts = {"process: prepare", "process: transform", "process: commit", "process: marts"}
    assert set(result["phases_s"]) == parts
    assert sum(result["phases_s"].values()) <= result["timings_s"]["process"] + 0.05


def test_the_demo_never_loads_pandas(tmp_path):
    """Arrow would import it on the bid files' first array (0.4 s of CPU holding the GIL
    while the generator runs) only to ask whether it was handed a pandas object."""
    from advertisex.util import jsonutil

    done = in_fresh_interpreter(
        ["demo", "--events", "2000", "--format", "json"],
        {"ADVERTISEX_DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 0, done.stderr
    assert all(row["match"] for row in jsonutil.loads(done.stdout)["truth_check"])
    assert done.stderr.splitlines()[-1] == "False"
