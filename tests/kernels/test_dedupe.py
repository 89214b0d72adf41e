import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.kernels.dedupe import dedupe


def _rows(pairs):
    return pa.table(
        {
            "impression_id": [p[0] for p in pairs],
            "payload_hash": [p[1] for p in pairs],
            "source_file": ["f"] * len(pairs),
            "source_position": pa.array(range(1, len(pairs) + 1), pa.int64()),
        }
    )


def test_first_occurrence_wins_and_conflicts_are_counted():
    result = dedupe("curated.impressions", _rows([("a", "x"), ("a", "x"), ("a", "y"), ("b", "z")]))
    assert result.unique.column("impression_id").to_pylist() == ["a", "b"]
    assert result.unique.column("payload_hash").to_pylist() == ["x", "z"]
    assert (result.duplicates, result.conflicts) == (2, 1)


def test_keys_already_committed_are_duplicates():
    seen = pa.table({"impression_id": ["a"], "payload_hash": ["other"]})
    result = dedupe("curated.impressions", _rows([("a", "x"), ("b", "z")]), seen)
    assert result.unique.column("impression_id").to_pylist() == ["b"]
    assert (result.duplicates, result.conflicts) == (1, 1)


def test_bids_are_unique_per_exchange_and_auction():
    rows = pa.table(
        {
            "exchange": ["x", "y", "x", None],
            "auction_id": ["a", "a", "a", "a"],
            "payload_hash": ["1", "2", "1", "3"],
            "source_file": ["f"] * 4,
            "source_position": pa.array([1, 2, 3, 4], pa.int64()),
        }
    )
    result = dedupe("curated.bid_requests", rows)
    assert result.unique.num_rows == 3 and result.duplicates == 1


pairs = st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from("xy")), max_size=40)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_dedupe_is_idempotent_and_accounts_for_every_row(items):
    result = dedupe("curated.impressions", _rows(items))
    assert result.unique.num_rows + result.duplicates == len(items)
    assert result.unique.num_rows == len({k for k, _ in items})
    again = dedupe("curated.impressions", result.unique)
    assert again.duplicates == 0
    assert again.unique.to_pylist() == result.unique.to_pylist()


@settings(max_examples=40, deadline=None)
@given(pairs, st.integers(0, 40))
def test_splitting_into_two_batches_gives_the_same_unique_rows(items, cut):
    whole = dedupe("curated.impressions", _rows(items)).unique
    rows = _rows(items)
    first = dedupe("curated.impressions", rows.slice(0, cut)).unique
    second = dedupe(
        "curated.impressions", rows.slice(cut), first.select(["impression_id", "payload_hash"])
    ).unique
    combined = pa.concat_tables([first, second])
    assert sorted(combined.column("impression_id").to_pylist()) == sorted(
        whole.column("impression_id").to_pylist()
    )
