"""OpenAPI 3.1 paths of the tracking endpoints and Firehose HTTP endpoint delivery.

Merged into the collector's document by :mod:`advertisex.collector.openapi`.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _query(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": "string"},
        "description": description,
    }


def _errors(**described: str) -> dict[str, Any]:
    return {
        status.removeprefix("s"): {
            "description": text,
            "content": {"application/json": {"schema": _ERROR}},
        }
        for status, text in described.items()
    }


_IMPRESSION = [
    _query("campaign_id", "Campaign."),
    _query("ad_creative_id", "Creative (required by the impression contract)."),
    _query("website", "Site; default: the Referer's host."),
    _query("placement", "Placement on the site."),
    _query("user_id", "User; default: the first-party cookie, else a new one (Set-Cookie)."),
    _query("impression_id", "Impression id: a reload with the same id is one impression."),
    _query("auction_id", "The bid request's auction id."),
    _query("cost", "Clearing price of this impression."),
    _query("cpm", "Clearing price as CPM (e.g. the ${AUCTION_PRICE} macro), when cost is absent."),
    _query("timestamp", "Event time (ISO-8601 or epoch); default: now."),
]
_GIF = {
    "description": "Always the 43-byte transparent GIF, not cacheable — even for a broken "
    "request, whose record is quarantined with the reason",
    "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
}
_QUERY_ERRORS = {
    "s400": "query_invalid_utf8, query_duplicate_parameter, query_too_many_parameters, "
    "parameter_missing, parameter_invalid, click_id_unknown",
    "s414": "query_too_long",
}

PATHS: dict[str, Any] = {
    "/v1/i": {
        "get": {
            "summary": "Impression pixel: lands an impression, answers a transparent GIF",
            "operationId": "pixel",
            "parameters": _IMPRESSION,
            "responses": {"200": _GIF},
        },
    },
    "/v1/c": {
        "get": {
            "summary": "Click redirect: lands a click, answers 302 to the signed destination",
            "operationId": "click",
            "parameters": [
                _query("to", "Destination (absolute http/https URL).", required=True),
                _query("campaign_id", "Campaign; picks the signing key.", required=True),
                _query("sig", "HMAC-SHA256 of the other parameters (advertisex sign-url).", True),
                _query("ad_creative_id", "Creative."),
                _query("impression_id", "The impression clicked (exact click matching)."),
                _query("user_id", "User; default: the first-party cookie."),
            ],
            "responses": {
                "302": {
                    "description": "To the destination, with the click id appended as "
                    "collector.tracking.click_id_param",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                **_errors(
                    **_QUERY_ERRORS,
                    s403="signature_missing, signature_invalid, signing_not_configured, "
                    "destination_invalid (javascript:, data:, control characters), "
                    "destination_not_allowed; nothing redirected",
                ),
            },
        },
    },
    "/v1/postback": {
        method: {
            "summary": "Conversion postback: lands a conversion carrying its click id",
            "operationId": f"postback_{method}",
            "parameters": [
                _query("txn", "Transaction id: a repeated one is one conversion.", True),
                _query("click_id", "The click id the landing page received."),
                _query("type", "Conversion type (signup, purchase, install, lead, other)."),
                _query("value", "Conversion value."),
                _query("currency", "ISO-4217 currency."),
                _query("user_id", "User (needed when click_id is absent or foreign)."),
                _query("campaign_id", "Campaign (likewise)."),
                _query("key", "API key, for senders that cannot set headers."),
                _query("sig", "Signature with the postback secret, instead of a key."),
            ],
            **(
                {
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                            "application/json": {"schema": {"type": "object"}},
                        },
                    }
                }
                if method == "post"
                else {}
            ),
            "responses": {
                "200": {
                    "description": "Stored and fsync'd (or a retry answered from memory, "
                    "Idempotent-Replayed: true)",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_errors(
                    **_QUERY_ERRORS,
                    s401="api_key_missing, api_key_invalid",
                    s403="source_forbidden (key without 'postback'), signature_invalid",
                    s415="unsupported_media_type",
                    s503="disk nearly full, backlog over its bound, or shutting down; Retry-After",
                ),
            },
        }
        for method in ("get", "post")
    },
    "/v1/firehose": {
        "post": {
            "summary": "Kinesis Data Firehose HTTP endpoint delivery",
            "operationId": "firehose_http",
            "parameters": [
                {
                    "name": "X-Amz-Firehose-Request-Id",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "Same on every retry: a retried delivery is stored once.",
                },
                {
                    "name": "X-Amz-Firehose-Source-Arn",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "The stream; its name picks the source "
                    "(collector.firehose_streams).",
                },
                {
                    "name": "X-Amz-Firehose-Access-Key",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "The API key.",
                },
                _query("source", "impressions, clicks or bids, instead of the stream map."),
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["requestId", "records"],
                            "properties": {
                                "requestId": {"type": "string"},
                                "timestamp": {"type": "integer"},
                                "records": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {"data": {"type": "string"}},
                                    },
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                code: {
                    "description": text,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/FirehoseResponse"}
                        }
                    },
                }
                for code, text in (
                    ("200", "Every record stored and fsync'd: {requestId, timestamp}"),
                    ("400", "Malformed delivery or unmapped stream: errorMessage says which"),
                    ("401", "Access key missing or invalid"),
                    ("413", "Delivery over collector.max_delivery_bytes (Firehose gives up)"),
                    ("503", "Cannot store now; Firehose retries"),
                )
            },
        }
    },
}

SCHEMAS: dict[str, Any] = {
    "FirehoseResponse": {
        "type": "object",
        "required": ["requestId", "timestamp"],
        "properties": {
            "requestId": {"type": "string"},
            "timestamp": {"type": "integer"},
            "errorMessage": {"type": "string"},
        },
    }
}
