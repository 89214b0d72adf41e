"""Robust statistics the monitors share: seasonal baselines, median and MAD, proportion tests.

Inputs are small (a few days of hourly aggregates), so plain Python over dicts reads
better than vectorised code and costs microseconds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from advertisex.monitor.model import HOUR, floor_hour

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def sums_by(
    table: pa.Table, keys: Iterable[str], values: Iterable[str], *, hourly: str | None = None
) -> dict[tuple[Any, ...], dict[str, float]]:
    """Sum ``values`` per ``keys``; with ``hourly``, that time column is floored to the hour.

    >>> t = pa.table({"s": ["a", "a"], "n": [1, 2]})
    >>> sums_by(t, ["s"], ["n"])
    {('a',): {'n': 3.0}}
    """
    import pyarrow.compute as pc

    keys, values = list(keys), list(values)
    table = table.select([*keys, *values])
    if hourly is not None:
        index = table.column_names.index(hourly)
        floored = pc.floor_temporal(table.column(hourly), unit="hour")
        table = table.set_column(index, hourly, floored)
    grouped = table.group_by(keys, use_threads=False).aggregate([(v, "sum") for v in values])
    columns = {c: _pylist(grouped.column(c)) for c in grouped.column_names}
    return {
        tuple(columns[k][i] for k in keys): {v: float(columns[f"{v}_sum"][i] or 0) for v in values}
        for i in range(grouped.num_rows)
    }


def split_sums(
    table: pa.Table, column: str, at: datetime, keys: Iterable[str], values: Iterable[str]
) -> tuple[dict[tuple[Any, ...], dict[str, float]], dict[tuple[Any, ...], dict[str, float]]]:
    """Sums per ``keys`` over rows before ``at``, and over rows exactly at ``at``."""
    import pyarrow.compute as pc

    times = table.column(column)
    return (
        sums_by(table.filter(pc.less(times, at)), keys, values),
        sums_by(table.filter(pc.equal(times, at)), keys, values),
    )


def _pylist(column: pa.ChunkedArray) -> list[Any]:
    """``to_pylist``, but building each distinct timestamp once (hours repeat a lot)."""
    if not pa.types.is_timestamp(column.type) or column.null_count:
        return column.to_pylist()
    import numpy as np

    micros = column.cast(pa.int64()).to_numpy()
    values, inverse = np.unique(micros, return_inverse=True)
    times = pa.array(values, pa.int64()).cast(column.type).to_pylist()
    return [times[i] for i in inverse]


@dataclass(frozen=True)
class Seasonal:
    """A value against the same hour on previous days."""

    value: float
    history: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.history) if self.history else 0.0

    @property
    def scale(self) -> float:
        """Robust spread: 1.4826·MAD, never below Poisson noise (√median) or 1."""
        med = self.median
        mad = statistics.median(abs(x - med) for x in self.history) if self.history else 0.0
        return max(MAD_TO_SIGMA * mad, math.sqrt(max(med, 0.0)), 1.0)

    @property
    def z(self) -> float:
        return (self.value - self.median) / self.scale

    @property
    def change(self) -> float:
        """Relative change from the median (−0.5 = half of the usual)."""
        med = self.median
        return (self.value - med) / med if med else (math.inf if self.value else 0.0)


def seasonal(
    series: Mapping[tuple[Any, ...], float],
    key: tuple[Any, ...],
    hour: datetime,
    days: int,
    first_seen: datetime | None,
    missing: float | None = 0.0,
) -> Seasonal:
    """``series[(*key, hour)]`` against the same hour on up to ``days`` previous days.

    Days before ``first_seen`` (before the source existed or monitoring began) are not
    history; a missing hour after it counts as ``missing`` (zero for counts; None skips
    it, for ratios that are unknown rather than zero).
    """
    history = []
    for d in range(1, days + 1):
        past = hour - timedelta(days=d)
        if first_seen is None or past < floor_hour(first_seen):
            break
        value = series.get((*key, past), missing)
        if value is not None:
            history.append(value)
    return Seasonal(series.get((*key, hour), 0.0), history)


def at_hours_of_day(table: pa.Table, column: str, hours: Iterable[int]) -> pa.Table:
    """Rows whose ``column`` falls in one of the given UTC hours of the day.

    Seasonal comparisons only look at the same hours on other days, so they can drop
    the rest before aggregating (24 times fewer rows for a single hour).
    """
    import pyarrow.compute as pc

    wanted = pa.array(sorted(set(hours)), pa.int64())
    return table.filter(pc.is_in(pc.hour(table.column(column)), wanted))


def proportion_z(successes: float, trials: float, p0: float) -> float:
    """z-score of ``successes / trials`` under a baseline proportion ``p0`` (binomial)."""
    if trials <= 0 or not 0 < p0 < 1:
        return 0.0
    return (successes - trials * p0) / math.sqrt(trials * p0 * (1 - p0))


def hours_back(end: datetime, count: int) -> list[datetime]:
    """The ``count`` whole hours ending at ``end`` (exclusive), oldest first."""
    return [end - HOUR * i for i in range(count, 0, -1)]
