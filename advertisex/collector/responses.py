"""HTTP plumbing shared by the endpoints: JSON errors with stable codes, bounded body reads.

Every refusal is ``{"code": ..., "message": ...}`` with the right status; a 503 always
carries ``Retry-After``. Firehose endpoints speak AWS's own error shape instead
(``__type`` + ``message``), built in :mod:`advertisex.collector.firehose`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from advertisex.util import jsonutil

JSON = "application/json"


class ApiError(Exception):
    """A refusal that becomes a JSON error response; never a stack trace."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> bytes:
        return jsonutil.dumps({"code": self.code, "message": self.message, **self.extra})

    def response(self) -> Response:
        return Response(self.body(), self.status, headers=self.headers, media_type=JSON)


def unavailable(code: str, message: str, retry_after: int) -> ApiError:
    return ApiError(503, code, message, {"Retry-After": str(retry_after)})


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(jsonutil.dumps(data), status, headers=headers, media_type=JSON)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"the body has {'at least ' if size else ''}{size} bytes, more than the limit of {limit}; "
        "split it into smaller requests",
    )
