"""Landing records built from tracking requests: the same JSON objects a producer would POST.

A pixel becomes an impression, a click redirect a click, a postback a conversion, each
keyed by the source contract's own field names, so the processor validates, dedupes and
filters them exactly like events sent to ``/v1/impressions`` or ``/v1/clicks``. Request
parameters named like a contract field fill that field; other parameters are kept as
they came (they land in ``extras``); the request's own facts (user agent, IP, referrer)
always win over parameters of the same name, so a link cannot dress up its own traffic.

A request whose parameters cannot be read at all (see :mod:`.params`) still lands, as an
``_intake_error`` record: the JSON framer turns its first key into the record's framing
error, so the processor quarantines it with that reason code and this raw text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from advertisex.collector.tracking.visitor import Visitor
from advertisex.model.contracts import INTAKE_ERROR
from advertisex.util import jsonutil

# Parameters that never land as fields: link plumbing, not event data.
PLUMBING = frozenset({"sig", "key", "to"})
_KEPT_QUERY = 16 << 10
# Fields only the request itself may set.
_FROM_REQUEST = ("user_agent", "ip", "referrer", "ivt_ip_range")
# What a parameter may not set: link plumbing, the request's own facts, the error marker.
_NOT_FIELDS = PLUMBING | frozenset(_FROM_REQUEST) | {INTAKE_ERROR}


def impression(params: Mapping[str, str], visitor: Visitor, user_id: str | None) -> dict[str, Any]:
    """The impression a pixel request reports. ``cpm`` (the OpenRTB price macro's unit)
    becomes ``cost`` per impression when ``cost`` is not given; a referrer's host stands in
    for a missing ``website``. No value is None (see :func:`line`)."""
    record = _fields(params, visitor)
    _set_user(record, user_id)
    if "cost" not in params and "cpm" in params:
        record.pop("cpm", None)
        record["cost"] = _per_mille(params["cpm"])
    if not params.get("website") and visitor.referrer:
        host = _host(visitor.referrer)
        if host is None:
            record.pop("website", None)
        else:
            record["website"] = host
    record["intake"] = "pixel"
    return record


def click(
    params: Mapping[str, str], visitor: Visitor, user_id: str | None, click_id: str
) -> dict[str, Any]:
    """The click a redirect request reports (no value None, see :func:`line`)."""
    record = _fields(params, visitor)
    record["event_id"] = click_id
    record["event_type"] = "click"
    _set_user(record, user_id)
    destination = params.get("to")
    if destination is not None:
        record["destination"] = destination
    record["intake"] = "click_redirect"
    return record


def conversion(fields: Mapping[str, str], received: str) -> dict[str, Any]:
    """A postback's conversion. The request's user agent and IP are the sender's server,
    not the visitor's, so they are not recorded (they would read as a bot)."""
    record: dict[str, Any] = {"timestamp": received}
    record.update((k, v) for k, v in fields.items() if k not in PLUMBING and k != INTAKE_ERROR)
    record.update(event_type="conversion", intake="postback")
    return record


def rejected(code: str, message: str, raw_query: bytes, visitor: Visitor) -> dict[str, Any]:
    """A request that could not be read: its reason first, then everything it had (a
    query beyond 16 KiB is cut there, so a hostile URL cannot bloat the quarantine)."""
    return {
        INTAKE_ERROR: f"{code}: {message}",
        "query": raw_query[:_KEPT_QUERY].decode("utf-8", errors="backslashreplace"),
        "query_truncated": True if len(raw_query) > _KEPT_QUERY else None,
        "timestamp": visitor.received,
        **visitor.fields(),
    }


def line(record: Mapping[str, Any]) -> bytes:
    """One NDJSON line; absent (None) fields are left out, as a producer would.

    The pixel's and the click's records have no None to leave out (they are built without,
    in the order the filtered record would have): one scan finds that, and the record is
    encoded as it is.
    """
    if None in record.values():
        record = {k: v for k, v in record.items() if v is not None}
    return jsonutil.dumps_line(record)


def _fields(params: Mapping[str, str], visitor: Visitor) -> dict[str, Any]:
    """The record's timestamp, the parameters that are fields, then the request's own facts
    that it has (none of them None)."""
    record: dict[str, Any] = {"timestamp": visitor.received}  # a timestamp parameter wins
    for name, value in params.items():
        if name not in _NOT_FIELDS:
            record[name] = value
    # the request's own facts, in Visitor.fields' order, where the request has them
    if visitor.user_agent is not None:
        record["user_agent"] = visitor.user_agent
    if visitor.ip is not None:
        record["ip"] = visitor.ip
    if visitor.referrer is not None:
        record["referrer"] = visitor.referrer
    if visitor.ivt_ip_range is not None:
        record["ivt_ip_range"] = visitor.ivt_ip_range
    return record


def _set_user(record: dict[str, Any], user_id: str | None) -> None:
    """``user_id`` in its place (a ``user_id`` parameter's, else last); none: no field."""
    if user_id is None:
        record.pop("user_id", None)
    else:
        record["user_id"] = user_id


def _per_mille(cpm: str) -> float | str:
    try:
        value = float(cpm)
    except ValueError:
        value = math.nan
    # Not a finite number: kept as sent, so the processor quarantines it (number_invalid:cost).
    return value / 1000 if math.isfinite(value) else cpm


def _host(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
