"""kernels.fingerprint: MD5s as the engine computes them, with or without the engine."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex import native
from advertisex.kernels import fingerprint
from advertisex.kernels.fingerprint import legacy_hash, md5_hex
from advertisex.util import engine
from tests.native_helpers import helpers_missing


def _engine_md5(texts: list[str | None]) -> list[str | None]:
    rows = engine.run("SELECT md5(p) AS h FROM t", t=pa.table({"p": pa.array(texts, pa.string())}))
    return rows.column("h").to_pylist()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=20))
def test_few_texts_are_hashed_as_the_engine_hashes_them(texts: list[str | None]) -> None:
    assert md5_hex(pa.array(texts, pa.string())).to_pylist() == _engine_md5(texts)


def test_many_texts_go_to_the_engine_few_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    queries: list[int] = []
    run = engine.run

    def spy(query: str, params: dict | None = None, **tables: pa.Table) -> pa.Table:
        queries.append(sum(t.num_rows for t in tables.values()))
        return run(query, params, **tables)

    monkeypatch.setattr(engine, "run", spy)
    few = [f"é{i}\x1f\x00" for i in range(fingerprint._FEW)]
    assert md5_hex(pa.chunked_array([few[:5], few[5:]])).to_pylist() == _engine_md5(few)
    assert queries == [fingerprint._FEW]  # the reference above, no other
    many = [*few, "one more"]
    assert md5_hex(pa.array(many)).to_pylist() == _engine_md5(many)
    assert queries[1:] == [len(many), len(many)]


def test_version_1_hashes_are_the_first_half_of_the_md5() -> None:
    assert legacy_hash(pa.array(["abc", "é"])).to_pylist() == [
        h[:16] for h in _engine_md5(["abc", "é"])
    ]


def test_version_2_digits_are_the_engines_printf_of_the_hash() -> None:
    """The hex digits are rendered without the engine; they must be its ``printf('%016x')``
    for every value (the null-payload path renders them there)."""
    import numpy as np

    values = np.random.default_rng(7).integers(0, 2**64, size=5000, dtype=np.uint64)
    values[:4] = [0, 1, 2**63, 2**64 - 1]
    printed = engine.run(
        "SELECT 'x' || printf('%016x', v) AS h FROM t", t=pa.table({"v": values})
    ).column("h")
    assert fingerprint._hex(values).to_pylist() == printed.to_pylist()


_texts = st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=30)


def _chunked(values: list[str | None], cuts: list[int]) -> pa.ChunkedArray:
    """``values`` cut at ``cuts`` into chunks (one of them a slice of a longer array)."""
    bounds = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
    chunks = [
        pa.array(["pad", *values[a:b]], pa.string()).slice(1) for a, b in itertools.pairwise(bounds)
    ]
    return pa.chunked_array(chunks, pa.string())


@pytest.mark.skipif(not native.available(), reason="the compiled helpers were not built")
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_payload_hashes_are_the_hashes_of_the_joined_texts(data: st.DataObject) -> None:
    """Rows joined and hashed by the compiled helper, never kept, hash as the texts Arrow
    joins: in any chunking, with nulls, sliced."""
    first = data.draw(_texts)
    columns = [
        _chunked(
            data.draw(
                st.lists(
                    st.one_of(st.none(), st.text(max_size=30)),
                    min_size=len(first),
                    max_size=len(first),
                )
            ),
            data.draw(st.lists(st.integers(0, 40), max_size=3)),
        )
        for _ in range(data.draw(st.integers(1, 5)))
    ]
    columns[0] = _chunked(first, data.draw(st.lists(st.integers(0, 40), max_size=3)))
    expected = fingerprint.payload_hash(fingerprint.payload_text(columns)).to_pylist()
    assert fingerprint.payload_hashes(columns).to_pylist() == expected


def test_payload_hashes_of_rows_longer_than_the_helpers_first_buffer() -> None:
    """A row past the helper's buffer on the stack (16 KiB) is joined in a bigger one."""
    long = "é" * 20_000
    columns = [pa.array(["a", long, None, "b" * 70_000]), pa.array([long, "c", "d", None])]
    expected = fingerprint.payload_hash(fingerprint.payload_text(columns)).to_pylist()
    assert fingerprint.payload_hashes(columns).to_pylist() == expected
    with helpers_missing():
        assert fingerprint.payload_hashes(columns).to_pylist() == expected


def test_without_the_helpers_the_same_payload_hashes() -> None:
    columns = [pa.array(["a", None, "é"]), pa.chunked_array([["b"], ["", "c"]])]
    expected = fingerprint.payload_hash(pa.array(["a\x1fb", "\x00\x1f", "é\x1fc"])).to_pylist()
    assert fingerprint.payload_hashes(columns).to_pylist() == expected
    with helpers_missing():
        assert fingerprint.payload_hashes(columns).to_pylist() == expected


def test_the_payload_hash_is_xxh3_with_or_without_the_helpers() -> None:
    """A stored hash must not depend on the install: the compiled XXH3 and polars-hash's
    give the same version-2 hash of each text, in every layout; a null payload none."""
    import polars as pl
    import polars_hash as plh

    texts = ["", "abc", "a\x1f\x00\x1fb", "é" * 200]
    xxh3 = pl.Series("p", texts).to_frame().select(plh.col("p").nchash.xxh3_64())["p"]
    expected = [f"x{h:016x}" for h in xxh3.to_list()]
    layouts = [
        pa.array(texts),
        pa.chunked_array([texts[:1], [], texts[1:]]),
        pa.array(texts, pa.large_string()),
        pa.array(["pad", *texts]).slice(1),
    ]
    for layout in layouts:
        assert fingerprint.payload_hash(layout).to_pylist() == expected
        with helpers_missing():
            assert fingerprint.payload_hash(layout).to_pylist() == expected
    assert fingerprint.payload_hash(pa.array(["abc", None])).to_pylist() == [expected[1], None]
