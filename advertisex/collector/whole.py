"""A tracking answer written whole: the pixel's GIF and the click's 302 in one write.

A response known whole before its first byte is written to the socket in one piece
where uvicorn's ASGI ``send`` would take two messages, two header validations and two
socket writes — two TCP segments for the client to read. Kept apart from
:mod:`.connections` so that building links (``sign-url``) does not import uvicorn.
"""

from __future__ import annotations

import re
from typing import Any

# The checks uvicorn's httptools protocol makes of every response header (its HEADER_RE and
# HEADER_VALUE_RE): no CR, LF or other control character — no header injection.
_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_uvicorn: tuple[Any, dict[int, bytes]] | None = None  # (its cycle class, its status lines)


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """``headers`` as the lines of a response head, each checked as uvicorn checks them.
    ValueError otherwise.

    >>> header_lines([(b"Location", b"https://shop.example/")])
    b'location: https://shop.example/\\r\\n'
    """
    lines: list[bytes] = []
    for name, value in headers:
        if _NAME.search(name) or _VALUE.search(value):
            raise ValueError(f"invalid response header {name!r}: {value!r}")
        lines += (name.lower(), b": ", value, b"\r\n")
    return b"".join(lines)


def answer_whole(send: Any, status: int, head: bytes, body: bytes | memoryview) -> bool:
    """Answer with ``status``, the header lines ``head`` (from :func:`header_lines`, with
    ``content-length``) and ``body`` (left out for ``HEAD``), in one write to the socket.

    Only where ``send`` is uvicorn's httptools cycle and nothing of the answer has gone
    out; then the bytes and the cycle's state after them are what its ``send`` makes of
    the two ASGI messages (tests/collector/test_tracking_wire.py compares them). False
    otherwise (another server, a connection paused or gone): the caller sends the ASGI
    messages as usual.
    """
    global _uvicorn
    if _uvicorn is None:
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

        _uvicorn = (RequestResponseCycle, STATUS_LINE)
    cycle_class, status_lines = _uvicorn
    cycle = getattr(send, "__self__", None)
    if (
        type(cycle) is not cycle_class
        or cycle.response_started
        or cycle.disconnected
        or cycle.access_log
        or cycle.flow.write_paused
    ):
        return False
    cycle.response_started = cycle.response_complete = True
    cycle.waiting_for_100_continue = False
    cycle.chunked_encoding = False
    parts: list[bytes | memoryview] = [status_lines[status]]
    for name, value in cycle.default_headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(head)
    if not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if cycle.scope["method"] != "HEAD":
        parts.append(body)
    cycle.transport.write(b"".join(parts))
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True
