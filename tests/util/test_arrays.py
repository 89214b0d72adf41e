"""Arrow helpers the kernels share: the labels of the conditions that hold, as SQL lists them."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.util import engine
from advertisex.util.arrays import LABEL_LISTS, coded, labels_where

_CONDITION = st.lists(st.sampled_from([True, False, None]), min_size=5, max_size=5)


@settings(max_examples=60, deadline=None)
@given(
    conditions=st.lists(_CONDITION, min_size=1, max_size=6),
    own=st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=5, max_size=5),
)
def test_labels_are_those_the_engine_lists(conditions: list[list[bool | None]], own: list) -> None:
    """The standardize kernels listed each record's reasons in SQL, ``list_filter`` over a
    ``CASE WHEN`` per reason: the Arrow listing gives the same lists, in the same order, a
    null condition holding nowhere, a per-row label (a framing error's code) included."""
    columns = {f"c{j}": pa.array(values, pa.bool_()) for j, values in enumerate(conditions)}
    table = pa.table({**columns, "own": pa.array(own, pa.string())})
    items = ", ".join(
        ["CASE WHEN c0 THEN own END"]
        + [f"CASE WHEN c{j} THEN 'r{j}' END" for j in range(1, len(conditions))]
    )
    expected = engine.run(
        f"SELECT list_filter([{items}], lambda r: r IS NOT NULL) AS reasons FROM t", t=table
    ).column("reasons")
    held = [(columns["c0"], table.column("own"))]
    held += [(columns[f"c{j}"], f"r{j}") for j in range(1, len(conditions))]
    listed = labels_where(held, 5)
    assert listed.type == LABEL_LISTS == expected.type
    assert listed.to_pylist() == expected.to_pylist()
    # Conditions and labels come as columns of any chunking (a kernel's are slices of
    # its segments' chunks), each its own: the same lists.
    cut = [
        (_chunked(c, j), _chunked(label, j + 1) if j == 0 else label)
        for j, (c, label) in enumerate(held)
    ]
    assert labels_where(cut, 5).to_pylist() == expected.to_pylist()


def _chunked(column: pa.Array | str, cut: int) -> pa.ChunkedArray | str:
    """``column`` in two chunks, split after its row ``cut % 5`` (a text as it is)."""
    if isinstance(column, str):
        return column
    at = cut % 5
    return pa.chunked_array([column.slice(0, at), column.slice(at)], column.type)


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=6), max_size=5),
    picks=st.lists(st.booleans(), max_size=40),
)
def test_take_ascending_is_a_take_chunk_by_chunk(chunks: list[list], picks: list[bool]) -> None:
    import numpy as np

    from advertisex.util.arrays import take_ascending

    table = pa.Table.from_batches(
        [
            pa.record_batch(
                {"s": pa.array(c, pa.string()), "n": pa.array(range(len(c)), pa.int64())}
            )
            for c in chunks
        ],
        pa.schema([("s", pa.string()), ("n", pa.int64())]),
    )
    rows = np.flatnonzero(np.resize(np.array(picks or [False], dtype=bool), table.num_rows))
    taken = take_ascending(table, rows)
    assert taken.equals(table.take(pa.array(rows, pa.int64())))
    assert taken.schema == table.schema


def test_take_ascending_copies_only_the_rows_it_takes() -> None:
    """A take over several chunks joins them first: picking 10 rows of 400,000 copied
    every chunk; chunk by chunk only those rows are copied."""
    import numpy as np

    from advertisex.util.arrays import take_ascending

    batches = [pa.record_batch({"s": [f"key-{i:012d}" for i in range(100_000)]}) for _ in range(4)]
    table = pa.Table.from_batches(batches)
    rows = np.arange(0, 400_000, 40_000)
    default = pa.default_memory_pool()
    counted = pa.proxy_memory_pool(default)  # its peak: what the take allocated at most
    pa.set_memory_pool(counted)
    try:
        taken = take_ascending(table, rows).column("s").to_pylist()  # Arrow's freed here
    finally:
        pa.set_memory_pool(default)
    assert counted.max_memory() < 100_000  # Table.take: 8 MB, the four chunks joined
    assert taken == table.column("s").take(pa.array(rows)).to_pylist()


_ID_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("ab-_.:9 \t\n\r\x0b\x0c\x00\x1f\x7f\x80\x85\xa0\u2003\u3000é✓"),
        st.characters(exclude_categories=("Cs",)),  # no lone surrogates: not UTF-8
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.lists(st.one_of(st.none(), _ID_TEXT), max_size=8), min_size=1, max_size=4),
    large=st.booleans(),
    start=st.integers(0, 3),
)
def test_a_byte_scan_finds_what_the_id_regex_finds(
    chunks: list[list[str | None]], large: bool, start: int
) -> None:
    import pyarrow.compute as pc

    from advertisex.kernels.validate import _BAD_ID, _BAD_ID_BYTE_ALSO, _BAD_ID_BYTES_MAX
    from advertisex.util.arrays import holds_byte_at_most

    kind = pa.large_string() if large else pa.string()
    column = pa.chunked_array([pa.array(c, kind) for c in chunks], kind)
    column = column.slice(min(start, len(column)))  # offsets that do not start at 0
    by_regex = pc.fill_null(pc.match_substring_regex(column, _BAD_ID), False)
    found = holds_byte_at_most(column, _BAD_ID_BYTES_MAX, _BAD_ID_BYTE_ALSO)
    assert found.tolist() == by_regex.to_pylist()


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "é", ""])), max_size=6),
    picks=st.lists(st.one_of(st.none(), st.integers(0, 5)), max_size=20),
)
def test_coded_values_are_those_the_texts_would_encode_to(values: list, picks: list) -> None:
    indices = [p if p is None or p < len(values) else None for p in picks]
    got = coded(pa.array(indices, pa.int32()), values)
    texts = [None if i is None else values[i] for i in indices]
    assert got.to_pylist() == texts
    # each distinct text once in the dictionary, a null text a null row: as the writer wants
    assert sorted(got.dictionary.to_pylist()) == sorted(set(got.dictionary.to_pylist()))
    assert None not in got.dictionary.to_pylist()
    assert got.null_count == texts.count(None)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=40),
    ceiling=st.integers(0, 0x7F),
    also=st.sampled_from([0x7F, 0x00, 0x20, 0x41, 0x80, 0xFF]),
)
def test_a_byte_is_found_by_reductions_as_by_a_mask_of_every_byte(
    data: bytes, ceiling: int, also: int
) -> None:
    import numpy as np

    from advertisex.util.arrays import _some_byte

    values = np.frombuffer(data, np.uint8)
    assert _some_byte(values, ceiling, also) == bool(((values <= ceiling) | (values == also)).any())
