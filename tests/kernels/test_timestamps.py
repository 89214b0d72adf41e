"""kernels.timestamps: every text reads as the unguarded expression reads it."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.kernels import native, timestamps
from advertisex.kernels.timestamps import _EPOCH, parse_text_sql
from advertisex.util import engine

# The expression before texts with a colon skipped the number cast.
_NUMBER = "try_cast(x AS DOUBLE)"
_UNGUARDED = (
    f"CASE WHEN {_NUMBER} IS NOT NULL THEN try({_EPOCH.format(n=_NUMBER)}) "
    "ELSE try_cast(x AS TIMESTAMPTZ) END"
)


def _both(texts: list[str | None]) -> tuple[list, list]:
    """Both readings as epoch microseconds (a text may read as a year Python has not)."""
    rows = engine.run(
        f"SELECT epoch_us({parse_text_sql('x')}) AS now, epoch_us({_UNGUARDED}) AS before FROM t",
        t=pa.table({"x": pa.array(texts, pa.string())}),
    )
    return rows.column("now").to_pylist(), rows.column("before").to_pylist()


def test_numbers_and_iso_times_read_as_before() -> None:
    texts = [
        "1700000000",
        "1700000000123",
        " 1.7e9 ",
        "-1",
        "inf",
        "NaN",
        "2026-11-20T00:00:01.000Z",
        "2026-11-20 00:00:01+02:00",
        "2026-11-20",
        "12:30",
        "1:2",
        ":",
        "",
        None,
    ]
    now, before = _both(texts)
    assert now == before
    assert now[0] is not None and now[6] is not None and now[9] is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789:-+.eE TZinfa", max_size=26), max_size=20))
def test_any_text_reads_as_before(texts: list[str]) -> None:
    now, before = _both(texts)
    assert now == before


# ---------------------------------------------------------------- read natively where plain

PARAMS = {
    "future_limit": datetime(2026, 11, 27, 12, 5, tzinfo=UTC),
    "oldest": datetime(2026, 1, 1, tzinfo=UTC),
}
TIMES = [
    "2026-11-20T13:04:05.123Z",
    "2026-11-20T13:04:05.123+00:00",
    "2026-11-20T15:04:05.123456+02:00",
    "2026-11-20T08:34:05-04:30",
    "2026-11-20 13:04:05",
    "2026-11-20T13:04:05.1",
    "2026-11-20T13:04:05.1234567Z",  # 7 digits: DuckDB's
    "2026-11-20T13:04:05.Z",
    "2026-11-20T13:04:05+14:59",
    "2026-11-20T13:04:05+15:00",
    "2026-11-20T13:04:05+0100",
    "2026-11-20T13:04:05z",
    "2026-11-20t13:04:05Z",
    "2026-11-20T13:04Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T23:59:60Z",
    "2024-02-29T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "1000-01-01T00:00:00Z",
    "0999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z",
    "1969-12-31T23:59:59.999999Z",
    "2026-11-20T13:04:05Z ",
    " 2026-11-20T13:04:05Z",
    "2026-11-20T13:04:05ZZ",
    "2026-11-20T13:04:05+01:00x",
    "2026-1-20T13:04:05Z",
    "+2026-11-20T13:04:05Z",
    "2026-11-20T13:04:05.123+02",
    "1795179845123",
    "1795179845.5",
    "infinity",
    "epoch",
    "",
    "x",
    None,
    "2027-01-01T00:00:00Z",  # in the future
    "2025-06-01T00:00:00Z",  # too old
]


def _read(texts: list[str | None] | pa.ChunkedArray, natively: bool) -> list[dict]:
    column = texts if isinstance(texts, pa.ChunkedArray) else pa.array(texts, pa.string())
    if natively:
        return timestamps.read_times(column, PARAMS).to_pylist()
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(timestamps, "_natively", lambda texts: None)
        return timestamps.read_times(column, PARAMS).to_pylist()


@pytest.mark.skipif(not native.available(), reason="the compiled helpers were not built")
def test_plain_iso_times_are_read_natively():
    found = timestamps._natively(pa.array(TIMES, pa.string()))
    assert found is not None
    _, status = found
    decided = {t for t, s in zip(TIMES, status.tolist(), strict=True) if s == 0}
    assert "2026-11-20T08:34:05-04:30" in decided and "2026-11-20 13:04:05" in decided
    assert "2024-02-29T00:00:00Z" in decided and "1969-12-31T23:59:59.999999Z" in decided
    assert not decided & {"2026-02-29T00:00:00Z", "2026-11-20T23:59:60Z", "1795179845123"}


@pytest.mark.skipif(not native.available(), reason="the compiled helpers were not built")
def test_natively_or_not_the_same_times_texts_and_checks():
    assert _read(TIMES, natively=True) == _read(TIMES, natively=False)
    chunked = pa.chunked_array([TIMES[:5], pa.array(["pad", *TIMES[5:]]).slice(1)], pa.string())
    assert _read(chunked, natively=True) == _read(TIMES, natively=False)


_digits = st.integers(0, 99).map(lambda n: f"{n:02d}")


@st.composite
def _time_texts(draw: st.DrawFn) -> str:
    year = draw(st.integers(900, 10500))
    text = (
        f"{year:04d}-{draw(_digits)}-{draw(_digits)}{draw(st.sampled_from('T t'))}"
        f"{draw(_digits)}:{draw(_digits)}:{draw(_digits)}"
    )
    text += draw(st.sampled_from(["", ".", ".5", ".123", ".123456", ".1234567"]))
    sign = draw(st.sampled_from("+-"))
    text += draw(st.sampled_from(["", "Z", f"{sign}{draw(_digits)}:{draw(_digits)}", "+0100"]))
    if draw(st.booleans()):  # and now and then one character off
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["", "0", ":", "-", " "])) + text[at + 1 :]
    return text


@pytest.mark.skipif(not native.available(), reason="the compiled helpers were not built")
@settings(max_examples=60, deadline=None)
@given(st.lists(_time_texts(), min_size=1, max_size=40))
def test_random_times_read_natively_as_duckdb_reads_them(texts):
    assert _read(texts, natively=True) == _read(texts, natively=False)
