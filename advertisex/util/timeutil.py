"""The one time module: everything is UTC, always timezone-aware at the edges.

Inside Arrow tables times are ``timestamp[us, tz=UTC]``; in Python they are aware
``datetime`` objects in UTC. Nothing here reads the local time zone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


_SECOND: list[tuple[int, str]] = [(-1, "")]


def utcnow_iso() -> str:
    """Now as ISO-8601 UTC with microseconds, as ``datetime.isoformat`` writes it — formatted
    once a second, since the tracking endpoints stamp every request with it.

    >>> len(utcnow_iso()), utcnow_iso().endswith("+00:00")
    (32, True)
    """
    micros = time.time_ns() // 1000
    second, fraction = divmod(micros, 1_000_000)
    cached = _SECOND[0]
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _SECOND[0] = cached
    return f"{cached[1]}.{fraction:06d}+00:00"


def monotonic() -> float:
    return time.monotonic()


def parse_date(text: str, today: date | None = None) -> date:
    """Parse ``YYYY-MM-DD`` (or a full ISO timestamp, keeping its date) as a UTC date, or a
    day relative to ``today`` (UTC): ``today``, ``yesterday``, ``today-7``.

    >>> parse_date("2026-11-20"), parse_date("today-2", today=date(2026, 11, 27))
    (datetime.date(2026, 11, 20), datetime.date(2026, 11, 25))
    """
    text = text.strip()
    word = text.lower()
    if word in ("today", "yesterday") or re.fullmatch(r"today-\d{1,5}", word):
        base = today or utcnow().date()
        back = 1 if word == "yesterday" else int(word.partition("-")[2] or 0)
        return base - timedelta(days=back)
    try:
        return date.fromisoformat(text[:10])
    except ValueError as e:
        raise ValueError(
            f"not a date: {text!r} (expected YYYY-MM-DD, today, yesterday or today-N)"
        ) from e


When = TypeVar("When", bound=date)  # a date, or a datetime (one is the other's subclass)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
HOUR_US = 3_600_000_000  # an hour in µs, as Arrow and the engine count instants


def from_micros(micros: int) -> datetime:
    """The UTC instant ``micros`` µs after the epoch (as Arrow and Iceberg keep them)."""
    return EPOCH + int(micros) * MICROSECOND


def to_micros(at: datetime) -> int:
    """``at`` (aware) as µs since the epoch.

    >>> to_micros(from_micros(1_764_979_200_000_001))
    1764979200000001
    """
    return (at - EPOCH) // MICROSECOND


def moved(t: When, by: timedelta) -> When:
    """``t + by`` (a date or a datetime), held within the calendar (years 1 to 9999): a
    range around a user's date near either end, or around an event at either end that a
    lake holds, stops there instead of failing.

    >>> moved(date(9999, 12, 20), timedelta(days=29)), moved(date(1, 1, 5), timedelta(days=-29))
    (datetime.date(9999, 12, 31), datetime.date(1, 1, 1))
    >>> moved(datetime(1, 1, 1, 0, 30), -timedelta(hours=1))
    datetime.datetime(1, 1, 1, 0, 0)
    >>> moved(datetime(9999, 12, 31, 23, 30), timedelta(hours=1))
    datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)
    """
    try:
        return t + by
    except OverflowError:
        if isinstance(t, datetime):
            edge = datetime.min if by < timedelta(0) else datetime.max
            return edge.replace(tzinfo=t.tzinfo)  # type: ignore[return-value]
        return date.min if by < timedelta(0) else date.max  # type: ignore[return-value]


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; without an offset it is UTC.

    Anything that is not one is a ``ValueError``, including an instant whose offset takes
    it past year 1 or 9999 in UTC (``0001-01-01T00:06+01:01``).
    """
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text.strip()!r} is out of range in UTC") from None


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def days_between(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
