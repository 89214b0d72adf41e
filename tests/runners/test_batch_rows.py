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
