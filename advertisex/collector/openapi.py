"""The collector's OpenAPI 3.1 description, written by hand, and a plain HTML page of it.

Hand-written because the endpoints take raw NDJSON, CSV and Avro bodies that no
framework derives a schema from; served at ``/openapi.json``. ``/docs`` renders the
same data as static HTML — no JavaScript from a CDN, so it works offline.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from advertisex import __version__
from advertisex.collector.tracking import spec as tracking
from advertisex.model.contracts import (
    BID_FIELDS,
    BID_REQUIRED,
    CLICK_ALIASES,
    CLICK_FIELDS,
    CLICK_REQUIRED,
    CONVERSION_TYPES,
    DEVICE_TYPES,
    EVENT_TYPES,
    IMPRESSION_FIELDS,
    IMPRESSION_REQUIRED,
    MAX_ID_LENGTH,
)

if TYPE_CHECKING:
    from advertisex.config import CollectorSettings

_ERROR = {"$ref": "#/components/schemas/Error"}
_ACCEPTED = {"$ref": "#/components/schemas/Accepted"}
_AWS_ERROR = {"$ref": "#/components/schemas/AwsError"}
# Intake and operations take an API key when keys are configured; without keys (loopback
# only) they are open — the empty requirement says so.
_SECURITY: list[dict[str, list[str]]] = [{}, {"bearer": []}, {"apiKey": []}]


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Body cannot be read (invalid JSON line, CSV without header, Avro that does not "
        "decode to exactly its records, truncated gzip), or the request is not valid HTTP/1.1 "
        "(http_invalid); nothing stored",
        401: "API key missing or invalid",
        403: "API key may not send this source",
        408: "Headers or body did not arrive in time (header_timeout, body_timeout)",
        413: "Body over the size limit (on the wire, after gzip, or its Avro blocks inflated), "
        "or too many records",
        415: "Content-Type or Content-Encoding not accepted",
        422: "Idempotency-Key reused with a different body",
        431: "Request line and headers over collector.max_header_bytes (headers_too_large)",
        503: "Disk nearly full, landing backlog over its bound, too many unfinished requests, "
        "or shutting down; see Retry-After",
    }
    return {
        str(s): {"description": text[s], "content": {"application/json": {"schema": _ERROR}}}
        for s in statuses
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _objects(name: str, max_records: int) -> dict[str, Any]:
    """One object, or an array of them (``application/json``)."""
    return {
        "oneOf": [
            {"type": "array", "items": _ref(name), "minItems": 1, "maxItems": max_records},
            _ref(name),
        ]
    }


def _ndjson(name: str, max_records: int) -> dict[str, Any]:
    """The sequence of objects an NDJSON body carries, one per line (OpenAPI 3.1 has no item
    schema for sequential media types: the body is described as the array it encodes)."""
    return {
        "schema": {
            "type": "array",
            "items": _ref(name),
            "minItems": 1,
            "maxItems": max_records,
            "description": f"{name} objects, sent one per line (NDJSON)",
        }
    }


def _intake(source: str, summary: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "operationId": f"post_{source}",
            "security": _SECURITY,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 256},
                    "description": "A retry with the same key and body is answered without storing twice.",
                },
                {
                    "name": "Content-Encoding",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "enum": ["gzip", "identity"]},
                },
            ],
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": {
                    "description": "Stored and fsync'd",
                    "content": {"application/json": {"schema": _ACCEPTED}},
                },
                **_errors(400, 401, 403, 408, 413, 415, 422, 431, 503),
            },
        }
    }


_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID_LENGTH,
    "pattern": r"^[^\s\x00-\x1f\x7f]+$",
}
_TIMESTAMP = {
    "type": ["string", "number"],
    "description": "ISO-8601 (without an offset: UTC), or epoch seconds, milliseconds or "
    "microseconds",
    "examples": ["2026-11-20T13:04:05.123Z", 1795611845123],
}
_TEXT = {"type": "string"}
_PRICE = {"type": "number", "minimum": 0}
_COUNTRY = {"type": "string", "pattern": "^[A-Za-z]{2}$", "description": "ISO-3166 alpha-2"}
_DEVICE = {"type": "string", "enum": list(DEVICE_TYPES)}
_EXTRA = "Unknown fields are kept with the record (extras), not dropped."


def _contract(fields: tuple[str, ...], required: tuple[str, ...], types: dict[str, Any]) -> dict:
    return {
        "type": "object",
        "required": list(required),
        "properties": {name: types.get(name, _TEXT) for name in fields},
        "additionalProperties": True,
    }


def _schemas(config: CollectorSettings) -> dict[str, Any]:
    """JSON Schemas of the source contracts and of the Firehose API's bodies."""
    ids = dict.fromkeys(
        ("impression_id", "event_id", "auction_id", "user_id", "campaign_id"), _ID
    ) | {"ad_creative_id": _ID, "click_ref": _ID}
    streams = sorted(config.firehose_streams)
    record = {
        "type": "object",
        "required": ["Data"],
        "properties": {
            "Data": {
                "type": "string",
                "contentEncoding": "base64",
                "contentMediaType": "application/json",
                "maxLength": 1_398_104,  # 1,000 KiB before base64, Firehose's own limit
                "description": "base64 of one JSON object, newline-terminated or not, or "
                "several back to back",
            }
        },
    }
    stream = {"type": "string", "enum": streams, "description": "collector.firehose_streams"}
    return {
        "Impression": {
            **_contract(
                IMPRESSION_FIELDS,
                IMPRESSION_REQUIRED,
                {
                    **ids,
                    "timestamp": _TIMESTAMP,
                    "device_type": _DEVICE,
                    "country": _COUNTRY,
                    "cost": _PRICE,
                },
            ),
            "description": f"An ad impression (source contract). {_EXTRA}",
        },
        "Click": {
            **_contract(
                CLICK_FIELDS,
                CLICK_REQUIRED,
                {
                    **ids,
                    "timestamp": _TIMESTAMP,
                    "event_type": {"type": "string", "enum": list(EVENT_TYPES)},
                    "conversion_type": {"type": "string", "enum": list(CONVERSION_TYPES)},
                    "conversion_value": _PRICE,
                    "currency": {
                        "type": "string",
                        "pattern": "^[A-Za-z]{3}$",
                        "description": "ISO-4217",
                    },
                },
            ),
            "description": "A click or conversion (source contract); aliases "
            + ", ".join(f"{a} → {c}" for a, c in CLICK_ALIASES.items())
            + f" are accepted. {_EXTRA}",
        },
        "BidRequest": {
            **_contract(
                BID_FIELDS,
                BID_REQUIRED,
                {
                    **ids,
                    "timestamp": _TIMESTAMP,
                    "device_type": _DEVICE,
                    "country": _COUNTRY,
                    "floor_price": {"type": ["number", "null"], "minimum": 0},
                    "bid_price": {
                        "type": ["number", "null"],
                        "minimum": 0,
                        "description": "null: no bid",
                    },
                    "ad_targeting": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            ),
            "description": f"A real-time-bidding bid request (source contract). {_EXTRA}",
        },
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "Accepted": {
            "type": "object",
            "required": ["accepted", "source"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 1},
                "source": {"type": "string", "enum": ["impressions", "clicks", "bids"]},
            },
        },
        "FirehoseRecord": record,
        "PutRecordInput": {
            "type": "object",
            "required": ["DeliveryStreamName", "Record"],
            "properties": {"DeliveryStreamName": stream, "Record": _ref("FirehoseRecord")},
        },
        "PutRecordBatchInput": {
            "type": "object",
            "required": ["DeliveryStreamName", "Records"],
            "properties": {
                "DeliveryStreamName": stream,
                "Records": {
                    "type": "array",
                    "items": _ref("FirehoseRecord"),
                    "minItems": 1,
                    "maxItems": config.max_firehose_records,
                },
            },
        },
        "PutRecordOutput": {
            "type": "object",
            "required": ["RecordId", "Encrypted"],
            "properties": {"RecordId": {"type": "string"}, "Encrypted": {"type": "boolean"}},
        },
        "PutRecordBatchOutput": {
            "type": "object",
            "required": ["FailedPutCount", "Encrypted", "RequestResponses"],
            "properties": {
                "FailedPutCount": {"type": "integer", "minimum": 0},
                "Encrypted": {"type": "boolean"},
                "RequestResponses": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "RecordId": {"type": "string"},
                            "ErrorCode": {"type": "string"},
                            "ErrorMessage": {"type": "string"},
                        },
                    },
                },
            },
        },
        "AwsError": {
            "type": "object",
            "required": ["__type", "message"],
            "properties": {
                "__type": {
                    "type": "string",
                    "examples": [
                        "SerializationException",
                        "ValidationException",
                        "InvalidArgumentException",
                        "ResourceNotFoundException",
                        "UnknownOperationException",
                    ],
                },
                "message": {"type": "string"},
            },
        },
    }


