"""The pixel and the redirect answered by the HTTP protocol itself: no ASGI, no task.

A pixel's own work is a few tens of microseconds; around it uvicorn spent as much again
on every request: an ASGI scope, a ``RequestResponseCycle`` with its ``asyncio.Event``,
a task running a chain of coroutines, and two ``send`` messages checked header by
header. Here ``GET``/``HEAD`` of ``/v1/i`` and ``/v1/c`` are recognised where uvicorn's
httptools protocol has parsed the request's headers (uvicorn makes its ASGI scope at a
request's first byte; here only once the headers say it goes the ASGI way); the
endpoint's own coroutine (:func:`advertisex.collector.tracking.respond`, the very one
the ASGI path awaits) is
stepped by the protocol — it awaits only its record's group commit, whose future
resumes it — and the answer is written to the transport in one piece once the record is
durable. Every other request, and a tracking request that carries a body, an
``Expect`` or an ``Upgrade``, goes the ASGI way.

What uvicorn's cycle did for these requests, this does the same way:

- pipelining: answers go in request order — a request parsed while an earlier answer is
  outstanding waits in uvicorn's own pipeline (reading paused) and starts when that
  answer is complete, whichever path either takes;
- flow control: an answer finished while the transport's buffer is over its high-water
  mark is held until the transport drains (uvicorn's ``send`` awaited the drain), so
  a client that does not read its answers stops being read;
- ``Connection: close``, HTTP/1.0 and a graceful shutdown's ``keep_alive = False``:
  the answer says ``connection: close`` and the connection is closed after it;
- a client gone before its answer: the record still lands (as the ASGI endpoint's
  task would land it), nothing is written;
- the proxy headers: uvicorn's own middleware is run on the request's client and
  scheme when it carries ``X-Forwarded-For``/``-Proto``.

This reaches into uvicorn's protocol (its parser callbacks, ``cycle``, ``pipeline``,
``flow``, ``on_response_complete``): pyproject.toml pins uvicorn's minor version and
tests/collector/test_tracking_wire.py fails loudly when any of those pieces changes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Coroutine
from typing import Any

import httptools
from starlette.responses import Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from advertisex.collector.connections import GuardedProtocol
from advertisex.collector.tracking import FastPath, fast_paths, respond
from advertisex.collector.tracking.service import Tracking
from advertisex.collector.tracking.visitor import Hit
from advertisex.collector.whole import header_lines

log = logging.getLogger("advertisex.collector")

# Request headers the fast path looks at before taking a request (all else is the
# endpoint's business): a body or an expectation sends it the ASGI way, a forwarded
# client or scheme goes through uvicorn's proxy-headers middleware.
_BODY = frozenset({b"content-length", b"transfer-encoding", b"expect"})
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto"})
_LOOKED_AT = _BODY | _FORWARDED


def answering_protocol(tracking: Tracking) -> type[AnsweringProtocol]:
    """:class:`AnsweringProtocol` answering for ``tracking`` (a base for
    :func:`~advertisex.collector.connections.guarded_protocol`)."""

    class Answering(AnsweringProtocol):
        pass

    Answering.tracking = tracking
    Answering.paths = {path.encode(): (path, fast) for path, fast in fast_paths().items()}
    return Answering


class _Unused:
    """``message_event`` of an answered request: uvicorn sets it; nothing waits on it."""

    def set(self) -> None:
        pass


class Answered:
    """A tracking request the protocol answers itself, in the place of uvicorn's cycle:
    the attributes uvicorn's protocol reads of its current cycle, and the stepping of
    the endpoint's coroutine."""

    __slots__ = (
        "_coro",
        "disconnected",
        "fast",
        "held",
        "hit",
        "keep_alive",
        "path",
        "protocol",
        "response_complete",
        "response_started",
    )  # fmt: skip
    more_body = False
    message_event = _Unused()

    def __init__(
        self, protocol: AnsweringProtocol, path: str, hit: Hit, fast: FastPath, keep_alive: bool
    ) -> None:
        self.protocol, self.path, self.hit, self.fast = protocol, path, hit, fast
        self.keep_alive = keep_alive
        self.response_started = self.response_complete = self.disconnected = False
        self.held: bytes | None = None  # the answer, while the transport's buffer is full
        self._coro: Coroutine[Any, Any, Response] | None = None

    def start(self) -> None:
        self._coro = respond(self.protocol.tracking, self.path, self.hit, self.fast)
        self.step()

    def step(self, _: object = None) -> None:
        """Run the endpoint until it awaits (its record's commit) or answers."""
        assert self._coro is not None
        try:
            awaited = self._coro.send(None)
        except StopIteration as done:
            self._coro = None
            self.finish(done.value)
        except BaseException:  # respond() answers every Exception; this is a bug or an exit
            self._coro = None
            log.exception("unexpected error on %s %s", self.hit.method, self.path)
            self.protocol.transport.close()
            raise
        else:
            if awaited is None:  # a bare yield (asyncio.sleep(0)): go on at the next turn
                self.protocol.loop.call_soon(self.step)
            else:
                awaited.add_done_callback(self.step)

    def finish(self, response: Response) -> None:
        protocol = self.protocol
        if self.disconnected or protocol.transport.is_closing():
            return  # as uvicorn's send: nothing written, the answer never completes
        try:
            data = protocol.encode(response, self)
        except ValueError:  # a header uvicorn would refuse: it closes the connection too
            log.exception("invalid answer on %s %s", self.hit.method, self.path)
            protocol.transport.close()
            return
        if protocol.flow.write_paused:
            self.held = data  # written when the transport drains (resume_writing)
            protocol.holding = self
        else:
            self.write(data)

    def write(self, data: bytes) -> None:
        self.held = None
        self.response_started = self.response_complete = True
        protocol = self.protocol
        protocol.transport.write(data)
        if not self.keep_alive:
            protocol.transport.close()
        protocol.on_response_complete()


