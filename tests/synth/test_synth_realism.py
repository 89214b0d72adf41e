"""The traffic looks like ad traffic: rates, timing, linkage between the four streams."""

from __future__ import annotations

import ipaddress
import json
import statistics
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import fastavro
import polars_avro
import pytest
from synth_recount import Recount, is_bot_agent, recount

from advertisex.synth.avro_out import writer_schema

CANONICAL = Path(__file__).resolve().parents[2] / "advertisex" / "model" / "bid_request.avsc"


@pytest.fixture(scope="module")
def clean(clean_run: tuple[Path, dict[str, Any]]) -> Recount:
    return recount(clean_run[0])


def test_mix_of_record_kinds(clean_run: tuple[Path, dict[str, Any]]) -> None:
    _, truth = clean_run
    total = truth["ground_truth"]["records_total"]
    tables = truth["tables"]
    assert total == truth["events"]  # no faults: exactly the requested count
    assert 0.53 < tables["impressions"]["unique"] / total < 0.57
    assert 0.41 < tables["bid_requests"]["unique"] / total < 0.46
    clicks, conversions = tables["clicks"]["unique"], tables["conversions"]["unique"]
    assert 0 < conversions < 0.1 * clicks


def test_click_through_rate_in_range(clean: Recount) -> None:
    impressions = Counter(r["campaign_id"] for r in clean.tables["impressions"].rows.values())
    clicks = Counter(r["campaign_id"] for r in clean.tables["clicks"].rows.values())
    overall = sum(clicks.values()) / sum(impressions.values())
    assert 0.001 <= overall <= 0.02
    # Campaigns differ; with a thousand impressions or more each, the spread shows.
    rates = [clicks[c] / n for c, n in impressions.items() if n >= 1000]
    assert len(rates) >= 5
    assert max(rates) > 1.5 * min(rates)


def test_clicks_follow_their_impressions(clean: Recount) -> None:
    impressions = clean.tables["impressions"].rows
    clicks = list(clean.tables["clicks"].rows.values())
    linked = [c for c in clicks if c["impression_id"]]
    assert 0.6 < len(linked) / len(clicks) < 0.8  # ~30 % carry no impression_id
    delays = []
    for click in linked:
        shown = impressions[click["impression_id"]]
        assert (click["user_id"], click["campaign_id"], click["ad_creative_id"]) == (
            shown["user_id"],
            shown["campaign_id"],
            shown["ad_creative_id"],
        )
        delays.append((click["time"] - shown["time"]).total_seconds())
    assert min(delays) > 0
    assert 8 < statistics.median(delays) < 50  # lognormal, median ~20 s
    assert max(delays) < 24 * 3600


def test_conversions_are_well_formed(clean: Recount) -> None:
    conversions = list(clean.tables["conversions"].rows.values())
    assert conversions
    for row in conversions:
        assert row["event_id"].startswith("cnv-") and row["impression_id"] == ""
        assert row["conversion_type"] in {"signup", "purchase", "install", "lead", "other"}
        assert row["currency"] in {"USD", "EUR", "GBP"}
        _, cents = row["conversion_value"].split(".")
        assert len(cents) == 2
        if row["conversion_type"] == "purchase":
            assert float(row["conversion_value"]) > 0


def test_every_programmatic_impression_won_its_bid(clean: Recount) -> None:
    bids = {key[1]: row for key, row in clean.tables["bid_requests"].rows.items()}
    impressions = list(clean.tables["impressions"].rows.values())
    programmatic = [i for i in impressions if "auction_id" in i]
    assert programmatic
    for shown in programmatic:
        bid = bids[shown["auction_id"]]
        lead = shown["time"] - bid["time"]
        assert timedelta(milliseconds=5) <= lead <= timedelta(milliseconds=400)
        assert bid["user_id"] == shown["user_id"]
        assert bid["campaign_id"] == shown["campaign_id"]
        assert bid["site_domain"] == shown["website"].split("/")[2]
        assert bid["floor_price"] <= shown["cost"] * 1000 <= bid["bid_price"]
    won = len(programmatic) / len(bids)
    assert 0.37 < won < 0.43
    no_bid = [b for b in bids.values() if b["bid_price"] is None]
    assert no_bid and all(b["campaign_id"] is None for b in no_bid)