def _firehose() -> dict[str, Any]:
    aws = {"application/x-amz-json-1.1": {"schema": _AWS_ERROR}}
    return {
        "post": {
            "summary": "Kinesis Data Firehose PutRecord / PutRecordBatch (AWS JSON 1.1)",
            "operationId": "firehose",
            "security": [{}, {"bearer": []}, {"sigv4": []}],
            "parameters": [
                {
                    "name": "X-Amz-Target",
                    "in": "header",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "enum": [
                            "Firehose_20150804.PutRecord",
                            "Firehose_20150804.PutRecordBatch",
                        ],
                    },
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-amz-json-1.1": {
                        "schema": {
                            "oneOf": [_ref("PutRecordInput"), _ref("PutRecordBatchInput")],
                            "description": "PutRecordInput with X-Amz-Target …PutRecord, "
                            "PutRecordBatchInput with …PutRecordBatch",
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "RecordId (PutRecord), or FailedPutCount and "
                    "RequestResponses (PutRecordBatch); stored and fsync'd",
                    "content": {
                        "application/x-amz-json-1.1": {
                            "schema": {
                                "oneOf": [_ref("PutRecordOutput"), _ref("PutRecordBatchOutput")]
                            }
                        }
                    },
                },
                "400": {
                    "description": "SerializationException, ValidationException, "
                    "InvalidArgumentException, ResourceNotFoundException, "
                    "UnknownOperationException",
                    "content": aws,
                },
                "401": {"description": "UnrecognizedClientException", "content": aws},
                "403": {"description": "AccessDeniedException", "content": aws},
                "408": {"description": "header_timeout, body_timeout", "content": aws},
                "413": {
                    "description": "ValidationException: too many records or bytes",
                    "content": aws,
                },
                "503": {
                    "description": "ServiceUnavailableException; see Retry-After",
                    "content": aws,
                },
            },
        }
    }


