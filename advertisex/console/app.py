"""The console's ASGI app, on its own or in front of the collector on one port.

:func:`create_app` builds the pages, the ``/api/v1`` endpoints, ``/static`` and the
OpenAPI document behind the :class:`~advertisex.console.access.Gate`. :func:`combine`
puts it beside the collector: requests for the console's paths go to it, everything
else (intake, Firehose, health, metrics) to the collector untouched — so intake keeps
its own errors, limits and lifespan.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from advertisex.collector.responses import ApiError, json_response
from advertisex.config import Settings
from advertisex.console import api, openapi, pages
from advertisex.console.access import Access, Gate
from advertisex.console.data import Reader
from advertisex.console.platform import Platform

# Paths the console answers when it shares a port with the collector.
PREFIXES = ("/api/", "/static/", "/campaigns", "/quarantine", "/alerts", "/sql", "/lake")
EXACT = ("/login", "/logout", "/openapi.json", "/docs")


def create_app(
    open_platform: Callable[[], Platform],
    settings: Settings,
    bind_host: str,
    base_spec: dict[str, Any] | None = None,
) -> Starlette:
    """The console for a server listening on ``bind_host``; the platform opens on first use.

    ``base_spec``: the collector's OpenAPI document, when both share the port.
    """
    spec = openapi.document(base_spec)

    async def openapi_json(request: Request) -> Response:
        return json_response(spec)

    async def docs(request: Request) -> Response:
        from advertisex.collector.openapi import html_page

        # The page styles itself inline and runs nothing: no script may run on it at all.
        policy = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
        return HTMLResponse(html_page(spec), headers={"Content-Security-Policy": policy})

    static = resources.files("advertisex.console") / "static"
    routes = [
        *pages.routes(),
        *api.routes(),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
    ]
    access = Access(settings.console, bind_host)
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.add_middleware(Gate, access=access)
    app.state.reader = Reader(open_platform, settings)
    app.state.access = access
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        code, message = "not_found", f"nothing at {request.url.path}; see /docs"
    elif exc.status_code == 405:
        code, message = "method_not_allowed", f"{request.method} is not allowed here; see /docs"
    else:
        code, message = "http_error", str(exc.detail)
    if "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
        "/api/"
    ):
        return pages.render(request, "error.html", exc.status_code, code=code, message=message)
    return ApiError(exc.status_code, code, message).response()


def is_console_path(method: str, path: str) -> bool:
    if path == "/":
        return method in ("GET", "HEAD")  # POST / is the collector's Firehose API
    return path in EXACT or path.startswith(PREFIXES)


def combine(collector: ASGIApp, console: ASGIApp) -> ASGIApp:
    """One ASGI app: the console's paths to ``console``, the rest (and the lifespan, which
    starts and seals the collector's writers) to ``collector``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and is_console_path(
            scope.get("method", "GET"), scope["path"]
        ):
            await console(scope, receive, send)
        else:
            await collector(scope, receive, send)

    return app