def test_diurnal_shape(clean: Recount) -> None:
    by_hour = Counter(r["time"].hour for r in clean.tables["impressions"].rows.values())
    assert min(by_hour, key=lambda h: by_hour[h]) in {3, 4, 5}
    assert max(by_hour, key=lambda h: by_hour[h]) in {18, 19, 20}


def test_users_are_heavy_tailed(clean: Recount) -> None:
    per_user = Counter(r["user_id"] for r in clean.tables["impressions"].rows.values())
    counts = sorted(per_user.values(), reverse=True)
    top_share = sum(counts[: len(counts) // 100]) / sum(counts)
    assert top_share > 0.1  # the top 1 % of users see over 10 % of the ads


def test_timestamps_use_several_legal_spellings(clean_run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = clean_run
    kinds: Counter[str] = Counter()
    for path in sorted((out / "impressions").glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            stamp = json.loads(line)["timestamp"]
            if isinstance(stamp, int):
                kinds["epoch_ms"] += 1
            else:
                kinds[stamp[23:] or "naive"] += 1
    total = sum(kinds.values())
    assert set(kinds) == {"Z", "+00:00", "+02:00", "naive", "epoch_ms"}
    assert 0.03 < 1 - kinds["Z"] / total < 0.08
    # The recount's file-hour check (late == 0 here) proves +02:00 converts correctly.


def test_no_late_records_without_late_faults(clean: Recount) -> None:
    assert all(table.late == 0 for table in clean.tables.values())


def test_bots_look_like_crawlers(
    faulty_run: tuple[Path, dict[str, Any]], faulty_recount: Recount
) -> None:
    _, truth = faulty_run
    bot_users = set(truth["ground_truth"]["bot_user_ids"])
    bots = [
        r for r in faulty_recount.tables["impressions"].rows.values() if r["user_id"] in bot_users
    ]
    assert bots and all(is_bot_agent(r["user_agent"]) for r in bots)
    google = ipaddress.ip_network("66.249.64.0/19")
    assert any(ipaddress.ip_address(r["ip"]) in google for r in bots)
    assert {a for r in bots for a in ("Googlebot", "HeadlessChrome") if a in r["user_agent"]} == {
        "Googlebot",
        "HeadlessChrome",
    }


def test_avro_reads_with_both_readers(clean_run: tuple[Path, dict[str, Any]]) -> None:
    out, truth = clean_run
    files = sorted((out / "bids").glob("*.avro"))
    canonical = fastavro.parse_schema(json.loads(CANONICAL.read_text()))
    resolved = 0
    for path in files:
        with path.open("rb") as handle:
            reader = fastavro.reader(handle, reader_schema=canonical)
            assert reader.metadata["avro.codec"] == "deflate"
            assert reader.writer_schema["name"] == "io.advertisex.BidRequest"
            resolved += sum(1 for _ in reader)
    frame = polars_avro.read_avro(files)
    assert resolved == len(frame) == truth["sources"]["bids"]["records"]
    assert frame.columns == [f["name"] for f in writer_schema()["fields"]]
    assert str(frame.schema["ad_targeting"]).startswith("Map")


def test_writer_schema_is_canonical_but_for_timestamp() -> None:
    canonical = json.loads(CANONICAL.read_text())
    ours = writer_schema()
    for theirs, mine in zip(canonical["fields"], ours["fields"], strict=True):
        if mine["name"] == "timestamp":
            assert mine["type"] == ["null", {"type": "long", "logicalType": "timestamp-millis"}]
        else:
            assert mine == theirs
