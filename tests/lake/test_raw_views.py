"""raw.* views: unprocessed landing files, queryable before processing, gone after it."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import fastavro
import pytest


def _avro(rows: list[dict[str, Any]]) -> bytes:
    schema = {
        "type": "record",
        "name": "BidRequest",
        "fields": [
            {"name": "auction_id", "type": "string"},
            {"name": "timestamp", "type": "string"},
            {"name": "user_id", "type": "string"},
            {"name": "bid_price", "type": ["null", "double"], "default": None},
        ],
    }
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), rows)
    return out.getvalue()


def test_raw_views_show_pending_landing_files_until_processed(ax: Any) -> None:
    line = '{"timestamp": "2026-11-20T10:00:00Z", "ad_creative_id": "cr-1", "user_id": "u%d", "website": "w"}'
    ax.landing.write_segment(
        "impressions", ("\n".join(line % i for i in range(2)) + "\n").encode(), fsync=False
    )
    ax.landing.write_segment("impressions", gzip.compress((line % 9).encode()), fsync=False)
    clicks = "timestamp;user_id;campaign_id;event_type\n2026-11-20T10:01:00Z;u1;c1;click\n2026-11-20T10:02:00Z;u2;c1;conversion\n"
    ax.landing.write_segment("clicks", clicks.encode(), fsync=False)
    bids = [
        {
            "auction_id": f"a{i}",
            "timestamp": "2026-11-20T09:59:59Z",
            "user_id": "u1",
            "bid_price": 1.5,
        }
        for i in range(3)
    ]
    ax.landing.write_segment("bids", _avro(bids), fsync=False)

    def counts() -> dict[str, Any]:
        sql = """select (select count(*) from raw.impressions) i,
                        (select count(distinct filename) from raw.impressions) files,
                        (select count(*) from raw.clicks where campaign_id = 'c1') c,
                        (select sum(bid_price::DOUBLE) from raw.bid_requests) b"""
        return ax.query(sql).to_pylist()[0]

    assert counts() == {"i": 3, "files": 2, "c": 2, "b": 4.5}
    users = ax.query("select user_id from raw.impressions order by 1").column("user_id").to_pylist()
    assert users == ["u0", "u1", "u9"]
    ax.process()
    assert counts() == {"i": 0, "files": 0, "c": 0, "b": None}


def test_garbage_in_the_landing_zone_does_not_break_queries(ax: Any) -> None:
    ax.landing.write_segment("impressions", b"\x00\x01 not json at all", fsync=False)
    ax.landing.write_segment("clicks", b"\xff\xfe\x00", fsync=False)
    ax.landing.write_segment("bids", b"Obj\x01 truncated", fsync=False)
    rows = ax.query("select (select count(*) from raw.clicks) c, 1 AS ok").to_pylist()
    assert rows[0]["ok"] == 1
    assert ax.query("select count(*) n from curated.impressions").to_pylist() == [{"n": 0}]


def test_avro_files_that_type_a_field_differently_share_the_raw_view(ax: Any) -> None:
    from tests.hostile import avro_file, bad_typed_avro, bid

    ax.landing.write_segment("bids", avro_file([bid(1)]), fsync=False)  # floor_price: double
    ax.landing.write_segment("bids", bad_typed_avro(n=2, bad=1), fsync=False)  # and text
    rows = ax.query("select auction_id, floor_price from raw.bid_requests order by 1, 2")
    assert rows.num_rows == 3
    assert "abc" in rows.column("floor_price").to_pylist()


@pytest.mark.slow  # a decoder worker overruns its share of the budget, then salvages
def test_a_poison_avro_pending_in_the_landing_zone_cannot_hang_a_query(tmp_path: Path) -> None:
    """raw.bid_requests decodes pending Avro under the processor's budget: the poison (which
    spins polars-avro forever) is read by the salvage path once the fast path overruns."""
    import advertisex
    from tests.hostile import avro_file, bid, poison_avro

    ax = advertisex.open(data_dir=tmp_path / "data", processor={"decode_seconds": 2.0})
    ax.landing.write_segment("bids", poison_avro(), fsync=False)
    ax.landing.write_segment("bids", avro_file([bid(1)]), fsync=False)
    rows = ax.query("select auction_id from raw.bid_requests order by 1").to_pylist()
    assert rows == [{"auction_id": "a1"}, {"auction_id": "a1000"}]
