"""Arrow's text normalization must give exactly what the SQL it replaced gave: the values
feed payload hashes and fingerprint ids that lakes have stored."""

import unicodedata

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.kernels import text
from advertisex.util import engine


def test_trimmed_characters_are_the_unicode_space_separators_duckdb_trims():
    zs = "".join(chr(c) for c in range(0x10000) if unicodedata.category(chr(c)) == "Zs")
    assert zs == text.SPACE_SEPARATORS
    every = "\t\n\r\x0b\x0c\x85\u200b\u2028" + zs
    trimmed = engine.run(
        "SELECT trim(c) AS c FROM t", t=pa.table({"c": [f"{ch}a{ch}" for ch in every]})
    )
    assert (
        trimmed.column("c").to_pylist()
        == text.text(pa.array([f"{ch}a{ch}" for ch in every])).to_pylist()
    )


_TEXTS = st.lists(
    st.one_of(
        st.none(),
        st.text(alphabet=st.sampled_from(" \t\u00a0\u3000aZ-ßİéÉ\u0130\u01c5"), max_size=6),
        st.text(max_size=6),
    ),
    max_size=20,
)


@settings(max_examples=30, deadline=None)
@given(_TEXTS)
def test_text_lower_and_upper_equal_duckdb(values):
    column = pa.array(values, pa.string())
    sql = engine.run(
        "SELECT nullif(trim(c), '') AS t, lower(nullif(trim(c), '')) AS l, "
        "upper(nullif(trim(c), '')) AS u FROM t",
        t=pa.table({"c": column}),
    )
    assert text.text(column).to_pylist() == sql.column("t").to_pylist()
    assert text.lower(text.text(column)).to_pylist() == sql.column("l").to_pylist()
    assert text.upper(text.text(column)).to_pylist() == sql.column("u").to_pylist()


def test_a_column_without_empty_texts_is_not_copied_again(monkeypatch):
    """Nulling the empty texts copies the whole column: only a column that has one pays."""
    import pyarrow.compute as pc

    calls = []
    if_else = pc.if_else
    monkeypatch.setattr(pc, "if_else", lambda *a, **k: calls.append(1) or if_else(*a, **k))
    assert text.text(pa.array([" a ", None, "b"])).to_pylist() == ["a", None, "b"]
    assert text.text(pa.array([None, None], pa.string())).to_pylist() == [None, None]
    assert calls == []
    assert text.text(pa.array([" a ", " ", None])).to_pylist() == ["a", None, None]
    assert calls == [1]


@settings(max_examples=80, deadline=None)
@given(
    chunks=st.lists(_TEXTS, min_size=1, max_size=3),
    cut=st.integers(min_value=0, max_value=3),
    large=st.booleans(),
)
def test_a_column_is_left_untrimmed_only_when_trimming_changes_nothing(chunks, cut, large):
    """``text`` skips the trim when no value's first or last byte may be a space separator's:
    over chunks, slices, both string layouts and every space separator at either end, the
    result is the trim's."""
    import pyarrow.compute as pc

    kind = pa.large_string() if large else pa.string()
    column = pa.chunked_array([pa.array(c, kind) for c in chunks], kind)
    column = column.slice(min(cut, len(column)))
    expected = pc.utf8_trim(column, text.SPACE_SEPARATORS)
    expected = pc.if_else(pc.equal(pc.binary_length(expected), 0), None, expected)
    assert text.text(column).to_pylist() == expected.to_pylist()


def test_each_space_separator_at_either_end_is_found_without_trimming_everything():
    for space in text.SPACE_SEPARATORS:
        for value in (f"{space}a", f"a{space}", f"{space}"):
            column = pa.chunked_array([["x", "y"], [value]])
            assert not text._nothing_to_trim(column), repr(value)
            assert text.text(column).to_pylist()[-1] == (value.strip(space) or None)
    assert text._nothing_to_trim(pa.chunked_array([["ab", "é x", "\\tb"], [None, ""]]))


def test_a_column_of_ascii_bytes_above_the_space_is_cleared_by_its_bytes_alone(monkeypatch):
    """Ids, enumerations and times are ASCII without a space: such a column has nothing to
    trim whatever its texts' ends are, and is cleared without reading them (the first and
    last byte of every text cost ≈ 10x two reductions over its bytes); a column with one
    space anywhere is read end by end as before."""
    every_byte = np.ones(256, dtype=bool)  # ends read now would all look like spaces
    monkeypatch.setattr(text, "_MAY_BEGIN_A_SPACE", every_byte)
    monkeypatch.setattr(text, "_MAY_END_A_SPACE", every_byte)
    assert text._nothing_to_trim(pa.chunked_array([["ab", "2026-12-07T22:00:00Z"], [None, "x"]]))
    assert not text._nothing_to_trim(pa.chunked_array([["ab"], ["a b"]]))
    assert not text._nothing_to_trim(pa.array(["ab", "é"]))


@settings(max_examples=80, deadline=None)
@given(chunks=st.lists(_TEXTS, min_size=1, max_size=3), cut=st.integers(0, 3))
def test_the_helpers_traits_give_arrows_texts(chunks, cut):
    """What the compiled helpers tell of a column (a text to trim, an empty one, a byte past
    ASCII, a letter to fold) only spares Arrow's passes: the values are the same as
    without them, over chunks and slices."""
    from tests.native_helpers import helpers_missing

    column = pa.chunked_array([pa.array(c, pa.string()) for c in chunks], pa.string())
    column = column.slice(min(cut, len(column)))
    found = [text.text(column), text.lower(column), text.upper(column)]
    with helpers_missing():
        expected = [text.text(column), text.lower(column), text.upper(column)]
    assert [f.to_pylist() for f in found] == [e.to_pylist() for e in expected]
    assert [f.type for f in found] == [e.type for e in expected]


def test_a_column_with_nothing_to_trim_or_fold_is_itself():
    """An id or an enumeration already trimmed and in its case is not written again: the
    helpers find nothing to do in one pass over its bytes (the trim's look, the lengths,
    Arrow's ASCII flag a row and its fold each cost a pass or a copy)."""
    from advertisex import native

    if not native.available():
        return
    ids = pa.chunked_array([["cmp-001", None, "cr-2"], ["desktop"]])
    assert text.text(ids) is ids
    assert text.lower(ids) is ids
    codes = pa.chunked_array([["US", "BR", None]])
    assert text.upper(codes) is codes
    assert text.lower(codes).to_pylist() == ["us", "br", None]
