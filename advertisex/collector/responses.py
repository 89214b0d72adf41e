"""HTTP plumbing shared by the endpoints: JSON errors with stable codes, bounded body reads.

Every refusal is ``{"code": ..., "message": ...}`` with the right status; a 503 always
carries ``Retry-After``. :func:`error_response` is the one place an error of the family
(:class:`advertisex.errors.AdvertiseXError`) becomes an answer: its ``code``, ``message``
and ``http_status``. Firehose endpoints speak AWS's own error shape instead
(``__type`` + ``message``), built in :mod:`advertisex.collector.firehose`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from advertisex.errors import AdvertiseXError
from advertisex.util import jsonutil

JSON = "application/json"


class ApiError(AdvertiseXError):
    """A refusal the HTTP layer decides itself (a limit, a media type): status and code given."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.http_status, self.code = status, code
        self.headers = headers or {}
        self.extra = extra

    @property
    def status(self) -> int:
        return self.http_status

    def body(self) -> bytes:
        return error_body(self)

    def response(self) -> Response:
        return error_response(self)


def error_body(error: AdvertiseXError) -> bytes:
    """``{"code", "message"}`` (and an :class:`ApiError`'s extra fields) as JSON; the
    message carries the error's hint, what to do about it."""
    message = f"{error.message} ({error.hint})" if error.hint else error.message
    return jsonutil.dumps({"code": error.code, "message": message, **getattr(error, "extra", {})})


def error_headers(error: AdvertiseXError, retry_after: int = 1) -> dict[str, str]:
    """The error's own headers; a retryable refusal always says when to come back."""
    headers = dict(getattr(error, "headers", None) or {})
    if error.retryable:
        headers.setdefault("Retry-After", str(retry_after))
    return headers


def error_response(error: AdvertiseXError, retry_after: int = 1) -> Response:
    """The one mapping of the error family onto HTTP (the collector's and the console's):
    ``http_status`` and the JSON body."""
    headers = error_headers(error, retry_after)
    return Response(error_body(error), error.http_status, headers=headers, media_type=JSON)


def unavailable(code: str, message: str, retry_after: int) -> ApiError:
    error = ApiError(503, code, message, {"Retry-After": str(retry_after)})
    error.retryable = True
    return error


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
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit)
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or cut off for sending too slowly (collector.connections)
        raise ApiError(
            408, "body_timeout", "the client went away before the body arrived; nothing stored"
        ) from None
    return b"".join(chunks)


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"the body has {'at least ' if size else ''}{size} bytes, more than the limit of {limit}; "
        "split it into smaller requests",
    )
