"""The tracking endpoints: impression pixel, click redirect, conversion postback.

Ad markup and advertisers speak these instead of POSTing batches: ``GET /v1/i`` (a
pixel), ``GET /v1/c`` (a signed redirect), ``GET``/``POST /v1/postback`` (a
server-to-server conversion). Each request becomes one record of the source contract,
landed through the collector's durable writers before it is answered.

The pixel and the redirect are the hottest paths of the collector — one small request
per ad view or click — so :class:`TrackingApp` hands them their requests straight from
the ASGI call, past Starlette's middleware stack and route table, which cost about as
much CPU as the endpoints' own work, and writes their answers to the socket in one piece
(:func:`~advertisex.collector.whole.answer_whole`). Everything else goes through
Starlette as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from advertisex.collector.whole import answer_whole

log = logging.getLogger("advertisex.collector")
Endpoint = Callable[[Request], Awaitable[Response]]


def routes() -> list[Route]:
    from advertisex.collector.tracking import pixel, postback, redirect

    return [
        Route("/v1/i", pixel.endpoint, methods=["GET", "HEAD"]),
        Route("/v1/c", redirect.endpoint, methods=["GET", "HEAD"]),
        Route("/v1/postback", postback.endpoint, methods=["GET", "POST"]),
    ]


class TrackingApp(Starlette):
    """Starlette, with ``GET``/``HEAD`` of the pixel and the redirect served directly."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        from advertisex.collector.tracking import pixel, redirect

        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._fast: dict[str, tuple[Endpoint, Callable[[], Response]]] = {
            "/v1/i": (pixel.endpoint, pixel.gif),
            "/v1/c": (redirect.endpoint, redirect.failed),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self._fast.get(scope["path"]) if scope["type"] == "http" else None
        if fast is None or scope["method"] not in ("GET", "HEAD"):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        endpoint, fallback = fast
        try:
            response = await endpoint(Request(scope, receive))
        except Exception:  # what Starlette's error middleware would do, in the endpoint's shape
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            response = fallback()
        head = getattr(response, "head", None)  # a GIF or a 302: one write where uvicorn serves
        if head is None or not answer_whole(send, response.status_code, head, response.body):
            await response(scope, receive, send)
