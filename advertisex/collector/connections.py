"""Bounded connections: a client must finish its request in time, and slow ones are capped.

uvicorn times out idle keep-alive connections but not a request that is still arriving:
a client sending its headers a byte a minute (slowloris) holds a connection, a file
descriptor and a parser forever, and fifty of them hold fifty. This is uvicorn's httptools
protocol with three guards added where the protocol sees bytes arrive:

- headers must be complete ``header_timeout`` seconds after the request's first byte (or
  the connection's opening), else ``408 header_timeout`` and the connection is closed;
- the body must be complete ``body_timeout`` seconds after the headers, else
  ``408 body_timeout`` (the endpoint waiting for it sees the client gone and stores nothing);
- at most ``max_unfinished`` connections may be mid-request at once; one more is answered
  ``503 too_many_connections`` with ``Retry-After`` and closed at once;
- the request line and headers may take at most ``max_head_bytes``, else
  ``431 headers_too_large`` and the connection is closed: httptools keeps them whole
  (400 MB of headers held 400 MB) and grows a long URL or header value by a copy per
  read, so a client sending one for the ten seconds it is allowed kept the event loop
  busy copying (a 300 MB URL stalled every request for seconds).

A request httptools cannot parse is answered ``400 http_invalid`` in the same JSON (uvicorn
answered it in plain text).

The deadlines are checked by one timer (:class:`Deadlines`), a tenth of the shorter
timeout apart: a late client is cut off up to that much after its deadline.

The answers are the collector's JSON errors, written straight to the socket: no endpoint
has seen the request yet (or it never will see the rest of it).

:mod:`advertisex.collector.tracking.protocol` builds on this protocol: it answers the
pixel and the redirect itself, where the request is parsed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from advertisex.util import jsonutil

LINGER_SECONDS = 1.0  # how long a refused connection still reads (and drops) before closing


def guarded_protocol(
    header_timeout: float,
    body_timeout: float,
    max_unfinished: int,
    base: type[GuardedProtocol] | None = None,
    max_head_bytes: int = 64 << 10,
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these limits, for ``uvicorn.Config(http=…)``;
    ``base`` is a subclass of :class:`GuardedProtocol` to give them to."""

    class Guarded(base or GuardedProtocol):  # type: ignore[misc]
        pass

    Guarded.header_timeout = header_timeout
    Guarded.body_timeout = body_timeout
    Guarded.max_unfinished = max_unfinished
    Guarded.max_head_bytes = max_head_bytes
    Guarded.unfinished = Deadlines(min(1.0, max(0.01, min(header_timeout, body_timeout) / 10)))
    return Guarded


