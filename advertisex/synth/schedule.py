"""Delivery schedule of one source: when each record lands, late arrivals and re-sends.

Every record gets an *arrival* time; the landing file is the hour of its arrival. On-time
records arrive at their event time, late ones 1–6 hours later (still inside the window),
and duplicates/conflicts some time after the record they repeat. Sorting by
``(arrival, seq)`` therefore always puts an original before its repeats, which is what
"first one wins" deduplication in the pipeline relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from advertisex.synth.clock import HOUR_MS, Window
from advertisex.synth.config import FaultConfig

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

KIND_ORIGINAL, KIND_DUPLICATE, KIND_CONFLICT, KIND_MALFORMED = 0, 1, 2, 3
RETRY_DELAY_MEDIAN_MS = 5 * 60_000  # retries come seconds to hours after the first send

Mutate = Callable[["np.random.Generator", "pl.DataFrame"], "pl.DataFrame"]


def schedule(
    rng: np.random.Generator,
    valid: pl.DataFrame,
    window: Window,
    faults: FaultConfig,
    mutate: Mutate,
) -> pl.DataFrame:
    """Originals, duplicates and conflicts of ``valid`` with their landing positions.

    Adds ``_kind`` (KIND_*), ``_late``, ``_arrival`` (epoch ms), ``_seq`` (tie-breaker)
    and ``_hour`` (landing file). ``mutate`` changes the payload of conflict copies.
    """
    import numpy as np
    import polars as pl

    n = len(valid)
    event_ms = valid["event_ms"].to_numpy()
    arrival = event_ms.copy()
    late = np.zeros(n, dtype=bool)

    # Late: only records whose hour has a later hour left in the window can be late.
    hour = window.hour_of(event_ms)
    eligible = np.flatnonzero(hour < window.hours - 1)
    n_late = min(round(faults.late_rate * n), len(eligible))
    chosen = np.sort(rng.choice(eligible, n_late, replace=False))
    room = window.hours - 1 - hour[chosen]
    delay_hours = np.minimum(rng.integers(1, 7, n_late), room)
    arrival[chosen] = (
        window.start_ms + (hour[chosen] + delay_hours) * HOUR_MS + rng.integers(0, HOUR_MS, n_late)
    )
    late[chosen] = True

    originals = valid.with_columns(
        _kind=pl.lit(KIND_ORIGINAL, dtype=pl.Int8),
        _late=pl.Series(late),
        _arrival=pl.Series(arrival, dtype=pl.Int64),
        _seq=pl.int_range(n, dtype=pl.Int64),
    )

    # Repeats: duplicates and conflicts of distinct originals where there are enough.
    n_dup = round(faults.duplicate_rate * n) if n else 0
    n_conflict = round(faults.conflict_rate * n) if n else 0
    total = n_dup + n_conflict
    source = rng.choice(n, total, replace=total > n) if total else np.zeros(0, np.int64)
    delay = rng.lognormal(np.log(RETRY_DELAY_MEDIAN_MS), 2.0, total).astype(np.int64)
    repeat_arrival = np.minimum(arrival[source] + delay, window.end_ms - 1)
    kinds = np.repeat(np.array([KIND_DUPLICATE, KIND_CONFLICT], np.int8), [n_dup, n_conflict])
    repeats = originals[source].with_columns(
        _kind=pl.Series(kinds),
        _late=pl.lit(False),
        _arrival=pl.Series(repeat_arrival, dtype=pl.Int64),
        _seq=pl.int_range(n, n + total, dtype=pl.Int64),
    )
    conflicts = mutate(rng, repeats[n_dup:])
    records = pl.concat([originals, repeats[:n_dup], conflicts])
    return records.with_columns(_hour=(pl.col("_arrival") - window.start_ms) // HOUR_MS)


def malformed_templates(
    rng: np.random.Generator,
    valid: pl.DataFrame,
    window: Window,
    n: int,
    id_column: str,
    seq_start: int,
) -> pl.DataFrame:
    """``n`` copies of random valid rows with fresh ids and times, ready to be broken.

    Fresh ids and times keep every malformed record distinct from every other record,
    so none of them can pass for a duplicate.
    """
    import polars as pl

    from advertisex.synth.clock import sample_times
    from advertisex.synth.ids import hex_ids

    n = n if len(valid) else 0
    rows = rng.integers(0, max(len(valid), 1), n)
    arrival = sample_times(rng, window, n)
    picked = valid[rows]
    return picked.with_columns(
        (picked[id_column].str.slice(0, 4) + hex_ids(rng, n, "")).alias(id_column),
        event_ms=pl.Series(arrival, dtype=pl.Int64),
        _kind=pl.lit(KIND_MALFORMED, dtype=pl.Int8),
        _late=pl.lit(False),
        _arrival=pl.Series(arrival, dtype=pl.Int64),
        _seq=pl.int_range(seq_start, seq_start + n, dtype=pl.Int64),
        _hour=pl.Series((arrival - window.start_ms) // HOUR_MS, dtype=pl.Int64),
    )
