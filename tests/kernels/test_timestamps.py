"""kernels.timestamps: every text reads as the unguarded expression reads it."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.kernels.timestamps import _EPOCH, parse_text_sql, within_years_sql
from advertisex.util import engine

# The expression before texts with a colon skipped the number cast (the years kept since).
_NUMBER = "try_cast(x AS DOUBLE)"
_UNGUARDED = within_years_sql(
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


def test_only_years_1_to_9999_are_timestamps() -> None:
    texts = [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "0000-06-01T00:00:00Z",  # DuckDB reads years BC
        "12026-01-01T00:00:00Z",  # and past 9999
        "-62135596800000004097",  # an epoch that lands before year 1
        "-62135596800",  # year 1, its first second
    ]
    now, _ = _both(texts)
    assert now[0] is not None and now[1] is not None and now[5] is not None
    assert now[2:5] == [None, None, None]
