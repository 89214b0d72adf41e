"""The regression corpus in the landing zone: a batch with hostile files beside good ones
finishes, keeps every good record, and quarantines a bad-typed record alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile import bad_typed_avro, gzip_bomb, not_a_record_avro, poison_avro

pytestmark = pytest.mark.integration

GOOD = b'{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


@pytest.fixture
def ax(tmp_path: Path) -> Any:
    import advertisex

    return advertisex.open(
        data_dir=tmp_path / "data",
        correlation={"update_marts": False},
        processor={"decode_seconds": 5.0, "decode_memory_bytes": 256 << 20},
    )


def test_hostile_segments_cannot_stop_the_batch_around_them(ax: Any) -> None:
    ax.landing.write_segment("impressions", GOOD, label="good")
    ax.landing.write_segment("bids", poison_avro(), label="poison")
    ax.landing.write_segment("bids", bad_typed_avro(n=10, bad=3), label="typed")
    ax.landing.write_segment("bids", not_a_record_avro(), label="string")
    bomb = ax.landing.write_segment("impressions", gzip_bomb(1 << 30), label="bomb")

    report = ax.process()

    assert report.accounts["impressions"].accepted == 1
    assert [(u.segment.name, u.reason.split(":")[0]) for u in report.unreadable] == [
        (bomb.name, "decode_memory")
    ]
    bids = report.accounts["bids"]
    assert (bids.records_in, bids.accepted, bids.quarantined) == (1 + 10 + 3, 1 + 9, 1 + 3)
    rows = ax.query(
        "select reasons, raw from curated.quarantine where source = 'bids' order by raw"
    ).to_pylist()
    typed = [r for r in rows if "abc" in r["raw"]]
    assert [r["reasons"] for r in typed] == [["number_invalid:floor_price"]]
    assert '"auction_id":"a3"' in typed[0]["raw"]
    strings = sorted(r["raw"] for r in rows if r["reasons"] == ["type_invalid"])
    assert strings == ['"a"', '"not"', '"record"']
    accepted = ax.query("select auction_id from curated.bid_requests order by 1").to_pylist()
    expected = ["a0", "a1", "a1000", "a2", *[f"a{i}" for i in range(4, 10)]]
    assert [r["auction_id"] for r in accepted] == expected
