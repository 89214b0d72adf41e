"""Kinesis Data Firehose's ``PutRecord`` / ``PutRecordBatch``, so boto3 producers need no change.

AWS JSON 1.1 protocol: ``POST /`` with ``X-Amz-Target: Firehose_20150804.<Operation>``,
a JSON body whose record ``Data`` is base64, answers with Firehose's own shapes
(``RecordId``, ``FailedPutCount``, per-record ``ErrorCode``) and errors as
``{"__type": ..., "message": ...}`` — the fields botocore reads.

Each record's Data must hold JSON objects (one, newline-terminated, or several back to
back, as the AWS reference's producers send them). Records that hold none fail
individually with ``InvalidArgumentException`` while the rest of the batch is stored,
which is how Firehose itself reports partial failure; the good records of a batch are
written and fsync'd together before the answer.
"""

from __future__ import annotations

import binascii
import secrets
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from advertisex.collector.responses import error_headers, read_body
from advertisex.collector.service import Collector
from advertisex.errors import AdvertiseXError, FramingError
from advertisex.formats.jsonfmt import split_objects
from advertisex.util import jsonutil

PREFIX = "Firehose_20150804."
AMZ_JSON = "application/x-amz-json-1.1"
_ACCOUNT = "000000000000"


class AwsError(AdvertiseXError):
    """A refusal in Firehose's own shape: ``kind`` is the exception name botocore reads."""

    def __init__(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.http_status, self.code, self.kind, self.headers = status, kind, kind, headers or {}


def _answer(
    data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    headers = {"x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})}
    return Response(jsonutil.dumps(data), status, headers=headers, media_type=AMZ_JSON)


def aws_error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An error as botocore reads it: ``{"__type": kind, "message": …}``."""
    return _answer({"__type": kind, "message": message}, status, headers)


# HTTP statuses of the family's errors → the exception names Firehose uses for them.
_AWS_KINDS = {
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    413: "ValidationException",
    503: "ServiceUnavailableException",
}


async def endpoint(request: Request) -> Response:
    started = time.perf_counter()
    collector: Collector = request.app.state.collector
    source = "unknown"
    try:
        target = request.headers.get("x-amz-target", "")
        operation = target.removeprefix(PREFIX) if target.startswith(PREFIX) else ""
        if operation not in ("PutRecord", "PutRecordBatch"):
            raise AwsError(
                400,
                "UnknownOperationException",
                f"operation {target or '(no X-Amz-Target)'} is not supported; "
                f"use {PREFIX}PutRecord or {PREFIX}PutRecordBatch",
            )
        try:
            body = await read_body(request, collector.config.max_body_bytes)
            payload = _payload(body)
            source = _source(collector, payload)
            collector.authorize(request.headers, source)
            collector.check_capacity()
            records = _records(collector, operation, payload)
            lines, failures = _frame(records, collector.config.max_records)
            failed = [f for f in failures if f is not None]
            if operation == "PutRecord" and failed:
                raise AwsError(400, "InvalidArgumentException", failed[0]["ErrorMessage"])
            if lines:
                await collector.store(source, "ndjson", b"".join(lines))
        except AwsError:
            raise
        except AdvertiseXError as error:  # the family, in Firehose's words
            raise AwsError(
                error.http_status,
                _AWS_KINDS.get(error.http_status, "InvalidArgumentException"),
                error.message,
                error_headers(error),
            ) from None
    except AwsError as error:
        collector.count(source, error.kind, 0, 0)
        return aws_error(error.http_status, error.kind, error.message, error.headers)

    collector.count(source, "accepted", len(lines), len(body))
    if failed:
        collector.metrics.events.labels(source, "InvalidArgumentException").inc(len(failed))
    collector.metrics.ack_latency.labels(source).observe(time.perf_counter() - started)
    token = secrets.token_hex(12)  # RecordIds are opaque: a per-request token plus the index
    if operation == "PutRecord":
        return _answer({"RecordId": f"{token}{0:08x}", "Encrypted": False})
    responses = [f or {"RecordId": f"{token}{i:08x}"} for i, f in enumerate(failures)]
    return _answer(
        {"FailedPutCount": len(failed), "Encrypted": False, "RequestResponses": responses}
    )


def _payload(body: bytes) -> dict[str, Any]:
    try:
        payload = jsonutil.loads(body)
    except jsonutil.JSONDecodeError as error:
        raise AwsError(
            400, "SerializationException", f"request body is not JSON ({error.msg})"
        ) from None
    if not isinstance(payload, dict):
        raise AwsError(400, "SerializationException", "request body must be a JSON object")
    return payload


def _source(collector: Collector, payload: dict[str, Any]) -> str:
    stream = payload.get("DeliveryStreamName")
    if not isinstance(stream, str) or not stream:
        raise AwsError(400, "ValidationException", "DeliveryStreamName is required")
    source = collector.config.firehose_streams.get(stream)
    if source is None:
        raise AwsError(
            400,
            "ResourceNotFoundException",
            f"Firehose {stream} under account {_ACCOUNT} not found.",
        )
    return source


def _records(collector: Collector, operation: str, payload: dict[str, Any]) -> list[Any]:
    if operation == "PutRecord":
        return [payload.get("Record")]
    records = payload.get("Records")
    if not isinstance(records, list) or not records:
        raise AwsError(400, "ValidationException", "Records must be a non-empty list")
    limit = collector.config.max_firehose_records
    if len(records) > limit:
        raise AwsError(
            413,
            "ValidationException",
            f"1 validation error detected: Value at 'records' failed to satisfy constraint: "
            f"Member must have length less than or equal to {limit} (got {len(records)})",
        )
    return records


def _frame(records: list[Any], max_objects: int) -> tuple[list[bytes], list[dict[str, str] | None]]:
    """NDJSON lines of every good record, and per record its failure (None when it framed).

    More than ``max_objects`` objects in all refuse the request (413), found as soon as
    they are: framing runs on the event loop, and 4 MiB of ``{}`` is 1.4 million of them.
    """
    lines: list[bytes] = []
    failures: list[dict[str, str] | None] = []
    for index, record in enumerate(records):
        data = record.get("Data") if isinstance(record, dict) else None
        if not isinstance(data, str):
            raise AwsError(
                400, "SerializationException", f"record {index}: Data (base64) is required"
            )
        try:
            raw = binascii.a2b_base64(data, strict_mode=True)
        except ValueError as error:  # binascii.Error, or a non-ASCII character in the text
            raise AwsError(
                400, "SerializationException", f"record {index}: Data is not base64 ({error})"
            ) from None
        try:
            objects = split_objects(raw, max_objects - len(lines))
        except FramingError as error:
            if error.code == "too_many_records":
                raise AwsError(
                    413,
                    "ValidationException",
                    f"the records hold more than {max_objects} JSON objects in all, more "
                    "than one request may carry (collector.max_records); split the batch",
                ) from None
            failures.append(
                {
                    "ErrorCode": "InvalidArgumentException",
                    "ErrorMessage": f"record {index}: {error.message}",
                }
            )
            continue
        failures.append(None)
        lines.extend(obj + b"\n" for obj in objects)
    return lines, failures