class AnsweringProtocol(GuardedProtocol):
    """uvicorn's httptools protocol (with the collector's guards) that answers ``GET`` and
    ``HEAD`` of the pixel and the redirect itself."""

    tracking: Tracking
    paths: dict[bytes, tuple[str, FastPath]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holding: Answered | None = None  # an answer waiting for the transport to drain
        taken, self.forwarding = _stack(self.config)
        # what would change these requests on the ASGI way: another app wrapper (a trace
        # logger), an access log, a root path, a concurrency limit
        self.answers = (
            taken and not self.access_log and not self.root_path and self.limit_concurrency is None
        )

    def on_message_begin(self) -> None:
        # uvicorn's per-request state but its ASGI scope, made only for a request that
        # goes the ASGI way (on_headers_complete)
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._begun()

    def on_headers_complete(self) -> None:
        if self.answers and not self.parser.should_upgrade():
            method = self.parser.get_method()
            if method == b"GET" or method == b"HEAD":
                parsed = httptools.parse_url(self.url)
                found = self.paths.get(parsed.path)
                if found is not None and self._take(found, method, parsed.query or b""):
                    return
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        HttpToolsProtocol.on_message_begin(self)  # the scope, as uvicorn makes it
        self.url, self.expect_100_continue = url, expect
        self.headers = self.scope["headers"] = headers
        super().on_headers_complete()

    def _take(self, found: tuple[str, FastPath], method: bytes, query: bytes) -> bool:
        """Answer this request here, unless it has a body or an expectation (False)."""
        forwarded = False
        for name, value in self.headers:
            if name in _LOOKED_AT:
                if name in _FORWARDED:
                    forwarded = True
                elif name != b"content-length" or value.strip() != b"0":
                    return False
        client: tuple[str, int] | None = self.client
        scheme: str = self.scheme or "http"
        if forwarded and self.forwarding is not None:
            client, scheme = _forwarded(self.forwarding, self.headers, client, scheme)
        self.unfinished.done(self)
        self._unset_keepalive_if_required()
        path, fast = found
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        hit = Hit(method.decode(), query, self.headers, client, scheme)
        answered = Answered(self, path, hit, fast, keep_alive)
        earlier, self.cycle = self.cycle, answered  # type: ignore[assignment]
        if earlier is None or earlier.response_complete:
            answered.start()
        else:  # pipelined: after the answers before it, as uvicorn queues its own
            self.flow.pause_reading()
            self.pipeline.appendleft((answered, None))  # type: ignore[arg-type]
        return True

    def on_message_complete(self) -> None:
        if type(self.cycle) is Answered:
            self.unfinished.done(self)
            return
        super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if type(cycle) is Answered:  # its turn in the pipeline (at the next turn: no recursion
            self.loop.call_soon(cycle.start)  # through on_response_complete)
        else:
            super()._start_asgi_task(cycle, app)

    def resume_writing(self) -> None:
        super().resume_writing()
        held, self.holding = self.holding, None
        if held is not None and held.held is not None:
            if held.disconnected or self.transport.is_closing():
                held.held = None
            else:
                held.write(held.held)

    def encode(self, response: Response, answered: Answered) -> bytes:
        """``response`` as uvicorn's ``send`` writes it (all its bytes, one piece).
        ValueError for a header uvicorn would refuse.

        The plain GIF (no cookie) is the same bytes from answer to answer until uvicorn
        changes its default headers (the date, once a second): kept per server state."""
        head = getattr(response, "head", None)  # the GIF's and the 302's, checked once
        if head is None:
            head = header_lines(response.raw_headers)
        keep_alive, with_body = answered.keep_alive, answered.hit.method != "HEAD"
        defaults = self.server_state.default_headers
        key = (response.status_code, head, keep_alive, with_body)
        if getattr(response, "fixed", False):
            cached = _ANSWERS.get(key)
            if cached is not None and cached[0] is defaults:
                return cached[1]
        parts: list[bytes | memoryview] = [STATUS_LINE[response.status_code]]
        for name, value in defaults:
            parts += (name, b": ", value, b"\r\n")
        parts.append(head)
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if with_body:
            parts.append(response.body)
        data = b"".join(parts)
        if getattr(response, "fixed", False):
            _ANSWERS[key] = (defaults, data)
        return data


# The fixed answers' bytes by (status, head, keep-alive, body), each with the default
# headers (uvicorn's list, replaced each second) it was made with.
_ANSWERS: dict[tuple[int, bytes, bool, bool], tuple[object, bytes]] = {}


@functools.lru_cache(maxsize=16)
def _stack(config: Any) -> tuple[bool, ProxyHeadersMiddleware | None]:
    """(whether uvicorn hands requests straight to the app or through its proxy-headers
    middleware only, that middleware's stand-in for the fast path or None)."""
    loaded = config.loaded_app
    if loaded is config.app:
        return True, None
    if type(loaded) is ProxyHeadersMiddleware and loaded.app is config.app:
        stand_in = ProxyHeadersMiddleware(_keep_scope)
        stand_in.trusted_hosts = loaded.trusted_hosts
        return True, stand_in
    return False, None


async def _keep_scope(scope: Any, receive: Any, send: Any) -> None:
    return None


def _forwarded(
    proxy: ProxyHeadersMiddleware,
    headers: list[tuple[bytes, bytes]],
    client: tuple[str, int] | None,
    scheme: str,
) -> tuple[tuple[str, int] | None, str]:
    """(client, scheme) as uvicorn's proxy-headers middleware makes them of ``headers``."""
    scope: dict[str, Any] = {"type": "http", "client": client, "scheme": scheme, "headers": headers}
    step = proxy(scope, None, None)  # type: ignore[arg-type]
    try:
        step.send(None)
    except StopIteration:
        pass
    return scope["client"], scope["scheme"]
