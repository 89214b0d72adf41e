"""The CLI end to end on generated data with every fault knob on, checked against truth.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(
    args: list[str], data_dir: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data_dir), COLUMNS="200", **(env or {}))
    result = subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", *args], capture_output=True, text=True, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"advertisex {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def query(sql: str, data_dir: Path) -> list[dict]:
    return json.loads(run(["query", sql, "--format", "json"], data_dir).stdout)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("e2e")
    source, data = base / "input", base / "data"
    run(
        [
            "generate",
            "--out",
            str(source),
            "--events",
            "40000",
            "--seed",
            "11",
            "--start",
            "2026-11-01",
            "--days",
            "2",
            "--duplicate-rate",
            "0.02",
            "--malformed-rate",
            "0.01",
            "--late-rate",
            "0.05",
            "--bot-rate",
            "0.02",
            "--conflict-rate",
            "0.005",
            "--format",
            "json",
        ],
        data,
    )
    truth = json.loads((source / "truth.json").read_text())
    run(["ingest", str(source / "impressions"), str(source / "clicks"), str(source / "bids")], data)
    # Small batches, so accounting is checked on many batch rows, not one.
    run(["process"], data, env={"ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES": "3000000"})
    return source, data, truth


def test_every_curated_table_holds_exactly_the_unique_valid_human_events(pipeline):
    _, data, truth = pipeline
    # One query (one CLI process) for every count: rows, distinct ids, disclosed IVT.
    counts = " union all ".join(
        f"select '{table}' as t, (select count(*) from curated.{table}) as n, "
        f"(select count(distinct {_id(table)}) from curated.{table}) as d, "
        f"(select count(*) from curated.filtered where event_table = 'curated.{table}') as ivt"
        for table in truth["tables"]
    )
    rows = {row["t"]: row for row in query(counts, data)}
    for table, expected in truth["tables"].items():
        row = rows[table]
        assert row["n"] == expected["unique_human"], table
        assert row["d"] == row["n"], f"{table} holds a duplicate id"
        assert row["ivt"] == expected["bots"], (
            f"{table}: invalid traffic is disclosed in curated.filtered"
        )
    [row] = query("select count(*) as n from curated.quarantine", data)
    assert row["n"] == truth["quarantine"]


def test_batch_accounting_balances_and_matches_truth_per_source(pipeline):
    _, data, truth = pipeline
    rows = query(
        "select source, sum(records_in) records_in, sum(accepted) accepted, sum(quarantined) quarantined,"
        " sum(filtered) filtered, sum(duplicates) duplicates, sum(conflicts) conflicts"
        " from ops.batches group by source",
        data,
    )
    for row in rows:
        expected = truth["sources"][row["source"]]
        assert row["records_in"] == expected["records"]
        assert row["quarantined"] == expected["malformed"]
        assert row["duplicates"] == expected["duplicates"] + expected["conflicts"]
        assert row["conflicts"] == expected["conflicts"]
        assert (
            row["records_in"]
            == row["accepted"] + row["quarantined"] + row["filtered"] + row["duplicates"]
        )
        fed = {
            "impressions": ["impressions"],
            "clicks": ["clicks", "conversions"],
            "bids": ["bid_requests"],
        }
        assert row["filtered"] == sum(truth["tables"][t]["bots"] for t in fed[row["source"]])
    assert {r["source"] for r in rows} == {"impressions", "clicks", "bids"}


def test_every_batch_row_balances(pipeline):
    _, data, _ = pipeline
    rows = query("select * from ops.batches", data)
    assert len(rows) >= 3
    for row in rows:
        parts = row["accepted"] + row["quarantined"] + row["filtered"] + row["duplicates"]
        assert row["records_in"] == parts, row["batch_id"]
        assert 0 <= row["conflicts"] <= row["duplicates"]


def test_quarantine_rows_keep_raw_text_reasons_and_position(pipeline):
    _, data, _ = pipeline
    rows = query("select reasons, raw, source_file, source_position from curated.quarantine", data)
    assert rows
    assert all(
        r["reasons"] and r["raw"] and r["source_file"] and r["source_position"] >= 1 for r in rows
    )


def test_second_ingest_and_process_change_nothing(pipeline):
    source, data, truth = pipeline
    again = json.loads(
        run(["ingest", str(source / "impressions"), "--format", "json"], data).stdout
    )
    assert {r["status"] for r in again} == {"already"}
    report = json.loads(run(["process", "--format", "json"], data).stdout)
    assert report["segments"] == 0
    [row] = query("select count(*) n from curated.impressions", data)
    assert row["n"] == truth["tables"]["impressions"]["unique_human"]


def test_report_campaigns_matches_ground_truth(pipeline):
    _, data, truth = pipeline
    report = json.loads(run(["report", "campaigns", "--format", "json"], data).stdout)
    got = {(r["campaign_id"], str(r["day"])): r for r in report}
    for expected in truth["ground_truth"]["campaign_days"]:
        row = got[(expected["campaign_id"], expected["day"])]
        assert row["impressions"] == expected["impressions"] - expected["bot_impressions"]
        assert row["clicks"] == expected["clicks"] - expected["bot_clicks"]
        assert row["conversions"] == expected["conversions"]
        assert row["unique_users"] == expected["human_users"]
        assert row["spend"] == pytest.approx(expected["human_spend"], abs=1e-6)


def test_report_campaigns_discloses_invalid_traffic_on_request(pipeline):
    _, data, truth = pipeline
    plain = json.loads(run(["report", "campaigns", "--format", "json"], data).stdout)
    assert "ivt_impressions" not in plain[0]
    report = json.loads(
        run(["report", "campaigns", "--include-ivt", "--format", "json"], data).stdout
    )
    got = {(r["campaign_id"], str(r["day"])): r for r in report}
    for expected in truth["ground_truth"]["campaign_days"]:
        row = got[(expected["campaign_id"], expected["day"])]
        assert row["ivt_impressions"] == expected["bot_impressions"]
        assert row["ivt_clicks"] == expected["bot_clicks"]
        assert row["impressions"] == expected["impressions"] - expected["bot_impressions"]


def test_write_statements_are_refused_with_a_message(pipeline):
    _, data, _ = pipeline
    result = run(["query", "drop table curated.impressions"], data, check=False)
    assert result.returncode == 2
    assert "read-only" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ingest", "/definitely/not/here.json"], "no such file"),
        (["ingest", "--source", "videos", "x"], "unknown source"),
        (["report", "campaigns", "--from", "someday"], "not a date"),
        (["query", "selec 1"], "does not parse"),
    ],
)
def test_cli_errors_say_what_to_do_without_a_traceback(tmp_path, args, needle):
    result = run(args, tmp_path, check=False)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_input_files_each_get_a_message_or_a_quarantine_row(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "empty.ndjson").write_bytes(b"")
    (drop / "notes.txt").write_text("hello\n")
    (drop / "imps.ndjson").write_bytes(
        b'{"timestamp":"3000-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'
        b'"just a string"\n{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'
    )
    (drop / "clicks.csv").write_bytes(
        b"\xef\xbb\xbftimestamp,user_id,campaign_id,event_type\r\n2026-01-01,u\r\n"
    )
    (drop / "bids.avro").write_bytes(b"Obj\x01\x00truncated")
    data = tmp_path / "data"
    landed = json.loads(run(["ingest", str(drop), "--format", "json"], data).stdout)
    status = {Path(r["path"]).name: r["status"] for r in landed}
    assert status == {
        "empty.ndjson": "skipped",
        "notes.txt": "skipped",
        "imps.ndjson": "landed",
        "clicks.csv": "landed",
        "bids.avro": "landed",
    }
    run(["process"], data)
    rows = query(
        "select source, reasons from curated.quarantine order by source, source_position", data
    )
    reasons = [(r["source"], r["reasons"][0]) for r in rows]
    assert reasons == [
        ("bids", "avro_unreadable"),
        ("clicks", "csv_column_count"),
        ("impressions", "timestamp_in_future"),
        ("impressions", "json_not_object"),
    ]
    [row] = query("select count(*) n from curated.impressions", data)
    assert row["n"] == 1


def _id(table: str) -> str:
    return {
        "impressions": "impression_id",
        "bid_requests": "coalesce(exchange,'')||auction_id",
    }.get(table, "event_id")
