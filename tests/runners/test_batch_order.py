"""The order of a piece's rows in its data files and quarantine, found without the engine."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.runners.batch import _engine_order, quarantine_rows, sort_order

_BASE = datetime(2026, 11, 20, tzinfo=UTC)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["cmp-1", "cmp-10", "cmp-2", "Z", "é", ""])),
            st.one_of(st.none(), st.integers(-40 * 3600, 60 * 3600)),
        ),
        max_size=40,
    ),
    st.integers(0, 5),
)
def test_rows_are_ordered_as_the_engine_orders_them(rows, cut) -> None:
    """Day, campaign (bytes order), time, then row number; nulls last: as the engine's
    ``ORDER BY date_trunc('day', event_time), campaign_id, event_time, i``."""
    times = [None if s is None else _BASE + timedelta(seconds=s) for _, s in rows]
    table = pa.table(
        {
            "campaign_id": pa.array([c for c, _ in rows], pa.string()),
            "event_time": pa.array(times, pa.timestamp("us", "UTC")),
        }
    )
    table = pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    for day, by in ((["event_time"], ("campaign_id", "event_time")), ([], ("campaign_id",))):
        assert sort_order(table, day, by).tolist() == _engine_order(table, day, by).tolist()


def test_quarantine_rows_come_in_segment_and_position_order_with_their_lineage() -> None:
    rejected = pa.table(
        {
            "reasons": [["json_invalid"], ["a", "b"], ["c"], ["d"]],
            "raw": ["x\r\n", None, "y\n", "z"],
            "frame_error": [None, "encoding_invalid: bad", None, None],
            "event_time": pa.array([None, None, _BASE, None], pa.timestamp("us", "UTC")),
            "segment": pa.array([3, 1, 3, 9], pa.int32()),  # segment 9 has no lineage
            "source_position": [7, 2, 5, 1],
        }
    )
    lineage = pa.table(
        {
            "segment": pa.array([1, 3], pa.int32()),
            "source_file": ["one", "three"],
            "ingest_time": pa.array([_BASE, _BASE], pa.timestamp("us", "UTC")),
        }
    )
    rows = quarantine_rows(rejected, "impressions", lineage, "b-1").to_pylist()
    assert [(r["source_file"], r["source_position"], r["raw"]) for r in rows] == [
        ("one", 2, ""),
        ("three", 5, "y"),
        ("three", 7, "x"),
    ]
    assert [r["reasons"] for r in rows] == [["a", "b"], ["c"], ["json_invalid"]]
    assert rows[0]["detail"] == "encoding_invalid: bad"
    assert {(r["source"], r["batch_id"]) for r in rows} == {("impressions", "b-1")}
    assert np.all([r["ingest_time"] == _BASE for r in rows])
