"""The collector's OpenAPI 3.1 description, written by hand, and a plain HTML page of it.

Hand-written because the endpoints take raw NDJSON, CSV and Avro bodies that no
framework derives a schema from; served at ``/openapi.json``. ``/docs`` renders the
same data as static HTML — no JavaScript from a CDN, so it works offline.
"""

from __future__ import annotations

import html
from typing import Any

from advertisex import __version__
from advertisex.collector.tracking import spec as tracking

_ERROR = {"$ref": "#/components/schemas/Error"}
_ACCEPTED = {"$ref": "#/components/schemas/Accepted"}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Body cannot be framed (invalid JSON line, CSV without header, not Avro, truncated gzip); nothing stored",
        401: "API key missing or invalid",
        403: "API key may not send this source",
        413: "Body over the size limit, or too many records",
        415: "Content-Type or Content-Encoding not accepted",
        422: "Idempotency-Key reused with a different body",
        503: "Disk nearly full, landing backlog over its bound, or shutting down; see Retry-After",
    }
    return {
        str(s): {"description": text[s], "content": {"application/json": {"schema": _ERROR}}}
        for s in statuses
    }


def _intake(source: str, summary: str, types: dict[str, str]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "operationId": f"post_{source}",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "A retry with the same key and body is answered without storing twice.",
                },
                {
                    "name": "Content-Encoding",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "enum": ["gzip", "identity"]},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    t: {"schema": {"type": "string", "description": d}} for t, d in types.items()
                },
            },
            "responses": {
                "200": {
                    "description": "Stored and fsync'd",
                    "content": {"application/json": {"schema": _ACCEPTED}},
                },
                **_errors(400, 401, 403, 413, 415, 422, 503),
            },
        }
    }


_NDJSON = "One JSON object per line"
_JSON = "A JSON array of objects, or NDJSON"

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "AdvertiseX collector",
        "version": __version__,
        "description": "Real-time intake of ad events. A 2xx means the body is on disk and fsync'd.",
    },
    "paths": {
        "/v1/impressions": _intake(
            "impressions",
            "Ad impressions",
            {"application/x-ndjson": _NDJSON, "application/json": _JSON},
        ),
        "/v1/clicks": _intake(
            "clicks",
            "Clicks and conversions",
            {
                "text/csv": "CSV with a header row",
                "application/x-ndjson": _NDJSON,
                "application/json": _JSON,
            },
        ),
        "/v1/bids": _intake(
            "bids",
            "Bid requests",
            {
                "application/avro": "Avro object container",
                "application/x-ndjson": _NDJSON,
                "application/json": _JSON,
            },
        ),
        "/": {
            "post": {
                "summary": "Kinesis Data Firehose PutRecord / PutRecordBatch (AWS JSON 1.1)",
                "operationId": "firehose",
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
                    "content": {"application/x-amz-json-1.1": {"schema": {"type": "object"}}}
                },
                "responses": {
                    "200": {"description": "RecordId, or FailedPutCount and RequestResponses"},
                    "400": {
                        "description": "AWS error: {__type, message}, e.g. ResourceNotFoundException"
                    },
                    "503": {"description": "ServiceUnavailableException"},
                },
            }
        },
        **tracking.PATHS,
        "/healthz": {
            "get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: accepting data",
                "responses": {"200": {"description": "ready"}, **_errors(503)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text format"}},
            }
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "Accepted": {
                "type": "object",
                "properties": {"accepted": {"type": "integer"}, "source": {"type": "string"}},
            },
            **tracking.SCHEMAS,
        }
    },
}


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
