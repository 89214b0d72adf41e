"""The order of a piece's rows in its data files and quarantine, found without the engine."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
        expected = _engine_order(table, day, by).tolist()
        assert sort_order(table, day, by).tolist() == expected
        # The campaign given as codes (accepted_rows encodes it once for its order and
        # its gather): each chunk its own dictionary, one holding a text twice.
        campaigns = table.column("campaign_id")
        coded = pa.chunked_array([_codes_of(chunk) for chunk in campaigns.chunks])
        as_codes = table.set_column(0, "campaign_id", coded)
        assert sort_order(as_codes, day, by).tolist() == expected


def _codes_of(texts: pa.Array) -> pa.DictionaryArray:
    """``texts`` as codes into a dictionary of its distinct texts, reversed, with the
    first of them twice (rows of it coded by either)."""
    distinct = list(reversed(pc.unique(texts.drop_null()).to_pylist()))
    dictionary = distinct + distinct[:1]
    codes = [
        None if t is None else (len(distinct) if i % 2 and t == distinct[0] else distinct.index(t))
        for i, t in enumerate(texts.to_pylist())
    ]
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int32()), pa.array(dictionary, pa.string())
    )


def test_the_campaign_is_encoded_once_for_its_order_and_its_codes(monkeypatch) -> None:
    """accepted_rows orders the rows by campaign (its texts' ranks) and writes it as codes:
    both from one encoding of the column — each hashed every campaign text of the piece."""
    from advertisex.runners.batch import accepted_rows

    times = pa.array([_BASE + timedelta(hours=h) for h in (3, 1, 2)], pa.timestamp("us", "UTC"))
    standardized = pa.table(
        {
            "event_id": ["e-1", "e-2", "e-3"],
            "event_time": times,
            "user_id": ["u-1", "u-2", "u-1"],
            "campaign_id": ["cmp-2", "cmp-1", "cmp-2"],
            "payload_hash": ["x1", "x2", "x3"],
            "segment": pa.array([7, 7, 7], pa.int32()),
            "source_position": [1, 2, 3],
        }
    )
    lineage = pa.table(
        {
            "segment": pa.array([7], pa.int32()),
            "source_file": ["clicks/a.csv"],
            "ingest_time": pa.array([_BASE], pa.timestamp("us", "UTC")),
        }
    )
    from advertisex.runners import batch

    encoded = []
    dictionary_encode = pc.dictionary_encode
    encode = batch.encoded  # by the compiled helpers, else by Arrow

    def counted(values, *args, **kwargs):
        encoded.append(values.to_pylist())
        return dictionary_encode(values, *args, **kwargs)

    def counted_either(values):
        encoded.append(values.to_pylist())
        with monkeypatch.context() as inside:  # Arrow's, if it comes to that, is this one
            inside.setattr(pc, "dictionary_encode", dictionary_encode)
            return encode(values)

    monkeypatch.setattr(pc, "dictionary_encode", counted)
    monkeypatch.setattr(batch, "encoded", counted_either)
    rows = accepted_rows("curated.clicks", standardized, np.ones(3, dtype=bool), lineage, "b-1")
    assert rows.column("event_id").to_pylist() == ["e-2", "e-3", "e-1"]
    assert rows.column("campaign_id").to_pylist() == ["cmp-1", "cmp-2", "cmp-2"]
    assert encoded.count(["cmp-2", "cmp-1", "cmp-2"]) == 1


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


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(-(2**40), 2**40), st.integers(0, 3)), max_size=60
    ),
    st.sampled_from([1, 2**20, 2**60]),
)
def test_packed_ranks_order_the_rows_as_lexsort_does(rows, spread) -> None:
    """Ranks packed into one 64-bit value a row (or, past 64 bits, lexsort itself): flags,
    negative values, ties broken by row number — lexsort's order every time."""
    from advertisex.runners.batch import ordered

    flags = np.array([f for f, _, _ in rows], dtype=bool)
    values = np.array([v for _, v, _ in rows], dtype=np.int64)
    small = np.array([s * spread for _, _, s in rows], dtype=np.int64)  # wide: past 64 bits
    ranks = [flags, small, values]
    expected = np.lexsort([np.arange(len(rows)), *reversed(ranks)])
    assert ordered(ranks, len(rows)).tolist() == expected.tolist()


def test_a_pieces_day_campaign_and_time_are_sorted_as_one_key(monkeypatch) -> None:
    """The usual keys fit 64 bits with the row number: one sort of packed values, not
    lexsort's pass per key (the order itself is pinned by the engine test above)."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("lexsort for keys that fit one 64-bit value")

    times = [_BASE + timedelta(hours=h) for h in (30, 1, 1, 2)]
    keys = pa.table(
        {
            "campaign_id": ["b", None, "a", "a"],
            "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )
    monkeypatch.setattr(np, "lexsort", refused)
    assert sort_order(keys, ["event_time"], ("campaign_id", "event_time")).tolist() == [
        2,
        3,
        1,
        0,
    ]