class Deadlines:
    """The connections mid-request, and by when each must have sent the part it is sending.

    One timer looks every ``every`` seconds (a tenth of the shorter timeout, at most one
    second) and cuts off the late ones, so a connection is cut at most ``every`` after
    its deadline. A timer per request — armed at its first byte, cancelled at its last
    header, several microseconds of every pixel — would be exact, and cost more than
    the rest of the guard.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self.due: dict[GuardedProtocol, tuple[float, str, float]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.due)

    def __contains__(self, protocol: object) -> bool:
        return protocol in self.due

    def expect(self, protocol: GuardedProtocol, code: str, seconds: float) -> None:
        loop = protocol.loop
        self.due[protocol] = (loop.time() + seconds, code, seconds)
        if self._timer is None:
            self._timer = loop.call_later(self.every, self._check, loop)

    def done(self, protocol: GuardedProtocol) -> None:
        self.due.pop(protocol, None)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for protocol, (deadline, code, seconds) in list(self.due.items()):
            if deadline <= now:
                protocol._expired(code, seconds)
        if self.due:
            self._timer = loop.call_later(self.every, self._check, loop)


class GuardedProtocol(HttpToolsProtocol):
    header_timeout: float
    body_timeout: float
    max_unfinished: int
    max_head_bytes: int = 64 << 10
    unfinished: Deadlines  # connections mid-request, shared by the server's
    heads = 0  # requests begun on this connection
    head_bytes = 0  # bytes of the current request's head, from the read after its first
    refused = False  # answered and ended: what still arrives is dropped

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # what a refused client still sends while the connection lingers
        heads = self.heads
        super().data_received(data)
        # A read in which a request began is not counted (part of it may be the request
        # before): the head is bounded to the limit and one read more.
        if heads == self.heads and self._reading_head():
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head_bytes:
                self._refuse(
                    431,
                    "headers_too_large",
                    f"the request line and headers take more than {self.max_head_bytes} "
                    "bytes; send a shorter URL and fewer or shorter headers",
                )

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to bytes httptools cannot parse, in plain text; httptools'
        # reason (being handled) is one of its own fixed phrases, never the client's bytes
        reason = sys.exc_info()[1]
        why = (
            f" ({reason})" if isinstance(reason, httptools.HttpParserError) and reason.args else ""
        )
        self._refuse(
            400,
            "http_invalid",
            f"the request is not valid HTTP/1.1{why}; nothing stored",
        )

    def _reading_head(self) -> bool:
        due = self.unfinished.due.get(self)
        return due is not None and due[1] == "header_timeout" and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.unfinished) >= self.max_unfinished:
            self._refuse(
                503,
                "too_many_connections",
                f"more than {self.max_unfinished} connections are sending requests; retry later",
                retry_after=1,
            )
            return
        self._expect("header_timeout", self.header_timeout)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun()

    def _begun(self) -> None:
        self.heads += 1
        self.head_bytes = 0
        if self not in self.unfinished:  # the next request on a kept-alive connection
            self._expect("header_timeout", self.header_timeout)

    def on_headers_complete(self) -> None:
        self.unfinished.done(self)
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self._expect("body_timeout", self.body_timeout)
            # An answer given before the body is in (413, 401, 415 …) on a connection that
            # ends with it must not reset the connection (see _linger)
            cycle.transport = _LingeringClose(self, cycle)  # type: ignore[assignment]
            cycle.send = _closing_early(cycle)  # type: ignore[method-assign]

    def on_message_complete(self) -> None:
        self.unfinished.done(self)
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.unfinished.done(self)
        super().connection_lost(exc)

    # ------------------------------------------------------------------ guards
    def _expect(self, code: str, seconds: float) -> None:
        """Start the clock: the current part of the request must arrive within ``seconds``."""
        self.unfinished.expect(self, code, seconds)

    def _expired(self, code: str, seconds: float) -> None:
        part = "headers" if code == "header_timeout" else "body"
        self._refuse(
            408, code, f"the request's {part} did not arrive within {seconds:g} s; nothing stored"
        )

    def _refuse(self, status: int, code: str, message: str, retry_after: int = 0) -> None:
        """Answer ``status`` (unless an answer has begun) and close the connection, once
        the client has had a moment to stop sending."""
        self.unfinished.done(self)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            body = jsonutil.dumps({"code": code, "message": message})
            reason = {
                400: b"Bad Request",
                408: b"Request Timeout",
                431: b"Request Header Fields Too Large",
                503: b"Service Unavailable",
            }[status]
            head = [
                b"HTTP/1.1 %d %s\r\n" % (status, reason),
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n",
            ]
            if retry_after:
                head.append(b"retry-after: %d\r\n" % retry_after)
            self.transport.write(b"".join([*head, b"\r\n", body]))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the endpoint reading the body sees the client gone
            cycle.message_event.set()
        self._linger()

    def _linger(self) -> None:
        """Close once the client has had a moment to stop sending.

        The client may still be sending what is refused: a socket closed with bytes unread
        is reset, and a reset loses the answer on the client's side too. So end our side,
        drop what still comes for a moment, then close."""
        self.unfinished.done(self)
        if self.transport.can_write_eof():
            self.refused = True
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
            return
        self.transport.close()


def _closing_early(cycle: Any) -> Any:
    """``cycle.send`` that ends a kept-alive connection when its answer begins before the
    request's body is in: to reach the next request uvicorn would read the rest of the
    body — a refused gigabyte — until the body timeout, the connection held all along. The
    answer says ``connection: close``; once written, the connection lingers and closes."""
    send = cycle.send

    async def send_closing(message: Any) -> None:
        if not cycle.response_started and cycle.more_body:
            cycle.keep_alive = False
        await send(message)

    return send_closing


class _LingeringClose:
    """A request's transport as its response cycle sees it: uvicorn closes the connection
    as soon as the answer is written when the client asked for ``Connection: close``,
    even if the body is still arriving, and the client got a reset instead of its 413.
    Closed before the body is in, it lingers (:meth:`GuardedProtocol._linger`)."""

    def __init__(self, protocol: GuardedProtocol, cycle: Any) -> None:
        self._protocol, self._cycle = protocol, cycle
        self._transport = protocol.transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        if self._cycle.more_body and not self._transport.is_closing():
            self._protocol._linger()
        else:
            self._transport.close()
