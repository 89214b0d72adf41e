"""SQL for turning any accepted timestamp form into UTC ``timestamp[us]``.

Accepted: ISO-8601 with or without offset (without means UTC — the connection's time
zone is UTC), and epoch seconds, milliseconds or microseconds, told apart by
magnitude (the same instant in 2001–2286 is 10 digits in s, 13 in ms, 16 in µs).
"""

from __future__ import annotations

import ctypes
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels import native
from advertisex.util import engine
from advertisex.util.arrays import chunks_of, column_ascending, spread

# Magnitude bounds: below 1e11 is seconds (up to year 5138), below 1e14 milliseconds,
# below 1e17 microseconds; anything larger is read as nanoseconds.
_EPOCH = """CASE
      WHEN abs({n}) < 1e11 THEN to_timestamp({n})
      WHEN abs({n}) < 1e14 THEN to_timestamp({n} / 1e3)
      WHEN abs({n}) < 1e17 THEN to_timestamp({n} / 1e6)
      ELSE to_timestamp({n} / 1e9) END"""


def parse_text_sql(column: str) -> str:
    """SQL expression: text column → TIMESTAMPTZ, NULL when it is no timestamp.

    A text with a colon is no number, so an ISO time (nearly every one) skips the
    attempt to read it as one: a failed cast to DOUBLE cost more than reading the time.
    The colon is its own ``WHEN``: as ``NOT contains(…) AND try_cast(…) IS NOT NULL`` the
    engine evaluated both sides of the ``AND`` for every row, the failed casts too (9.1 ms
    a 36 k-impression piece, 5.1 ms now).
    """
    number = f"try_cast({column} AS DOUBLE)"
    return (
        f"CASE WHEN contains({column}, ':') THEN try_cast({column} AS TIMESTAMPTZ) "
        f"WHEN {number} IS NOT NULL THEN try({_EPOCH.format(n=number)}) "
        f"ELSE try_cast({column} AS TIMESTAMPTZ) END"
    )


def checks_sql(event_time: str, raw_present: str) -> list[tuple[str, str]]:
    """(condition, reason) pairs for timestamp validation; ``$now``-relative bounds are params.

    The query binds ``$future_limit`` and ``$oldest`` (NULL disables the age check).
    """
    return [
        (f"{raw_present} AND {event_time} IS NULL", "timestamp_invalid"),
        (f"{event_time} > $future_limit", "timestamp_in_future"),
        (f"$oldest IS NOT NULL AND {event_time} < $oldest", "timestamp_too_old"),
    ]


# ---------------------------------------------------------------- read natively where plain

_P, _I64 = native.POINTER, ctypes.c_int64
_PARSE = ("adx_parse_timestamps", _I64, (_P, _P, _P, _I64, _I64, _P, _P))
_PARSED, _ABSENT, _UNDECIDED = 0, 1, 2
CHECKS = checks_sql("event_time", "ts_text IS NOT NULL")
_TYPE = pa.timestamp("us", "UTC")


def read_times(texts: pa.Array | pa.ChunkedArray, params: dict[str, object]) -> pa.Table:
    """Each text's ``event_time`` (:func:`parse_text_sql`), ``event_time_text`` (its epoch
    microseconds as text, what payloads hold) and a column per reason of :data:`CHECKS`
    (``params``: ``future_limit``, ``oldest``).

    The plain ISO-8601 forms — nearly every time — are read by the compiled helper
    (``native/timestamps.c``: DuckDB's instant for each form it decides) and checked here;
    DuckDB reads the rest, with the checks in SQL as always.

    >>> from datetime import datetime, UTC
    >>> rows = read_times(pa.array(["2026-11-20T15:04:05.5+02:00", "1795179845", "x", None]),
    ...     {"future_limit": datetime(2027, 1, 1, tzinfo=UTC), "oldest": None})
    >>> rows.column("event_time_text").to_pylist()
    ['1795179845500000', '1795179845000000', None, None]
    >>> rows.column("timestamp_invalid").to_pylist()
    [False, False, True, False]
    """
    rows = len(texts)
    found = _natively(texts)
    rest = np.arange(rows) if found is None else np.flatnonzero(found[1] == _UNDECIDED)
    query = f"""
    WITH t AS (SELECT ts_text, {parse_text_sql("ts_text")}::TIMESTAMPTZ AS event_time FROM x)
    SELECT event_time, CAST(epoch_us(event_time) AS VARCHAR) AS event_time_text,
      {", ".join(f'{condition} AS "{code}"' for condition, code in CHECKS)}
    FROM t
    """
    if found is None:
        return engine.run(query, params, x=pa.table({"ts_text": texts}))
    micros, status = found
    times = pa.array(micros, pa.int64(), mask=status != _PARSED)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "event_time": times.cast(_TYPE),
        "event_time_text": pc.cast(times, pa.string()),
        "timestamp_invalid": pa.array(np.zeros(rows, dtype=bool)),  # a time or no text
        "timestamp_in_future": pc.greater(times, _micros(params["future_limit"])),
        "timestamp_too_old": (
            pa.array(np.zeros(rows, dtype=bool))
            if params["oldest"] is None
            else pc.less(times, _micros(params["oldest"]))
        ),
    }
    if len(rest):
        by_engine = engine.run(
            query, params, x=pa.table({"ts_text": column_ascending(texts, rest)})
        )
        theirs = np.zeros(rows, dtype=bool)
        theirs[rest] = True
        for name in columns:
            spread_out = spread(by_engine.column(name), rest, rows)
            columns[name] = pc.if_else(theirs, spread_out, columns[name])
    return pa.table(columns)


def _natively(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray] | None:
    """(microseconds, status) of each text by the compiled helper; None without it."""
    parse = native.function(*_PARSE)
    if parse is None or not pa.types.is_string(texts.type):
        return None
    micros, status = np.empty(len(texts), dtype=np.int64), np.empty(len(texts), dtype=np.uint8)
    at = 0
    for chunk in chunks_of(texts):
        rows = len(chunk)
        if rows:
            offsets, data, valid, bit = native.string_buffers(chunk)
            parse(offsets, data, valid, bit, rows, micros[at:].ctypes.data, status[at:].ctypes.data)
        at += rows
    return micros, status


def _micros(moment: object) -> int:
    """A timezone-aware datetime as microseconds since the epoch, exactly."""
    assert isinstance(moment, datetime)
    return (moment - _EPOCH_START) // timedelta(microseconds=1)


_EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
