"""A slice's mask over many ranges (a late trickle's scattered hours) is one sorted search,
and says what comparing every row with each range says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.marts import store
from advertisex.marts.store import Slice

START = datetime(2026, 11, 1, tzinfo=UTC)


def _compared(column: pa.ChunkedArray, ranges: Any) -> list[bool]:
    """Every row compared with each range (the few-ranges path)."""
    inside = pa.repeat(False, len(column))
    for lo, hi in ranges:
        within = pc.and_(
            pc.greater_equal(column, pa.scalar(lo, column.type)),
            pc.less(column, pa.scalar(hi, column.type)),
        )
        inside = pc.or_(inside, within)
    return pc.fill_null(inside, False).to_pylist()


hours = st.integers(min_value=0, max_value=24 * 40)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.one_of(st.none(), hours), max_size=200),
    ranges=st.lists(
        st.tuples(hours, st.integers(min_value=1, max_value=30)), min_size=9, max_size=60
    ),
)
def test_many_ranges_mask_the_rows_each_range_holds(rows: list[int | None], ranges: Any) -> None:
    at = [None if h is None else START + timedelta(hours=h, minutes=h % 60) for h in rows]
    column = pa.chunked_array([pa.array(at, pa.timestamp("us", "UTC"))])
    bounds = tuple((START + timedelta(hours=h), START + timedelta(hours=h + n)) for h, n in ranges)
    sliced = Slice("t", bounds)
    assert sliced.mask(pa.table({"t": column})).to_pylist() == _compared(column, bounds)


def test_many_day_ranges_of_a_date_column() -> None:
    days = [date(2026, 11, 1) + timedelta(days=k) for k in range(40)]
    column = pa.chunked_array([pa.array([*days, None], pa.date32())])
    bounds = tuple((d, d + timedelta(days=1)) for d in days[::3])  # 14 ranges
    sliced = Slice("day", bounds)
    assert sliced.mask(pa.table({"day": column})).to_pylist() == _compared(column, bounds)


def test_many_ranges_are_not_compared_one_by_one(monkeypatch: Any) -> None:
    """Past a few ranges no per-range comparison runs over the rows."""
    compared: list[int] = []
    greater_equal = pc.greater_equal

    def counted(*args: Any, **kwargs: Any) -> Any:
        compared.append(1)
        return greater_equal(*args, **kwargs)

    monkeypatch.setattr(store.pc, "greater_equal", counted)
    bounds = tuple(
        (START + timedelta(hours=2 * k), START + timedelta(hours=2 * k + 1)) for k in range(50)
    )
    column = pa.chunked_array([pa.array([START + timedelta(hours=h) for h in range(100)])])
    mask = Slice("t", bounds).mask(pa.table({"t": column.cast(pa.timestamp("us", "UTC"))}))
    assert mask.to_pylist() == [h % 2 == 0 for h in range(100)]
    assert not compared
