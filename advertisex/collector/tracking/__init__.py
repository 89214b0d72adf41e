"""The tracking endpoints: impression pixel, click redirect, conversion postback.

Ad markup and advertisers speak these instead of POSTing batches: ``GET /v1/i`` (a
pixel), ``GET /v1/c`` (a signed redirect), ``GET``/``POST /v1/postback`` (a
server-to-server conversion). Each request becomes one record of the source contract,
landed through the collector's durable writers before it is answered.
"""

from __future__ import annotations

from starlette.routing import Route


def routes() -> list[Route]:
    from advertisex.collector.tracking import pixel, postback, redirect

    return [
        Route("/v1/i", pixel.endpoint, methods=["GET", "HEAD"]),
        Route("/v1/c", redirect.endpoint, methods=["GET", "HEAD"]),
        Route("/v1/postback", postback.endpoint, methods=["GET", "POST"]),
    ]
