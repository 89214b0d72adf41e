from unittest import mock

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.kernels import dedupe
from advertisex.kernels.dedupe import FEW_CHUNKS, find_duplicates, key_column, key_hashes
from tests.native_helpers import helpers_missing


def _find(pairs, seen=None):
    keys = pa.array([p[0] for p in pairs], pa.string())
    hashes = pa.array([p[1] for p in pairs], pa.string())
    if seen is None:
        return find_duplicates(keys, hashes)
    return find_duplicates(
        keys, hashes, pa.array([s[0] for s in seen]), pa.array([s[1] for s in seen])
    )


def test_first_occurrence_wins_and_conflicts_are_counted():
    found = _find([("a", "x"), ("a", "x"), ("a", "y"), ("b", "z")])
    assert found.is_duplicate.tolist() == [False, True, True, False]
    assert (found.count, found.conflicts) == (2, 1)


def test_keys_already_committed_are_duplicates():
    found = _find([("a", "x"), ("b", "z")], seen=[("a", "other")])
    assert found.is_duplicate.tolist() == [True, False]
    assert (found.count, found.conflicts) == (1, 1)


def test_a_retry_of_a_committed_event_is_not_a_conflict():
    found = _find([("a", "x")], seen=[("a", "x")])
    assert (found.count, found.conflicts) == (1, 0)


def test_bids_are_unique_per_exchange_and_auction():
    rows = pa.table({"exchange": ["x", "y", "x", None], "auction_id": ["a", "a", "a", "a"]})
    keys = key_column("curated.bid_requests", rows)
    found = find_duplicates(keys, pa.array(["1", "2", "1", "3"]))
    assert found.is_duplicate.tolist() == [False, False, True, False]


pairs = st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from("xy")), max_size=40)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_dedupe_is_idempotent_and_accounts_for_every_row(items):
    found = _find(items)
    kept = [p for p, dup in zip(items, found.is_duplicate, strict=True) if not dup]
    assert len(kept) + found.count == len(items)
    assert len(kept) == len({k for k, _ in items})
    assert _find(kept).count == 0


@settings(max_examples=40, deadline=None)
@given(pairs, st.integers(0, 40))
def test_splitting_into_two_batches_gives_the_same_unique_rows(items, cut):
    whole = [p for p, dup in zip(items, _find(items).is_duplicate, strict=True) if not dup]
    first, second = items[:cut], items[cut:]
    kept_first = [p for p, dup in zip(first, _find(first).is_duplicate, strict=True) if not dup]
    kept_second = [
        p
        for p, dup in zip(second, _find(second, seen=kept_first).is_duplicate, strict=True)
        if not dup
    ]
    assert kept_first + kept_second == whole


@settings(max_examples=50, deadline=None)
@given(
    parts=st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=30), min_size=1, max_size=8),
    wanted=st.lists(st.sampled_from("abcdefghijxyz"), max_size=10),
    merged_max=st.sampled_from([1, 20, 1 << 20]),
)
def test_key_index_parts_find_exactly_the_rows_with_wanted_keys(
    parts: list[list[str]], wanted: list[str], merged_max: int
) -> None:
    import numpy as np

    from advertisex.kernels.dedupe import KeyIndex, append_part, key_hashes

    indexed: list[KeyIndex] = []
    for n, keys in enumerate(parts):
        rows = pa.table(
            {"k": pa.array(keys, pa.string()), "part": pa.array([n] * len(keys), pa.int64())}
        )
        indexed = append_part(indexed, KeyIndex(rows, key_hashes(rows.column("k"))), merged_max)
    assert len(indexed) <= len(parts)
    # No merge made a part of more than merged_max rows (a part may come bigger).
    assert all(len(p) <= max(merged_max, max(map(len, parts))) for p in indexed)
    # Merged as they came: every row still there, in the order they were indexed.
    everything = [(k, n) for n, keys in enumerate(parts) for k in keys]
    assert [
        (k, n) for part in indexed for k, n in zip(*part.rows.to_pydict().values(), strict=True)
    ] == everything
    looked_for = np.unique(key_hashes(pa.array(wanted, pa.string())))
    found = [
        (k, n)
        for part in indexed
        for k, n in zip(*part.matching(looked_for).to_pydict().values(), strict=True)
    ]
    assert found == [(k, n) for k, n in everything if k in wanted]
    # A merged part's hashes are its rows' own, in row order (its sort merged, not redone).
    assert all((p.hashes() == key_hashes(p.rows.column("k"))).all() for p in indexed)
    # A few chunks a column however many parts were merged in: a lookup's take costs time
    # in proportion to the chunks, and the committed keys gain one a micro-batch.
    assert all(column.num_chunks <= FEW_CHUNKS for part in indexed for column in part.rows.columns)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=40))
