"""``GET /v1/i``: the impression pixel — a 43-byte transparent GIF that lands an impression.

``<img src="https://collector.example/v1/i?campaign_id=…&ad_creative_id=…&impression_id=…">``
in ad markup (works in ``<noscript>``: no script is involved). Parameters are the
impression contract's field names (``cpm`` for a price macro in CPM); the user is the
``user_id`` parameter, else the first-party cookie, else a new id set as that cookie.

The answer is always the GIF, never cacheable, so a page never shows a broken image:

* a readable request lands one impression, durable before the answer;
* a reload with the same ``impression_id`` and query within the collector's reload
  memory (per worker process) is answered without landing again (and any other
  repeat is dropped by the processor's dedupe) — one impression either way;
* an unreadable request (query too long, not UTF-8, a parameter twice) lands an
  ``_intake_error`` record, which the processor quarantines with that reason;
* ``HEAD`` and browser prefetches land nothing (a speculative load is not an ad
  view: the MRC counts prefetch as general invalid traffic); ``/metrics`` counts them;
* if the collector cannot store (disk nearly full, shutting down) the GIF is still
  sent; the loss is counted in ``/metrics`` under the refusal's code.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from advertisex.collector.responses import ApiError
from advertisex.collector.tracking import records
from advertisex.collector.tracking.params import ParamError, parse_query
from advertisex.collector.tracking.service import Tracking
from advertisex.collector.tracking.visitor import Hit, is_prefetch, user_of
from advertisex.collector.whole import header_lines

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", b"43"),
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0, private"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
    (b"cross-origin-resource-policy", b"cross-origin"),
]
_HEAD = header_lines(_HEADERS)
ENDPOINT = "pixel"
SOURCE = "impressions"


class Gif(Response):
    """The GIF with headers built once (Starlette would rebuild them on every answer), and
    ``head``, their lines as the protocol writes them
    (:mod:`~advertisex.collector.tracking.protocol`)."""

    media_type = "image/gif"

    def __init__(self, cookie: str | None = None) -> None:
        self.status_code = 200
        self.background = None
        self.body = GIF
        if cookie:
            set_cookie = (b"set-cookie", cookie.encode("latin-1"))
            self.raw_headers = [*_HEADERS, set_cookie]
            self.head = _HEAD + header_lines([set_cookie])
            self.fixed = False
        else:
            self.raw_headers, self.head = _HEADERS, _HEAD
            self.fixed = True  # the same bytes every time: the protocol keeps them


def gif(cookie: str | None = None) -> Response:
    return Gif(cookie)


async def endpoint(request: Request) -> Response:
    return await answer(request.app.state.tracking, Hit.of(request.scope))


async def answer(tracking: Tracking, hit: Hit) -> Response:
    """The pixel's answer to ``hit``, once its impression (if any) is durable."""
    started = time.perf_counter()
    if hit.method == "HEAD":
        tracking.count(ENDPOINT, "head")
        return gif()
    if is_prefetch(hit):
        tracking.count(ENDPOINT, "prefetch")
        return gif()
    visitor = tracking.visitors.read(hit)
    raw = hit.query
    cookie = None
    try:
        params = parse_query(
            raw, max_bytes=tracking.config.max_query_bytes,
            max_parameters=tracking.config.max_parameters,
        )  # fmt: skip
    except ParamError as error:
        record = records.rejected(error.code, error.message, raw, visitor)
        outcome, impression_id = error.code, None
    else:
        user_id, fresh = user_of(params, visitor, tracking.visitors)
        record = records.impression(params, visitor, user_id)
        outcome, impression_id = "accepted", params.get("impression_id", "").strip()
        if fresh:
            cookie = tracking.visitors.cookie_header(fresh, hit.scheme == "https")

    reloads = tracking.collector.reloads
    # what landed under this id: the query's hash (SipHash, keyed per process — a
    # crafted collision cannot be aimed, a chance one is 2^-64 per pair of queries)
    fingerprint = hash(raw) if impression_id else 0
    if impression_id and reloads.seen(impression_id, fingerprint):
        tracking.count(ENDPOINT, "replayed", started)
        return gif(cookie)
    try:
        await tracking.land(SOURCE, record)
    except ApiError as error:
        tracking.refused(ENDPOINT, SOURCE, error)
        return gif(cookie)
    if impression_id:  # the same id with other parameters lands again: dedupe decides
        reloads.remember(impression_id, fingerprint)
    tracking.count(ENDPOINT, outcome, started)
    return gif(cookie)
