"""The one JSON module: orjson underneath, so every part of AdvertiseX encodes alike.

Lint bans importing ``json`` or ``orjson`` anywhere else (ruff's TID251 in pyproject.toml).

orjson is several times faster than the stdlib ``json`` and writes compact UTF-8 bytes,
which is what landing segments, HTTP bodies and quarantine rows want.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError
# orjson's own function: the collector calls it once per NDJSON line.
loads = orjson.loads
# JSON already encoded, written as it is where it stands in what dumps() encodes (a query's
# rows, encoded by the worker that measured them against the answer's byte cap).
Fragment = orjson.Fragment


class Number(str):
    """A JSON number as its text (:func:`loads_as_written`)."""


class Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs in order, every one (:func:`loads_as_written`)."""


def loads_as_written(text: str) -> Any:
    """``text`` parsed keeping what orjson's values lose: every pair of an object, a key
    written twice too (objects are :class:`Pairs`), and each number's text (:class:`Number`,
    ``42`` and ``42.0`` apart). The stdlib's parser, whose hooks allow both — for the rare
    record that must be read as it was written (an erasure's), never the bulk path.
    Raises ``ValueError`` (or ``RecursionError``) on text that is not JSON."""
    import json

    return json.loads(
        text, object_pairs_hook=Pairs, parse_int=Number, parse_float=Number, parse_constant=Number
    )


def dumps(obj: Any, *, indent: bool = False, sort_keys: bool = False) -> bytes:
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    if indent:
        option |= orjson.OPT_INDENT_2
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    return orjson.dumps(obj, default=_default, option=option)


_LINE = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def dumps_line(obj: Any) -> bytes:
    """:func:`dumps` with a newline after it: one NDJSON line (one call, no copy)."""
    return orjson.dumps(obj, default=_default, option=_LINE)


def dumps_str(obj: Any, *, indent: bool = False, sort_keys: bool = False) -> str:
    return dumps(obj, indent=indent, sort_keys=sort_keys).decode()


def iso_duration(span: timedelta) -> str:
    """``span`` as an ISO 8601 duration, the way JSON readers parse one.

    >>> iso_duration(timedelta(days=1)), iso_duration(timedelta(hours=-1, seconds=1.5))
    ('P1D', '-PT59M58.5S')
    >>> iso_duration(timedelta(0))
    'PT0S'
    """
    sign = "-" if span < timedelta(0) else ""
    span = abs(span)
    hours, rest = divmod(span.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second = f"{seconds}.{span.microseconds:06d}".rstrip("0").rstrip(".")
    clock = "".join(
        f"{value}{unit}"
        for value, unit in ((hours, "H"), (minutes, "M"), (second, "S"))
        if value not in (0, "0")
    )
    text = (f"{span.days}D" if span.days else "") + (f"T{clock}" if clock else "")
    return f"{sign}P{text or 'T0S'}"


def _default(obj: Any) -> Any:
    # Decimals, Paths, sets and similar: render them the way a person reading JSON expects.
    from decimal import Decimal
    from pathlib import PurePath

    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if isinstance(obj, timedelta):  # a SQL interval (DuckDB hands them over as these)
        return iso_duration(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
