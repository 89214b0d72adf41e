"""The collector's ASGI app: intake endpoints, Firehose API, tracking endpoints (pixel,
click redirect, postback — :mod:`advertisex.collector.tracking`), Firehose HTTP endpoint
delivery, health, metrics, docs.

Starlette routes requests (the pixel and the redirect go straight to their endpoints, see
:class:`~advertisex.collector.tracking.TrackingApp`); the batch hot path per request is:
authorize → check the content type → check capacity → read the body (bounded) → un-gzip
→ frame (all or nothing) → hand the bytes to the source's writer and await their fsync →
answer. Plain NDJSON and CSV up to 256 KiB are framed on the event loop (orjson, ~1 µs
a line); a larger one is framed on a thread, and so is gzip inflated; an Avro body is read in full by a decoder worker
process under a time and memory budget (see ``Collector.frame``), so no body can stall
the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from advertisex.collector import firehose, firehose_http, openapi
from advertisex.collector.framing import (
    Framed,
    frame_avro,
    frame_csv_clicks,
    frame_ndjson,
)
from advertisex.collector.idempotency import Stored
from advertisex.collector.responses import (
    JSON,
    ApiError,
    error_body,
    error_headers,
    error_response,
    json_response,
    media_type,
    read_body,
)
from advertisex.collector.service import Collector
from advertisex.collector.tracking import TrackingApp
from advertisex.collector.tracking import routes as tracking_routes
from advertisex.collector.tracking.service import Tracking
from advertisex.config import Settings
from advertisex.errors import AdvertiseXError

log = logging.getLogger("advertisex.collector")

Framer = Callable[[bytes], Framed]
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
CSV_TYPES = frozenset({"text/csv", "application/csv"})
AVRO_TYPES = frozenset({"application/avro", "avro/binary", "application/vnd.apache.avro+binary"})
ACCEPTED_TYPES = {
    "impressions": "application/x-ndjson or application/json",
    "clicks": "text/csv, application/x-ndjson or application/json",
    "bids": "application/avro, application/x-ndjson or application/json",
}


def pick_framer(source: str, mtype: str, max_records: int | None = None) -> tuple[Framer, str]:
    """(framer, segment format) for a body of ``mtype`` sent to ``source``; 415 otherwise.
    The text framers stop at ``max_records`` records (413)."""
    if mtype in NDJSON_TYPES:
        return partial(frame_ndjson, max_records=max_records), "ndjson"
    if mtype == "application/json":
        return partial(frame_ndjson, lenient_json=True, max_records=max_records), "ndjson"
    if source == "clicks" and mtype in CSV_TYPES:
        # rows become JSON objects: one segment, many requests
        return partial(frame_csv_clicks, max_records=max_records), "ndjson"
    if source == "bids" and mtype in AVRO_TYPES:
        return frame_avro, "avro"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {mtype or '(none)'!r} is not accepted for {source}; "
        f"send {ACCEPTED_TYPES[source]}",
    )


def intake(source: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        collector: Collector = request.app.state.collector
        received = 0
        try:
            principal = collector.authorize(request.headers, source)
            framer, fmt = pick_framer(source, media_type(request), collector.config.max_records)
            collector.check_capacity()
            body = await read_body(request, collector.config.max_body_bytes)
            received = len(body)
            encoding = request.headers.get("content-encoding")

            def work() -> Awaitable[Stored]:
                return _accept(collector, source, framer, fmt, body, encoding)

            key = request.headers.get("idempotency-key")
            if key:
                fingerprint = hashlib.sha256(body).digest()
                stored, replayed = await collector.idempotency.run(
                    (principal.name, source, key), fingerprint, work
                )
            else:
                stored, replayed = await work(), False
        except AdvertiseXError as error:  # a refusal, an unknown key, a reused one …
            collector.count(source, error.code, 0, received)
            return error_response(error)
        headers = dict(stored.headers or {})
        if replayed:
            collector.metrics.replays.inc()
            collector.count(source, "replayed", 0, received)
            headers["Idempotent-Replayed"] = "true"
        elif 200 <= stored.status < 300:
            collector.metrics.ack_latency.labels(source).observe(time.perf_counter() - started)
        return Response(stored.body, stored.status, headers=headers, media_type=stored.media_type)

    endpoint.__name__ = f"post_{source}"
    return endpoint


async def _accept(
    collector: Collector, source: str, framer: Framer, fmt: str, body: bytes, encoding: str | None
) -> Stored:
    """Frame and store one body; every refusal becomes a stored JSON error answer."""
    try:
        framed = await collector.frame(framer, fmt, body, encoding)
        limit = collector.config.max_records
        if framed.records > limit:
            raise ApiError(
                413,
                "too_many_records",
                f"{framed.records} records in one request, more than the limit of {limit}; "
                "split the batch",
            )
        await collector.store(source, fmt, framed.data)
    except AdvertiseXError as error:  # FramingError, a limit, storage unavailable …
        collector.count(source, error.code, 0, len(body))
        return Stored(error.http_status, error_body(error), JSON, error_headers(error))
    collector.count(source, "accepted", framed.records, len(body))
    return Stored(200, b'{"accepted":%d,"source":"%s"}' % (framed.records, source.encode()), JSON)


# ---------------------------------------------------------------------- operations
async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    try:
        collector.authorize_operations(request.headers, _client(request))
        collector.check_capacity()
    except AdvertiseXError as error:
        return error_response(error)
    answer = {
        "status": "ready",
        "collector_id": collector.collector_id,
        "backlog_bytes": collector.capacity.backlog_bytes,
    }
    if collector.worker is not None:  # which of `serve --workers N` answered
        answer["worker"] = collector.worker.index
    return json_response(answer)


async def metrics(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    try:
        collector.authorize_operations(request.headers, _client(request))
    except AdvertiseXError as error:
        return error_response(error)
    tracking: Tracking = request.app.state.tracking
    tracking.metrics.flush()  # this process's latest requests, counted so far in plain dicts
    return Response(
        collector.metrics.render(), headers={"Content-Type": collector.metrics.content_type}
    )


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


async def openapi_json(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    return json_response(openapi.build_spec(collector.config))


async def docs(request: Request) -> Response:
    collector: Collector = request.app.state.collector
    return HTMLResponse(openapi.html_page(openapi.build_spec(collector.config)))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    message = {
        "not_found": f"no endpoint at {request.url.path}; see /docs",
        "method_not_allowed": f"{request.method} is not allowed on {request.url.path}; see /docs",
    }.get(code, str(exc.detail))
    return error_response(ApiError(exc.status_code, code, message, dict(exc.headers or {})))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    message = "the collector failed unexpectedly; nothing was stored"
    if request.url.path == "/":  # the Firehose API: even a bug answers in AWS's shape
        return firehose.aws_error(500, "InternalFailure", message)
    return error_response(ApiError(500, "internal", message))


def create_app(settings: Settings, collector: Collector | None = None) -> Starlette:
    """The ASGI app; its lifespan starts the writers and, on shutdown, seals every segment."""
    collector = collector or Collector(settings)

    tracking = Tracking(collector)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(collector.start)
        flushing = asyncio.create_task(_flush_every(tracking, 1.0))
        try:
            yield
        finally:
            flushing.cancel()
            await asyncio.to_thread(collector.stop)
            tracking.metrics.flush()

    routes = [
        Route("/v1/impressions", intake("impressions"), methods=["POST"]),
        Route("/v1/clicks", intake("clicks"), methods=["POST"]),
        Route("/v1/bids", intake("bids"), methods=["POST"]),
        Route("/", firehose.endpoint, methods=["POST"]),
        *tracking_routes(),
        Route("/v1/firehose", firehose_http.endpoint, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    app = TrackingApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.collector = collector
    app.state.tracking = tracking
    return app


async def _flush_every(tracking: Tracking, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        tracking.metrics.flush()
