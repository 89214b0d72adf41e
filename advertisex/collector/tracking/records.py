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


def impression(params: Mapping[str, str], visitor: Visitor, user_id: str | None) -> dict[str, Any]:
    """The impression a pixel request reports. ``cpm`` (the OpenRTB price macro's unit)
    becomes ``cost`` per impression when ``cost`` is not given; a referrer's host stands in
    for a missing ``website``."""
    record = _fields(params, visitor)
    record["user_id"] = user_id
    if "cost" not in params and "cpm" in params:
        record.pop("cpm", None)
        record["cost"] = _per_mille(params["cpm"])
    if not params.get("website") and visitor.referrer:
        record["website"] = _host(visitor.referrer)
    record["intake"] = "pixel"
    return record


def click(
    params: Mapping[str, str], visitor: Visitor, user_id: str | None, click_id: str
) -> dict[str, Any]:
    record = _fields(params, visitor)
    record.update(event_id=click_id, event_type="click", user_id=user_id)
    record["destination"] = params.get("to")
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
    """One NDJSON line; absent (None) fields are left out, as a producer would."""
    return jsonutil.dumps({k: v for k, v in record.items() if v is not None}) + b"\n"


def _fields(params: Mapping[str, str], visitor: Visitor) -> dict[str, Any]:
    record: dict[str, Any] = {"timestamp": visitor.received}  # a timestamp parameter wins
    for name, value in params.items():
        if name not in PLUMBING and name not in _FROM_REQUEST and name != INTAKE_ERROR:
            record[name] = value
    record.update(visitor.fields())
    return record


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