def test_distinct_hashes_are_numpys_unique(values: list[int]) -> None:
    import numpy as np

    from advertisex.kernels.dedupe import distinct_hashes

    hashes = np.array(values, dtype=np.uint64)
    assert distinct_hashes(hashes).tolist() == np.unique(hashes).tolist()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=7), max_size=40),
    st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_one_sort_of_the_hashes_serves_the_lookups_the_repeats_and_the_index(
    values: list[int], kept: list[bool]
) -> None:
    """A batch's key hashes are sorted once (``BatchDedupe``): the distinct hashes, the rows
    whose hash repeats and the index of the rows it keeps, taken from that one argsort,
    are those each step found sorting them itself."""
    import numpy as np

    from advertisex.kernels.dedupe import (
        KeyIndex,
        _repeated,
        _repeated_in_order,
        distinct_hashes,
        distinct_sorted,
        kept_order,
    )

    hashes = np.array([v * 0x9E3779B97F4A7C15 % 2**64 for v in values], dtype=np.uint64)
    keep = np.array(kept[: len(values)], dtype=bool)
    order = np.argsort(hashes)
    assert distinct_sorted(hashes[order]).tolist() == distinct_hashes(hashes).tolist()
    assert _repeated_in_order(hashes, order).tolist() == _repeated(hashes).tolist()
    rows = pa.table({"row": pa.array(np.flatnonzero(keep), pa.int64())})
    index = KeyIndex.sorted_by(rows, *kept_order(order, hashes[order], keep))
    alone = KeyIndex(rows, hashes[keep])
    assert index.hashes().tolist() == hashes[keep].tolist()  # each row's own hash
    for wanted in (distinct_hashes(hashes), distinct_hashes(hashes[::2])):
        assert index.positions(wanted).tolist() == alone.positions(wanted).tolist()


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from("xy")), max_size=40),
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from("xy")), max_size=6),
    st.integers(1, 4),
)
def test_only_rows_whose_key_hash_is_shared_go_to_the_engine_with_the_same_verdicts(
    items, committed, buckets
):
    """Given the keys' hashes, rows whose hash nobody else has skip the engine: the
    verdicts are those of the engine over every row, whether the hashes are the real ones
    or collide on purpose (``buckets`` values for eight keys)."""
    seen = list({k: h for k, h in committed}.items())  # committed keys are unique
    keys = pa.array([k for k, _ in items], pa.string())
    hashes = pa.array([h for _, h in items], pa.string())
    seen_keys = pa.array([k for k, _ in seen], pa.string())
    seen_hashes = pa.array([h for _, h in seen], pa.string())
    every = find_duplicates(keys, hashes, seen_keys, seen_hashes)

    def colliding(values):
        return np.array([ord(k) % buckets for k in values.to_pylist()], dtype=np.uint64)

    fast = find_duplicates(keys, hashes, seen_keys, seen_hashes, key_hashes(keys))
    with mock.patch.object(dedupe, "key_hashes", colliding):
        collided = find_duplicates(keys, hashes, seen_keys, seen_hashes, colliding(keys))
    for found in (fast, collided):
        assert found.is_duplicate.tolist() == every.is_duplicate.tolist()
        assert (found.count, found.conflicts) == (every.count, every.conflicts)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from("xy")), max_size=40),
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from("xy")), max_size=6),
    st.integers(1, 4),
)
def test_seen_keys_are_found_among_the_sorted_candidates_when_their_order_is_known(
    items, committed, buckets
):
    """Given the candidates' hash order (``BatchDedupe`` sorts them once), the few seen
    hashes are looked up among them — not every candidate among the seen — with the
    verdicts of the engine over every row, colliding hashes too."""
    seen = list({k: h for k, h in committed}.items())
    keys = pa.array([k for k, _ in items], pa.string())
    hashes = pa.array([h for _, h in items], pa.string())
    seen_keys = pa.array([k for k, _ in seen], pa.string())
    seen_hashes = pa.array([h for _, h in seen], pa.string())
    every = find_duplicates(keys, hashes, seen_keys, seen_hashes)

    def colliding(values):
        return np.array([ord(k) % buckets for k in values.to_pylist()], dtype=np.uint64)

    def unsorted_search(*args):
        raise AssertionError("each candidate searched among the seen hashes")

    with mock.patch.object(dedupe, "_among", unsorted_search):
        for hashing in (key_hashes, colliding):
            with mock.patch.object(dedupe, "key_hashes", hashing):
                hashed = hashing(keys)
                found = find_duplicates(
                    keys, hashes, seen_keys, seen_hashes, hashed, np.argsort(hashed)
                )
            assert found.is_duplicate.tolist() == every.is_duplicate.tolist()
            assert (found.count, found.conflicts) == (every.count, every.conflicts)