def _operations(summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"{summary}. Off a loopback bind, only for a loopback client or with "
            "any API key.",
            "security": [{}, {"bearer": []}, {"apiKey": []}],
            "responses": {"200": ok, **_errors(401)},
        }
    }


def build_spec(config: CollectorSettings | None = None) -> dict[str, Any]:
    """The OpenAPI document for a collector with ``config`` (its limits and stream names)."""
    from advertisex.config import CollectorSettings

    config = config or CollectorSettings()
    limit = config.max_records
    avro = {
        "schema": {
            "type": "string",
            "format": "binary",
            "contentMediaType": "application/avro",
            "description": "An Avro object container file whose writer schema is a record "
            "with the BidRequest fields (resolved by name; unknown fields kept); codec null, "
            "deflate or bzip2; read in full before it is acknowledged.",
        }
    }
    csv = {
        "schema": {
            "type": "string",
            "contentMediaType": "text/csv",
            "description": "UTF-8 CSV (a BOM is tolerated), delimiter , ; or tab, LF or CRLF; "
            "a header row naming Click fields ("
            + ", ".join(CLICK_FIELDS)
            + "), then one click or conversion per row",
            "examples": [
                "timestamp,user_id,campaign_id,event_type\n2026-11-20T10:00:00Z,u1,c1,click\n"
            ],
        }
    }
    readyz = _operations("Readiness: accepting data", {"description": "ready"})
    readyz["get"]["responses"].update(_errors(503))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AdvertiseX collector",
            "version": __version__,
            "description": "Real-time intake of ad events. A 2xx means the body is on disk "
            "and fsync'd.",
        },
        "paths": {
            "/v1/impressions": _intake(
                "impressions",
                "Ad impressions",
                {
                    "application/x-ndjson": _ndjson("Impression", limit),
                    "application/json": {"schema": _objects("Impression", limit)},
                },
            ),
            "/v1/clicks": _intake(
                "clicks",
                "Clicks and conversions",
                {
                    "text/csv": csv,
                    "application/x-ndjson": _ndjson("Click", limit),
                    "application/json": {"schema": _objects("Click", limit)},
                },
            ),
            "/v1/bids": _intake(
                "bids",
                "Bid requests",
                {
                    "application/avro": avro,
                    "application/x-ndjson": _ndjson("BidRequest", limit),
                    "application/json": {"schema": _objects("BidRequest", limit)},
                },
            ),
            "/": _firehose(),
            **tracking.PATHS,
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "responses": {"200": {"description": "alive"}},
                }
            },
            "/readyz": readyz,
            "/metrics": _operations(
                "Prometheus metrics",
                {"description": "text format", "content": {"text/plain": {"schema": _TEXT}}},
            ),
        },
        "components": {
            "schemas": {**_schemas(config), **tracking.SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS SigV4 (boto3): its access key id is the API key",
                },
            },
        },
    }


SPEC: dict[str, Any] = build_spec()


def html_page(spec: dict[str, Any] = SPEC) -> str:
    rows = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {})
            types = ", ".join(html.escape(t) for t in body) or "—"
            answers = "<br>".join(
                f"<b>{html.escape(code)}</b> {html.escape(r['description'])}"
                for code, r in op["responses"].items()
            )
            rows.append(
                f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{types}</td><td>{answers}</td></tr>"
            )
    info = spec["info"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(info['title'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:.4em;"
        "vertical-align:top}table{border-collapse:collapse}</style></head><body>"
        f"<h1>{html.escape(info['title'])} {html.escape(info['version'])}</h1>"
        f"<p>{html.escape(info['description'])} Machine-readable: <a href='/openapi.json'>/openapi.json</a>.</p>"
        "<table><tr><th>endpoint</th><th>what</th><th>body</th><th>answers</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
