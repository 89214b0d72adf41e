"""``GET``/``POST /v1/postback``: a server-to-server conversion that names its click.

``/v1/postback?click_id=…&type=purchase&value=49.90&currency=EUR&txn=order-1001`` — the
parameters (query string, and for POST also a form or JSON-object body) are:

* ``txn`` (required) — the sender's transaction id; it is the conversion's ``event_id``,
  so a repeated transaction is one conversion: a retry within the collector's
  idempotency memory is answered from it, a later one is dropped by the processor's dedupe;
* ``click_id`` — the id the click redirect handed the landing page; it names the
  campaign and user (see :mod:`.clickids`), and attribution matches the conversion to
  exactly that click before any window rule. A click id AdvertiseX did not issue needs
  ``user_id`` and ``campaign_id`` beside it; without a click id they are required;
* ``type`` (conversion type), ``value``, ``currency``, ``timestamp`` (default: now),
  ``ad_creative_id``; anything else is kept with the conversion (``extras``).

Senders authenticate with an API key whose sources include ``postback``
(``Authorization: Bearer``, ``X-Api-Key`` or a ``key`` parameter, for networks that
can only configure a URL), or by signing the parameters with
``collector.tracking.postback_secret`` (``sig``, see :mod:`.signing`). A collector
without API keys and without that secret (loopback only) takes postbacks openly.
The answer comes after the conversion is durable: ``{"accepted": 1, "source": "clicks",
"event_id": …}``; refusals are JSON errors with stable codes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from advertisex.collector.access import POSTBACK, AccessDenied, presented_key
from advertisex.collector.idempotency import KeyReused, Stored
from advertisex.collector.responses import JSON, ApiError, media_type, read_body
from advertisex.collector.tracking import records
from advertisex.collector.tracking.clickids import read_click_id
from advertisex.collector.tracking.params import ParamError, parse_pairs, parse_query, required
from advertisex.collector.tracking.service import Tracking
from advertisex.collector.tracking.signing import SIGNATURE, canonical
from advertisex.util import jsonutil

ENDPOINT = "postback"
SOURCE = "clicks"
KEY = "key"
UNSIGNED = frozenset({SIGNATURE, KEY})
# Postback parameter → conversion contract field.
FIELDS = {
    "txn": "event_id",
    "click_id": "click_ref",
    "type": "conversion_type",
    "value": "conversion_value",
}


async def endpoint(request: Request) -> Response:
    started = time.perf_counter()
    tracking: Tracking = request.app.state.tracking
    try:
        params = await _parameters(request, tracking)
        _authenticate(request, params, tracking)
        record = _conversion(params, tracking.visitors.now())
        txn = str(record["event_id"])
        body = jsonutil.dumps({"accepted": 1, "source": SOURCE, "event_id": txn})

        async def land() -> Stored:
            await tracking.land(SOURCE, record)
            return Stored(200, body, JSON)

        fingerprint = hashlib.sha256(canonical(params, UNSIGNED)).digest()
        try:
            stored, replayed = await tracking.collector.idempotency.run(
                (ENDPOINT, txn), fingerprint, land
            )
        except KeyReused:  # the same transaction with other details: the first one counts
            stored, replayed = await land(), False
    except ApiError as error:
        tracking.refused(ENDPOINT, SOURCE, error)
        return error.response()
    tracking.count(ENDPOINT, "replayed" if replayed else "accepted", started)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(stored.body, stored.status, headers=headers, media_type=JSON)


async def _parameters(request: Request, tracking: Tracking) -> dict[str, str]:
    limit = tracking.config.max_query_bytes
    count = tracking.config.max_parameters
    params = parse_query(
        request.scope.get("query_string", b""), max_bytes=limit, max_parameters=count
    )
    if request.method != "POST":
        return params
    raw = await read_body(request, limit)
    if not raw.strip():
        return params
    kind = media_type(request)
    if kind == "application/x-www-form-urlencoded":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ParamError(
                400, "query_invalid_utf8", f"byte {error.start} of the form body is not UTF-8"
            ) from None
        form = parse_pairs(text, max_parameters=count, where="form body")
    elif kind == "application/json":
        form = _json_object(raw)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {kind or '(none)'!r} is not accepted for postbacks; send "
            "application/x-www-form-urlencoded or application/json (or only a query string)",
        )
    for name in form:
        if name in params:
            raise ParamError(
                400,
                "query_duplicate_parameter",
                f"parameter {name!r} is in both the query string and the body; send it once",
            )
    return {**params, **form}


def _json_object(raw: bytes) -> dict[str, str]:
    try:
        value = jsonutil.loads(raw)
    except jsonutil.JSONDecodeError as error:
        raise ApiError(400, "json_invalid", f"the body is not JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise ApiError(400, "json_not_object", "the body must be one JSON object of parameters")
    out = {}
    for name, item in value.items():
        if isinstance(item, dict | list) or item is None:
            raise ParamError(
                400, "parameter_invalid", f"parameter {name!r} must be a string or a number"
            )
        out[name] = str(item).lower() if isinstance(item, bool) else str(item)
    return out


def _authenticate(request: Request, params: Mapping[str, str], tracking: Tracking) -> None:
    """An API key allowed ``postback``, else a valid signature; open only without either."""
    collector = tracking.collector
    key = presented_key(request.headers) or params.get(KEY) or None
    if key is not None and collector.keys.enabled:
        try:
            collector.keys.authorize(key, POSTBACK)
        except AccessDenied as denied:
            raise ApiError(denied.status, denied.code, denied.message) from None
        return
    if params.get(SIGNATURE):
        tracking.postback_keys.check(params, None, UNSIGNED)
        return
    if collector.keys.enabled or tracking.postback_keys.configured:
        raise ApiError(
            401,
            "api_key_missing",
            "a postback needs an API key (Authorization: Bearer, X-Api-Key or key=) or "
            "parameters signed with the postback secret (sig=)",
        )


def _conversion(params: Mapping[str, str], received: str) -> dict[str, object]:
    txn = required(params, "txn", "the transaction id makes a repeated postback one conversion")
    fields = {
        FIELDS.get(name, name): value for name, value in params.items() if name not in UNSIGNED
    }
    click_id = fields.get("click_ref", "").strip()
    named = read_click_id(click_id) if click_id else None
    for field, known in zip(("campaign_id", "user_id"), named or (), strict=False):
        given = fields.get(field, "").strip()
        if given and given != known:
            raise ParamError(
                400,
                "parameter_invalid",
                f"{field} {given!r} disagrees with the click id, which names {known!r}",
            )
        fields[field] = known
    if not named and not (fields.get("campaign_id") and fields.get("user_id")):
        raise ParamError(
            400,
            "click_id_unknown" if click_id else "parameter_missing",
            (
                f"click_id {click_id!r} was not issued by this collector; send user_id and "
                "campaign_id with it"
                if click_id
                else "send the click_id the landing page received, or user_id and campaign_id"
            ),
        )
    fields["event_id"] = txn
    return records.conversion(fields, received)
