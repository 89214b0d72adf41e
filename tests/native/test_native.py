"""The kernels' compiled helpers are built wherever a C compiler is."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex import native
from tests.native_helpers import helpers_missing


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the kernels run without")
def test_the_compiled_helpers_are_built_with_the_install():
    # pyproject marks the extension optional: a failed compile would only show as speed lost
    assert native.available(), "the helpers did not compile: run make install"


def test_without_the_library_no_function_is_offered():
    with helpers_missing():
        assert native.function("adx_scan_objects", None, ()) is None
        assert native.text_hashes(pa.array(["a"])) is None


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
@pytest.mark.parametrize("every", [1, 2, 7, 300, 0])
def test_newlines_found_as_numpy_finds_them(every: int):
    """Dense (a newline every byte: more than the first guess of room), sparse, none."""
    from advertisex.formats import jsonfmt

    rng = np.random.default_rng(every)
    data = rng.integers(32, 127, 50_000, dtype=np.uint8)
    if every:
        data[rng.integers(0, len(data), len(data) // every)] = 10
    expected = np.flatnonzero(data == 10)
    assert np.array_equal(native.newlines(data), expected)
    assert np.array_equal(jsonfmt._newlines(data.tobytes()), expected)
    with helpers_missing():
        assert native.newlines(data) is None
        assert np.array_equal(jsonfmt._newlines(data.tobytes()), expected)
    assert len(native.newlines(np.zeros(0, dtype=np.uint8))) == 0


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
@pytest.mark.parametrize(("separator", "null"), [(b"\x1f", b"\x00"), (b"||", b"NULL"), (b"", b"")])
def test_row_hashes_join_with_any_marks(separator: bytes, null: bytes):
    """The row hashes are the text hashes of the rows joined by Python, whatever the marks
    (the one-byte marks the payloads use are written without a copy)."""
    from advertisex.kernels.fingerprint import _ROW_HASHES

    columns = [pa.array(["a", None, "ccc", ""]), pa.array([None, "bb", "", "d" * 300])]
    hashes_of = native.function(*_ROW_HASHES)
    buffers = [native.string_buffers(c) for c in columns]
    offsets, data, valid, bits = zip(*buffers, strict=True)
    out = np.empty(4, dtype=np.uint64)
    failed = hashes_of(
        2, native.addresses(offsets), native.addresses(data), native.addresses(valid),
        native.int64s(bits), 4, separator, len(separator), null, len(null), out.ctypes.data,
    )  # fmt: skip
    assert failed == 0
    joined = [
        separator.join(null if v is None else v.encode() for v in row)
        for row in zip(*(c.to_pylist() for c in columns), strict=True)
    ]
    expected = native.text_hashes(pa.array(joined, pa.binary()).cast(pa.string()))
    assert out.tolist() == expected.tolist()


_ENTRIES = st.lists(
    st.tuples(st.sampled_from(["", "a", "ab", "b", "é"]), st.sampled_from([None, "", "c", "bc"])),
    max_size=3,
)


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(st.one_of(st.none(), _ENTRIES), max_size=8), min_size=1, max_size=3),
    st.integers(0, 2),
)
def test_maps_share_a_code_exactly_when_they_hold_the_same_entries(chunks, cut) -> None:
    """Maps of strings coded by the helpers: one code for equal maps (the same entries in
    the same order: ``ab``+``c`` is not ``a``+``bc``, a null value not an empty one), in
    order of first appearance, across chunks and slices; a null map has none (-1)."""
    kind = pa.map_(pa.string(), pa.string())
    column = pa.chunked_array([pa.array(c, kind).slice(min(cut, len(c))) for c in chunks], kind)
    codes, firsts = native.map_codes(column)
    maps = column.to_pylist()
    seen: list[list] = []
    for code, entries in zip(codes.tolist(), maps, strict=True):
        if entries is None:
            assert code == -1
            continue
        if entries not in seen:
            seen.append(entries)
        assert code == seen.index(entries)
    assert [maps[i] for i in firsts.tolist()] == seen
    assert sorted(firsts.tolist()) == firsts.tolist()
    with helpers_missing():
        assert native.map_codes(column) is None


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
def test_map_codes_of_thousands_of_distinct_maps() -> None:
    """The helpers' table grows with the distinct maps: thousands, each seen three times."""
    kind = pa.map_(pa.string(), pa.string())
    distinct = [[("k", str(i)), ("v", None if i % 7 else "")] for i in range(5000)]
    column = pa.chunked_array([pa.array(distinct * 2, kind), pa.array(distinct[::-1], kind)])
    codes, firsts = native.map_codes(column)
    assert codes.tolist() == [*range(5000), *range(5000), *range(4999, -1, -1)]
    assert firsts.tolist() == list(range(5000))


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
def test_hash_texts_written_by_the_helpers_are_numpys() -> None:
    """A version-2 hash's text (``x`` + printf ``%016x``) is the same bytes whether the
    helpers or NumPy write it: extremes, every byte value, a strided array, none."""
    from advertisex.kernels.fingerprint import _HEX_TEXTS, _hex

    assert native.function(*_HEX_TEXTS) is not None  # (NumPy's took ≈ 36 ns a value)
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**64 - 1, 5000, dtype=np.uint64, endpoint=True)
    values[:4] = [0, 2**64 - 1, 0x0123456789ABCDEF, 0x8000000000000000]
    for sample in (values, values[::3], values[:0]):
        written = _hex(sample)
        with helpers_missing():
            expected = _hex(sample)
        assert written.equals(expected)
    assert _hex(values[:3]).to_pylist() == [
        "x0000000000000000",
        "xffffffffffffffff",
        "x0123456789abcdef",
    ]


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=12),
    st.integers(0, 3),
    st.booleans(),
)
def test_text_traits_are_what_python_finds(texts, cut, letters) -> None:
    """The helpers' traits of a column (eight bytes at a time where they scan its letters)
    are what Python finds of its valid texts, from a slice too."""
    from advertisex.kernels.text import SPACE_SEPARATORS

    column = pa.array(texts, pa.string()).slice(min(cut, len(texts)))
    valid = [t for t in column.to_pylist() if t is not None]
    found = native.text_traits(column, letters=letters)
    assert bool(found & native.EMPTY) == ("" in valid)
    # (TRIM may also be found of a text ending in another character's last byte: a look)
    if any(t and (t[0] in SPACE_SEPARATORS or t[-1] in SPACE_SEPARATORS) for t in valid):
        assert found & native.TRIM
    if letters:
        joined = "".join(valid)
        assert bool(found & native.NON_ASCII) == any(ord(c) > 127 for c in joined)
        assert bool(found & native.UPPER) == any("A" <= c <= "Z" for c in joined)
        assert bool(found & native.LOWER) == any("a" <= c <= "z" for c in joined)
    else:
        assert not found & (native.NON_ASCII | native.UPPER | native.LOWER)


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 40), max_size=300),
    st.sets(st.integers(0, 45), max_size=60),
    st.booleans(),
)
def test_sorted_starts_are_numpys_left_searches(ordered, needles, wide) -> None:
    """Galloping from the last needle's place finds what a binary search does: repeated
    values, needles before, among and past them all, no values or no needles."""
    shift = 58 if wide else 0  # values as big as hashes, the top bit too
    values = np.sort(np.array(ordered, dtype=np.uint64)) << np.uint64(shift)
    wanted = np.sort(np.array(sorted(needles), dtype=np.uint64)) << np.uint64(shift)
    found = native.sorted_starts(values, wanted)
    assert found is not None
    assert found.tolist() == np.searchsorted(values, wanted, "left").tolist()


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(["", "a", "US", "desktop", "cmp-001", "cmp-002", "0123456789abcdef"]),
            st.text(max_size=24),
        ),
        max_size=80,
    ),
    st.integers(0, 5),
)
def test_text_codes_are_arrows_dictionary_encoding(texts, cut) -> None:
    """Short texts compared as 16-byte keys (the last ones in their buffer read byte by
    byte), long ones by hash and bytes, nulls null, any slice: Arrow's codes and dictionary."""
    import pyarrow.compute as pc

    array = pa.array(texts, pa.string()).slice(min(cut, len(texts)))
    found = native.text_codes(array)
    assert found is not None
    expected = pc.dictionary_encode(array)
    assert found.indices.equals(expected.indices)
    assert found.dictionary.equals(expected.dictionary)


@pytest.mark.skipif(not native.available(), reason="the helpers were not built")
def test_text_codes_leave_a_column_of_many_values_to_arrow() -> None:
    assert native.text_codes(pa.array([str(n) for n in range(100)]), most=99) is None
    assert native.text_codes(pa.array([str(n) for n in range(100)]), most=100) is not None
    assert native.text_codes(pa.array([1, 2])) is None  # not text
