"""The console's part of the OpenAPI document: the read API and the pages.

Written by hand like the collector's (:mod:`advertisex.collector.openapi`), and merged
into it where both are served from one port (``serve``, ``up``); ``advertisex console``
serves this part alone.
"""

from __future__ import annotations

import copy
from typing import Any

from advertisex import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}
_ROWS = {"type": "array", "items": {"type": "object"}}
_DAY = {"type": "string", "format": "date"}
_INSTANT = {"type": "string", "format": "date-time"}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Bad parameter or SQL (code says which: bad_input, read_only, several_statements "
        "— more than one statement, none run: send one at a time —, query_timeout, "
        "query_too_large …)",
        401: "A console key is required (bound beyond loopback)",
        403: "The key's scope does not allow this",
        404: "No such report",
        413: "Body too large",
        415: "Body is not application/json",
        500: "The query's worker failed with a fault of AdvertiseX, not of the query "
        "(query_failed; the message says what, the server's log has its traceback), or died "
        "before it answered, not for its memory or time (query_worker_failed; run it again)",
        503: "The lake is busy (a commit race), or as many queries as may run at once are "
        "running (queries_busy); retry after Retry-After",
    }
    return {
        str(s): {"description": text[s], "content": {"application/json": {"schema": _ERROR}}}
        for s in statuses
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_RANGE = [
    _query("from", _DAY, "First day (UTC), inclusive."),
    _query("to", _DAY, "Last day (UTC), inclusive."),
    _query("campaign", {"type": "string"}, "Only this campaign."),
    _query(
        "model",
        {"type": "string", "enum": ["last", "first", "linear"], "default": "last"},
        "Attribution model.",
    ),
    _query("include_ivt", {"type": "boolean"}, "campaigns: count invalid traffic beside."),
]
_SELECTION = [
    _query(
        "source", {"type": "string", "enum": ["impressions", "clicks", "bids"]}, "Only this source."
    ),
    _query("reason", {"type": "string"}, "A reason code, or code:field."),
    _query("since", _INSTANT, "Landed at or after."),
    _query("until", _INSTANT, "Landed before."),
]
_SELECTION_BODY = {
    "type": "object",
    "properties": {
        "source": {"type": "string", "enum": ["impressions", "clicks", "bids"]},
        "reason": {"type": "string"},
        "since": _INSTANT,
        "until": _INSTANT,
    },
    "additionalProperties": False,
}


def _get(
    summary: str, parameters: list[dict[str, Any]], schema: dict[str, Any], *errors: int
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["read API"],
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                **_errors(400, 401, 403, *errors),
            },
        }
    }


def _page(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["console pages"],
            "responses": {
                "200": {"description": "HTML page", "content": {"text/html": {}}},
                "303": {"description": "Sign-in needed: redirect to /login"},
            },
        }
    }


PATHS: dict[str, Any] = {
    "/api/v1/status": _get(
        "Per source: freshness, backlog, rates; firing alerts; events per minute",
        [_query("hours", {"type": "integer", "minimum": 1, "maximum": 48}, "Series length.")],
        {"type": "object"},
    ),
    "/api/v1/reports/{name}": _get(
        "A report's rows, as `advertisex report NAME --format json`",
        [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {
                    "type": "string",
                    "enum": ["campaigns", "funnel", "bids", "hourly", "users"],
                },
            },
            *_RANGE,
        ],
        {"oneOf": [_ROWS, {"type": "object"}]},
        404,
    ),
    "/api/v1/quarantine": _get(
        "Quarantined records by source and reason, and per hour of landing",
        _SELECTION,
        {
            "type": "object",
            "properties": {"summary": _ROWS, "timeline": _ROWS},
        },
    ),
    "/api/v1/quarantine/records": _get(
        "Quarantined records with their reasons and raw text",
        [
            *_SELECTION,
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "At most."),
        ],
        _ROWS,
    ),
    "/api/v1/quarantine/replay": {
        **_get(
            "What a replay of the selection would take (selected, not_replayable)",
            _SELECTION,
            {"type": "object"},
        ),
        "post": {
            "summary": "Replay the selected quarantined records (admin scope)",
            "tags": ["read API"],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _SELECTION_BODY}},
            },
            "responses": {
                "200": {
                    "description": "What the replay did, as `quarantine replay --format json`",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_errors(400, 401, 403, 413, 415, 503),
            },
        },
    },
    "/api/v1/alerts": _get(
        "Alerts firing now and the history from ops.alerts (newest first)",
        [_query("since", _INSTANT, "History from this instant on.")],
        {"type": "object", "properties": {"firing": _ROWS, "history": _ROWS}},
    ),
    "/api/v1/query": {
        "post": {
            "summary": "Read-only SQL over the lake, as `advertisex query`, with a row cap and a time limit",
            "tags": ["read API"],
            "parameters": [
                _query("format", {"type": "string", "enum": ["json", "csv"]}, "csv: CSV text.")
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["sql"],
                            "properties": {
                                "sql": {"type": "string", "minLength": 1},
                                "max_rows": {"type": "integer", "minimum": 1},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "columns, rows, row_count, truncated, max_rows, seconds "
                    "(or CSV); header X-Truncated",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **_errors(400, 401, 403, 413, 415, 500, 503),
            },
        }
    },
    "/api/v1/lake": _get(
        "Per table: rows, data files, bytes, snapshots, last commit, last maintenance; "
        "each table's last ops.maintenance row",
        [],
        {"type": "object", "properties": {"tables": _ROWS, "maintenance": _ROWS}},
    ),
    "/": _page("Console: overview"),
    "/campaigns": _page("Console: campaigns"),
    "/quarantine": _page("Console: quarantine"),
    "/alerts": _page("Console: alerts"),
    "/sql": _page("Console: SQL"),
    "/lake": _page("Console: lake"),
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}


def document(base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The console's paths merged into ``base`` (the collector's document), or alone."""
    if base is None:
        spec: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {
                "title": "AdvertiseX console and read API",
                "version": __version__,
                "description": "The web console and the JSON read API over the lake.",
            },
            "paths": {},
            "components": {"schemas": {"Error": ERROR_SCHEMA}},
        }
    else:
        spec = copy.deepcopy(base)
        spec["info"]["description"] += (
            " The same port serves the web console at / and the read API at /api/v1."
        )
    for path, operations in PATHS.items():
        spec["paths"].setdefault(path, {}).update(copy.deepcopy(operations))
    spec.setdefault("components", {}).setdefault("schemas", {}).setdefault("Error", ERROR_SCHEMA)
    return spec
