"""The JSON read API under ``/api/v1``: the console's data for scripts and BI tools.

Every answer is JSON (the query endpoint also speaks CSV); every refusal is
``{"code": …, "message": …}`` with the status the error family gives it. GETs need the
read scope, ``POST /api/v1/query`` too (it only reads), replay needs admin. Described
in the OpenAPI document (:mod:`advertisex.console.openapi`) and docs/console.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from advertisex.collector.responses import (
    ApiError,
    error_response,
    json_response,
    media_type,
    read_body,
)
from advertisex.console import params
from advertisex.console.data import Reader
from advertisex.errors import AdvertiseXError, UserInputError
from advertisex.util import jsonutil

log = logging.getLogger("advertisex.console")
Endpoint = Callable[[Request], Awaitable[Response]]
MAX_BODY = 256 << 10


def reader(request: Request) -> Reader:
    return request.app.state.reader  # type: ignore[no-any-return]


def require(request: Request, scope: str) -> None:
    principal = request.state.principal
    if principal is None or not principal.may(scope):
        raise ApiError(403, "forbidden", f"this needs a console key with the {scope} scope")


def api(endpoint: Endpoint) -> Endpoint:
    """Errors of the whole family become JSON answers; anything else a logged 500."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as error:  # a file the storage lost: said so (lake.damage)
            told = await run_in_threadpool(reader(request).damage, error) or error
            if isinstance(told, AdvertiseXError):
                return error_response(told, retry_after=2)
            log.exception("console API failed on %s %s", request.method, request.url.path)
            return ApiError(
                500, "internal", "the console failed unexpectedly; see the server log"
            ).response()

    wrapped.__name__ = endpoint.__name__
    return wrapped


def dumps(data: Any) -> Response:
    return Response(jsonutil.dumps(data), media_type="application/json")


# ---------------------------------------------------------------------- endpoints
async def status(request: Request) -> Response:
    hours = params.integer(request.query_params, "hours", 6, 1, 48)
    return dumps(await run_in_threadpool(reader(request).status, hours))


async def report(request: Request) -> Response:
    name = request.path_params["name"]
    options = params.report_options(request.query_params)
    return dumps(await run_in_threadpool(reader(request).report, name, **options))


async def quarantine(request: Request) -> Response:
    selection = params.selection(request.query_params)
    return dumps(await run_in_threadpool(reader(request).quarantine, selection))


async def quarantine_records(request: Request) -> Response:
    selection = params.selection(request.query_params)
    limit = params.integer(request.query_params, "limit", 20, 1, 1000)
    rows = await run_in_threadpool(reader(request).quarantine_records, selection, limit)
    return dumps(rows)


async def replay_preview(request: Request) -> Response:
    selection = params.selection(request.query_params)
    return dumps(await run_in_threadpool(reader(request).replay_preview, selection))


async def replay(request: Request) -> Response:
    require(request, "admin")
    body = await json_body(request)
    selection = params.selection(body)
    return dumps(await run_in_threadpool(reader(request).replay, selection))


async def alerts(request: Request) -> Response:
    since = params.instant(request.query_params, "since")
    return dumps(await run_in_threadpool(reader(request).alerts, since))


async def query(request: Request) -> Response:
    body = await json_body(request)
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise UserInputError('the body needs "sql": a SELECT statement as a string')
    config = reader(request).settings.console
    cap = params.integer(body, "max_rows", config.query_max_rows, 1, config.query_max_rows)
    result = await run_in_threadpool(reader(request).query, sql, cap)
    headers = {"X-Truncated": "true" if result.truncated else "false"}
    wants_csv = params.text(request.query_params, "format") == "csv" or media_type_of(
        request.headers.get("accept", "")
    ) == ("text/csv")
    if wants_csv:
        return Response(
            result.csv(),
            media_type="text/csv; charset=utf-8",
            headers={**headers, "Content-Disposition": 'attachment; filename="query.csv"'},
        )
    return Response(
        jsonutil.dumps(
            {
                "columns": result.columns,
                "rows": jsonutil.Fragment(result.rows_as_json()),
                "row_count": result.table.num_rows,
                "truncated": result.truncated,
                "max_rows": cap,
                "seconds": round(result.seconds, 3),
            }
        ),
        media_type="application/json",
        headers=headers,
    )


async def lake(request: Request) -> Response:
    return dumps(await run_in_threadpool(reader(request).lake))


def media_type_of(header: str) -> str:
    return header.split(",", 1)[0].split(";", 1)[0].strip().lower()


async def json_body(request: Request) -> dict[str, Any]:
    """A JSON object body; ``Content-Type: application/json`` is required, so a page on
    another site cannot send it without a CORS preflight (which is never granted)."""
    if media_type(request) != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    raw = await read_body(request, MAX_BODY)
    try:
        body = jsonutil.loads(raw) if raw.strip() else {}
    except jsonutil.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def routes() -> list[Route]:
    return [
        Route("/api/v1/status", api(status), methods=["GET"]),
        Route("/api/v1/reports/{name}", api(report), methods=["GET"]),
        Route("/api/v1/quarantine", api(quarantine), methods=["GET"]),
        Route("/api/v1/quarantine/records", api(quarantine_records), methods=["GET"]),
        Route("/api/v1/quarantine/replay", api(replay_preview), methods=["GET"]),
        Route("/api/v1/quarantine/replay", api(replay), methods=["POST"]),
        Route("/api/v1/alerts", api(alerts), methods=["GET"]),
        Route("/api/v1/query", api(query), methods=["POST"]),
        Route("/api/v1/lake", api(lake), methods=["GET"]),
    ]


__all__ = ["error_response", "json_response", "routes"]
