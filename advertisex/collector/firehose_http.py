"""Kinesis Data Firehose *HTTP endpoint delivery*: a stream in AWS delivers straight here.

Point a Firehose stream's HTTP endpoint destination at ``https://<collector>/v1/firehose``
(see docs/collector.md for the stream settings). Per AWS's request/response
specification for HTTP endpoint destinations:

* request: ``POST`` with ``X-Amz-Firehose-Protocol-Version: 1.0``,
  ``X-Amz-Firehose-Request-Id`` (the same on every retry of a batch),
  ``X-Amz-Firehose-Source-Arn`` (``arn:aws:firehose:<region>:<account>:deliverystream/<name>``),
  ``X-Amz-Firehose-Access-Key`` (the configured access key, verbatim — here an API key),
  optionally ``Content-Encoding: gzip``; the body is ``{"requestId", "timestamp",
  "records": [{"data": "<base64>"}, …]}``;
* answer: ``200`` with ``{"requestId", "timestamp"}`` once every record is durable;
  otherwise 4xx/5xx with ``{"requestId", "timestamp", "errorMessage"}``. Firehose
  retries everything but a 200 (a 413 it gives up on at once), so nothing is answered
  200 before it is on disk, and a 503 (disk nearly full, backlog, shutting down) is
  simply retried later.

The stream's name (from the source ARN) picks the source through
``collector.firehose_streams`` — the same map the Firehose API endpoint uses — or the
endpoint URL names it: ``…/v1/firehose?source=impressions``. Each record's data holds
JSON objects (one, newline-terminated, or several back to back). A record that holds
none cannot be refused alone (Firehose delivers batches whole), so it lands as an
``_intake_error`` record that the processor quarantines with the reason and its text;
empty records, which Firehose permits, are skipped. A retried request id is answered
from the collector's idempotency memory instead of being stored twice.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from advertisex.collector.access import AccessDenied
from advertisex.collector.framing import decode_body
from advertisex.collector.idempotency import KeyReused, Stored
from advertisex.collector.responses import JSON, ApiError, read_body
from advertisex.collector.service import Collector
from advertisex.collector.tracking.service import Tracking
from advertisex.errors import FramingError
from advertisex.formats.jsonfmt import split_objects
from advertisex.model.contracts import INTAKE_ERROR
from advertisex.util import jsonutil

ENDPOINT = "firehose_http"
_IN_THREAD_BYTES = 1 << 20  # frame bigger deliveries off the event loop


async def endpoint(request: Request) -> Response:
    started = time.perf_counter()
    tracking: Tracking = request.app.state.tracking
    collector = tracking.collector
    request_id = request.headers.get("x-amz-firehose-request-id", "")
    source = "unknown"
    try:
        source = _source(request, collector)
        _authorize(request, collector, source)
        collector.check_capacity()
        limit = collector.config.max_delivery_bytes
        body = await read_body(request, limit)
        encoding = request.headers.get("content-encoding")

        async def deliver() -> Stored:
            lines, count, request_id_in_body = await _frame(body, encoding, limit)
            if lines:
                await collector.store(source, "ndjson", lines)
            collector.count(source, "accepted", count, len(body))
            return Stored(200, _answer(request_id or request_id_in_body), JSON)

        if request_id:
            fingerprint = hashlib.sha256(body).digest()
            try:
                stored, replayed = await collector.idempotency.run(
                    (ENDPOINT, request_id), fingerprint, deliver
                )
            except KeyReused:
                raise ApiError(
                    400,
                    "idempotency_key_reused",
                    "this X-Amz-Firehose-Request-Id came before with a different body",
                ) from None
        else:
            stored, replayed = await deliver(), False
    except ApiError as error:
        tracking.refused(ENDPOINT, source, error)
        return Response(
            _answer(request_id, f"{error.code}: {error.message}"),
            error.status,
            headers=error.headers,
            media_type=JSON,
        )
    tracking.count(ENDPOINT, "replayed" if replayed else "accepted", started)
    return Response(stored.body, 200, media_type=JSON)


def _answer(request_id: str, error: str | None = None) -> bytes:
    body: dict[str, Any] = {"requestId": request_id, "timestamp": int(time.time() * 1000)}
    if error is not None:
        body["errorMessage"] = error[:8192]
    return jsonutil.dumps(body)


def _source(request: Request, collector: Collector) -> str:
    named = request.query_params.get("source")
    if named:
        if named not in ("impressions", "clicks", "bids"):
            raise ApiError(
                400, "unknown_source", f"source {named!r} is not impressions, clicks or bids"
            )
        return named
    arn = request.headers.get("x-amz-firehose-source-arn", "")
    stream = arn.rsplit("deliverystream/", 1)[-1] if "deliverystream/" in arn else ""
    source = collector.config.firehose_streams.get(stream)
    if source is None:
        raise ApiError(
            400,
            "unknown_stream",
            f"delivery stream {stream or '(no X-Amz-Firehose-Source-Arn)'!r} is not mapped to a "
            "source: add it to collector.firehose_streams, or end the endpoint URL with "
            "?source=impressions|clicks|bids",
        )
    return source


def _authorize(request: Request, collector: Collector, source: str) -> None:
    key = request.headers.get("x-amz-firehose-access-key") or None
    try:
        collector.keys.authorize(key, source)
    except AccessDenied as denied:
        raise ApiError(denied.status, denied.code, denied.message) from None


async def _frame(body: bytes, encoding: str | None, limit: int) -> tuple[bytes, int, str]:
    """(NDJSON lines, records landed, requestId of the body) — framed off the event loop when
    the delivery is large, or gzip'd: 31 KB of gzip are a million records, which held
    every request for 4 s framed on the loop."""
    gzipped = (encoding or "identity").strip().lower() not in ("identity", "")
    if len(body) > _IN_THREAD_BYTES or gzipped:
        return await asyncio.to_thread(frame_delivery, body, encoding, limit)
    return frame_delivery(body, encoding, limit)


def frame_delivery(body: bytes, encoding: str | None, limit: int) -> tuple[bytes, int, str]:
    """A delivery body → NDJSON lines: each record's objects, or one ``_intake_error`` line."""
    try:
        payload = jsonutil.loads(decode_body(body, encoding, limit))
    except FramingError as error:
        raise ApiError(error.status, error.code, error.message) from None
    except jsonutil.JSONDecodeError as error:
        raise ApiError(400, "json_invalid", f"the body is not JSON ({error.msg})") from None
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list):
        raise ApiError(
            400, "records_missing", "the body must be a JSON object with a 'records' array"
        )
    lines: list[bytes] = []
    count = 0
    for index, record in enumerate(records):
        data = record.get("data") if isinstance(record, dict) else None
        if not isinstance(data, str):
            raise ApiError(400, "record_invalid", f"record {index}: 'data' (base64) is required")
        try:
            raw = binascii.a2b_base64(data, strict_mode=True)
        except ValueError as error:  # binascii.Error, or a non-ASCII character in the text
            raise ApiError(
                400, "record_invalid", f"record {index}: 'data' is not base64 ({error})"
            ) from None
        if not raw.strip():
            continue  # Firehose permits empty records: nothing to land
        try:
            objects = split_objects(raw)
        except FramingError as error:
            objects = [_unreadable(index, error, raw)]
        lines.extend(obj + b"\n" for obj in objects)
        count += len(objects)
    request_id = payload.get("requestId")
    return b"".join(lines), count, request_id if isinstance(request_id, str) else ""


def _unreadable(index: int, error: FramingError, raw: bytes) -> bytes:
    return jsonutil.dumps(
        {
            INTAKE_ERROR: f"{error.code}: record {index}: {error.message}",
            "data": raw.decode("utf-8", errors="backslashreplace"),
        }
    )