# The engine query the verdicts came from before Arrow's hash kernels found them: the spec.
_ENGINE_VERDICTS = """
WITH firsts AS (
  SELECT k, min(i) AS first_i, arg_min(h, i) AS first_h FROM keyed GROUP BY k
)
SELECT keyed.i,
  (keyed.i <> firsts.first_i OR s.seen_h IS NOT NULL) AS is_dup,
  keyed.h <> coalesce(s.seen_h, firsts.first_h) AS differs
FROM keyed
JOIN firsts USING (k)
LEFT JOIN (SELECT k, h AS seen_h FROM seen) s USING (k)
"""

_maybe = st.one_of(st.none(), st.sampled_from("abcd"))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(_maybe, st.one_of(st.none(), st.sampled_from("xyz"))), max_size=30),
    st.dictionaries(_maybe, st.one_of(st.none(), st.sampled_from("xyz")), max_size=4),
    st.integers(0, 3),
)
def test_verdicts_are_those_of_the_engine_query_even_with_nulls(items, committed, cut):
    """Null keys repeat nothing, a row without a hash conflicts with nothing, a committed
    key without a hash does not make a repeat (what the engine's join and aggregate did)."""
    from advertisex.util import engine

    keys = pa.array([k for k, _ in items], pa.string())
    hashes = pa.array([h for _, h in items], pa.string())
    seen_keys = pa.array(list(committed), pa.string())
    seen_hashes = pa.array(list(committed.values()), pa.string())
    keyed = pa.table({"k": keys, "h": hashes, "i": pa.array(np.arange(len(items)))})
    marked = engine.run(
        _ENGINE_VERDICTS, keyed=keyed, seen=pa.table({"k": seen_keys, "h": seen_hashes})
    ).to_pylist()
    expected_dup = np.zeros(len(items), dtype=bool)
    expected_differs = np.zeros(len(items), dtype=bool)
    for row in marked:
        expected_dup[row["i"]] = row["is_dup"]
        expected_differs[row["i"]] = bool(row["differs"])
    chunked = pa.chunked_array([keys.slice(0, cut), keys.slice(cut)])
    found = find_duplicates(chunked, hashes, seen_keys, seen_hashes)
    assert found.is_duplicate.tolist() == expected_dup.tolist()
    assert found.is_conflict.tolist() == expected_differs.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=30), st.integers(0, 5))
def test_a_key_hashes_the_same_in_every_layout_and_by_either_hash(values, cut):
    """A key's hash depends on its text alone — chunks, slices, large strings, dictionaries
    hash alike, as the committed keys (read back from files) and a batch's must — and
    equal keys hash equal by the compiled helpers' XXH3 and by Polars' hash alike, so
    either finds the same repeats."""
    column = pa.array(values, pa.string())
    hashes = key_hashes(column)
    cut = min(cut, len(values))
    layouts = [
        pa.chunked_array([column.slice(0, cut), column.slice(cut)], pa.string()),
        column.cast(pa.large_string()),
        column.dictionary_encode(),
        pa.concat_arrays([pa.array(["pad"]), column]).slice(1),
    ]
    for layout in layouts:
        assert key_hashes(layout).tolist() == hashes.tolist()
    with helpers_missing():
        by_polars = key_hashes(column)
    for hashed in (hashes, by_polars):
        same = {
            (a, b): hashed[i] == hashed[j]
            for i, a in enumerate(values)
            for j, b in enumerate(values)
        }
        assert all(equal == (a == b) for (a, b), equal in same.items())


def test_the_compiled_key_hash_is_xxh3_of_the_text():
    import polars as pl
    import polars_hash as plh

    from advertisex import native

    if not native.available():
        return
    texts = ["", "a", "imp-3c76f634b6d9f8c1", "x" * 300, "é|ü"]
    expected = pl.Series(texts).to_frame("t").select(plh.col("t").nchash.xxh3_64())["t"]
    assert key_hashes(pa.array(texts)).tolist() == expected.to_list()
    assert key_hashes(pa.array([None])).tolist() != key_hashes(pa.array([""])).tolist()
