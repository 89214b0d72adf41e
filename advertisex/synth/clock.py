"""The generation window, its diurnal traffic curve, and timestamp rendering.

All times inside the generator are int64 epoch milliseconds (UTC): numpy arithmetic on
them is exact and fast, and they only become text when a file is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from advertisex.util.timeutil import day_start

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# Relative traffic by UTC hour of day: trough at 04:00, slow climb, peak at 19:00.
# fmt: off
DIURNAL = [
    0.55, 0.45, 0.38, 0.33, 0.30, 0.32, 0.38, 0.48, 0.58, 0.66, 0.72, 0.77,
    0.80, 0.82, 0.84, 0.86, 0.89, 0.93, 0.98, 1.00, 0.97, 0.88, 0.76, 0.65,
]
# fmt: on


@dataclass(frozen=True)
class Window:
    """``days`` whole UTC days from ``start``; files are cut per hour of it."""

    start: date
    days: int

    @property
    def start_ms(self) -> int:
        return int(day_start(self.start).timestamp() * 1000)

    @property
    def hours(self) -> int:
        return self.days * 24

    @property
    def end_ms(self) -> int:
        """First millisecond after the window (exclusive end)."""
        return self.start_ms + self.days * DAY_MS

    def hour_weights(self) -> np.ndarray:
        """Probability of each window hour, following the diurnal curve."""
        import numpy as np

        weights = np.tile(np.asarray(DIURNAL, dtype=np.float64), self.days)
        return weights / weights.sum()

    def hour_of(self, ms: np.ndarray) -> np.ndarray:
        """Index of the window hour each time falls in."""
        return (ms - self.start_ms) // HOUR_MS

    def hour_label(self, hour: int) -> str:
        """``YYYYMMDD-HH`` of window hour ``hour``, as used in file names."""
        from datetime import UTC, datetime

        at = datetime.fromtimestamp((self.start_ms + hour * HOUR_MS) / 1000, tz=UTC)
        return at.strftime("%Y%m%d-%H")


def sample_times(
    rng: np.random.Generator, window: Window, n: int, *, min_offset_ms: int = 0
) -> np.ndarray:
    """``n`` sorted event times following the diurnal curve.

    ``min_offset_ms`` keeps times that far from the window start, so events that happen
    a little *before* them (a bid before its impression) still fall inside the window.
    """
    import numpy as np

    hours = rng.choice(window.hours, size=n, p=window.hour_weights())
    within = rng.integers(0, HOUR_MS, size=n)
    times = window.start_ms + hours.astype(np.int64) * HOUR_MS + within
    times = np.maximum(times, window.start_ms + min_offset_ms)
    times.sort()
    return times


# Timestamp spellings of impressions. Most producers send UTC with Z; a few send other
# legal ISO-8601 forms or epoch milliseconds, which the pipeline must normalise alike.
TS_Z, TS_UTC_OFFSET, TS_PLUS_TWO, TS_NAIVE, TS_EPOCH_MS = range(5)
TS_KIND_SHARE = [0.95, 0.015, 0.015, 0.01, 0.01]

_ISO = "%Y-%m-%dT%H:%M:%S%.3f"


def iso_z(ms: pl.Expr) -> pl.Expr:
    """``2026-11-20T13:04:05.123Z`` from epoch milliseconds."""
    import polars as pl

    return pl.from_epoch(ms, time_unit="ms").dt.strftime(_ISO + "Z")


def iso_by_kind(ms: pl.Expr, kind: pl.Expr) -> pl.Expr:
    """The textual timestamp for each ``TS_*`` kind (null for epoch milliseconds)."""
    import polars as pl

    # +02:00 shows the wall clock two hours ahead of UTC; the instant stays the same. One
    # strftime of the shown wall clock, then each kind's suffix (two strftimes of every row,
    # one of them for the 1.5 % shown at +02:00, took twice the time).
    shift = pl.when(kind == TS_PLUS_TWO).then(2 * HOUR_MS).otherwise(0)
    shown = pl.from_epoch(ms + shift, time_unit="ms").dt.strftime(_ISO)
    suffix = (
        pl.when(kind == TS_Z)
        .then(pl.lit("Z"))
        .when(kind == TS_UTC_OFFSET)
        .then(pl.lit("+00:00"))
        .when(kind == TS_PLUS_TWO)
        .then(pl.lit("+02:00"))
        .when(kind == TS_NAIVE)
        .then(pl.lit(""))
        .otherwise(None)
    )
    return shown + suffix
