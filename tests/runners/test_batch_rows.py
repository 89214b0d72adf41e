"""A piece's accepted rows as the data files get them (``runners.batch.accepted_rows``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from advertisex import native
from advertisex.runners.batch import accepted_rows, gather_maps
from tests.native_helpers import helpers_missing

_T = pa.map_(pa.string(), pa.string())


def _bids() -> tuple[pa.Table, pa.Table]:
    at = datetime(2026, 11, 10, tzinfo=UTC)
    targeting = [[("age", "18-24"), ("g", "f")], None, [], [("age", "18-24"), ("g", "f")]]
    rows = pa.table(
        {
            "auction_id": ["a", "b", "c", "d"],
            "exchange": ["x"] * 4,
            "event_time": pa.array(
                [at + timedelta(minutes=m) for m in (3, 2, 1, 0)], pa.timestamp("us", tz="UTC")
            ),
            "user_id": ["u"] * 4,
            "campaign_id": ["c1"] * 4,
            "ad_targeting": pa.chunked_array([targeting[:2], targeting[2:]], _T),
            "payload_hash": ["h"] * 4,
            "segment": pa.array([0] * 4, pa.int32()),
            "source_position": pa.array([0, 1, 2, 3], pa.int64()),
        }
    )
    lineage = pa.table(
        {
            "segment": pa.array([0], pa.int32()),
            "source_file": ["bids/seg"],
            "ingest_time": pa.array([at], pa.timestamp("us", tz="UTC")),
        }
    )
    return rows, lineage


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
def test_targeting_maps_reach_the_writer_with_their_keys_and_values_as_codes() -> None:
    """The distinct maps' keys and values are encoded once and each row takes its map's:
    the writer, which dictionary-encodes them anyway, hashes no entry's texts again."""
    rows, lineage = _bids()
    keep = np.ones(rows.num_rows, dtype=bool)
    written = accepted_rows("curated.bid_requests", rows, keep, lineage, "b1")
    kind = written.schema.field("ad_targeting").type
    assert pa.types.is_dictionary(kind.key_type) and pa.types.is_dictionary(kind.item_type)
    expected = rows.column("ad_targeting").to_pylist()[::-1]  # by time: the last row first
    assert written.column("ad_targeting").to_pylist() == expected


def test_without_the_helpers_the_maps_are_gathered_as_texts() -> None:
    rows, _ = _bids()
    with helpers_missing():
        gathered = gather_maps(rows.column("ad_targeting"), pa.array([3, 1]))
    assert gathered.type == _T
    assert gathered.to_pylist() == [[("age", "18-24"), ("g", "f")], None]


def _impressions() -> tuple[pa.Table, pa.Table]:
    at = datetime(2026, 11, 10, tzinfo=UTC)
    n = 12
    rows = pa.table(
        {
            "impression_id": [f"i-{k}" for k in range(n)],
            "event_time": pa.array(
                [at + timedelta(minutes=(7 * k) % n) for k in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "ad_creative_id": [f"cr-{k % 3}" for k in range(n)],
            "campaign_id": [None if k % 5 == 0 else f"cmp-{k % 2}" for k in range(n)],
            "user_id": ["u"] * n,
            "website": ["https://example.com/"] * n,
            "device_type": pa.chunked_array(
                [["mobile", None, "desktop", "a-device-type-of-many-bytes"] * 2, ["ctv"] * 4]
            ),
            "country": ["US", "FR", "DE"] * 4,
            "payload_hash": ["h"] * n,
            "segment": pa.array([0] * n, pa.int32()),
            "source_position": pa.array(range(n), pa.int64()),
        }
    )
    lineage = pa.table(
        {
            "segment": pa.array([0], pa.int32()),
            "source_file": ["impressions/seg"],
            "ingest_time": pa.array([at], pa.timestamp("us", tz="UTC")),
        }
    )
    return rows, lineage


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
def test_few_valued_columns_are_encoded_by_the_helpers_as_arrow_encodes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Campaigns, creatives, devices and countries become codes by the compiled helpers
    (Arrow's hash kernel not called): the same codes, dictionaries and rows as Arrow's."""
    import pyarrow.compute as pc

    rows, lineage = _impressions()
    keep = np.array([k != 4 for k in range(rows.num_rows)])
    with helpers_missing():
        by_arrow = accepted_rows("curated.impressions", rows, keep, lineage, "b1")

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("Arrow's dictionary_encode for a few-valued column")

    monkeypatch.setattr(pc, "dictionary_encode", refused)
    by_helpers = accepted_rows("curated.impressions", rows, keep, lineage, "b1")
    assert by_helpers.equals(by_arrow)
    for name in ("campaign_id", "ad_creative_id", "device_type", "country"):
        ours, theirs = by_helpers.column(name).chunk(0), by_arrow.column(name).chunk(0)
        assert ours.dictionary.equals(theirs.dictionary)
        assert ours.indices.equals(theirs.indices)
