"""The tracking endpoints: impression pixel, click redirect, conversion postback.

Ad markup and advertisers speak these instead of POSTing batches: ``GET /v1/i`` (a
pixel), ``GET /v1/c`` (a signed redirect), ``GET``/``POST /v1/postback`` (a
server-to-server conversion). Each request becomes one record of the source contract,
landed through the collector's durable writers before it is answered.

The pixel and the redirect are the hottest paths of the collector — one small request
per ad view or click. Where ``advertisex serve`` runs, the HTTP protocol answers them
itself (:mod:`.protocol`: no ASGI scope, no task, no Starlette); under any other server
:class:`TrackingApp` hands them their requests straight from the ASGI call, past
Starlette's middleware stack and route table. Both call :func:`respond`, so both answer
and land the same. Everything else goes through Starlette.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from advertisex.collector.tracking.visitor import Hit

if TYPE_CHECKING:
    from advertisex.collector.tracking.service import Tracking

log = logging.getLogger("advertisex.collector")
Answer = Callable[["Tracking", Hit], Awaitable[Response]]
# A fast path: its answer, and what it answers if that fails unexpectedly.
FastPath = tuple[Answer, Callable[[], Response]]


def routes() -> list[Route]:
    from advertisex.collector.tracking import pixel, postback, redirect

    return [
        Route("/v1/i", pixel.endpoint, methods=["GET", "HEAD"]),
        Route("/v1/c", redirect.endpoint, methods=["GET", "HEAD"]),
        Route("/v1/postback", postback.endpoint, methods=["GET", "POST"]),
    ]


def fast_paths() -> dict[str, FastPath]:
    """The paths answered without Starlette (``GET`` and ``HEAD`` only)."""
    from advertisex.collector.tracking import pixel, redirect

    return {"/v1/i": (pixel.answer, pixel.gif), "/v1/c": (redirect.answer, redirect.failed)}


async def respond(tracking: Tracking, path: str, hit: Hit, fast: FastPath) -> Response:
    """``fast``'s answer to ``hit``; a failure is logged and answered in the endpoint's own
    shape (a GIF, a JSON 500), as Starlette's error middleware would."""
    answer, fallback = fast
    try:
        return await answer(tracking, hit)
    except Exception:
        log.exception("unexpected error on %s %s", hit.method, path)
        return fallback()


class TrackingApp(Starlette):
    """Starlette, with ``GET``/``HEAD`` of the pixel and the redirect served directly."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._fast = fast_paths()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self._fast.get(scope["path"]) if scope["type"] == "http" else None
        if fast is None or scope["method"] not in ("GET", "HEAD"):
            await super().__call__(scope, receive, send)
            return
        response = await respond(self.state.tracking, scope["path"], Hit.of(scope), fast)
        await response(scope, receive, send)
