"""The protocol's own answers to the pixel and the redirect are the ASGI path's, byte for byte.

The requests go through the protocol ``serve`` runs (uvicorn's httptools protocol with
the collector's guards, answering ``/v1/i`` and ``/v1/c`` itself; the proxy-headers
middleware, the console wrapper and the app for the rest) over an in-memory transport,
once as served and once with the protocol answering nothing itself (every request the
ASGI way): the bytes on the wire, the connection's fate and the landed records must be
identical — pipelined requests, a full write buffer, a shutdown and a client gone before
its answer included.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from pathlib import Path

import pytest

from advertisex.collector.tracking.signing import sign_url

SECRET = "wire-secret"
AGENT = b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36\r\n"
PIXEL = b"/v1/i?campaign_id=c-1&ad_creative_id=cr-1&website=news.example&cpm=2.5"
LINK = sign_url(
    "/v1/c", {"campaign_id": "c-1", "ad_creative_id": "cr-1", "to": "https://shop.example/a?b=1"},
    SECRET,
).encode()  # fmt: skip
TAMPERED = LINK.replace(b"cr-1", b"cr-2")


def get(target: bytes, *headers: bytes, method: bytes = b"GET", version: bytes = b"1.1") -> bytes:
    return (
        method + b" " + target + b" HTTP/" + version + b"\r\nHost: collector\r\n" + AGENT
        + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    )  # fmt: skip


def link(to: bytes) -> bytes:
    """A click link to ``to`` (raw, as it goes in the query) with a made-up signature: the
    destination is checked first."""
    return b"/v1/c?campaign_id=c-1&to=" + to + b"&sig=" + b"0" * 43


# (what is sent in one piece, how many answers to wait for, what happens then)
CASES: dict[str, tuple[bytes, int, str]] = {
    "pixel, user id": (get(PIXEL + b"&impression_id=i-1&user_id=u-9"), 1, ""),
    "pixel, cookie": (get(PIXEL + b"&impression_id=i-2", b"Cookie: adx_uid=u-7"), 1, ""),
    "pixel, new visitor": (get(PIXEL + b"&impression_id=i-3"), 1, ""),
    "pixel, reload": (get(PIXEL + b"&impression_id=i-1&user_id=u-9"), 1, ""),
    "pixel, HEAD": (get(PIXEL + b"&impression_id=i-4", method=b"HEAD"), 1, ""),
    "pixel, prefetch": (get(PIXEL + b"&impression_id=i-5", b"Sec-Purpose: prefetch"), 1, ""),
    "pixel, duplicate parameter": (get(b"/v1/i?campaign_id=a&campaign_id=b"), 1, ""),
    "pixel, not UTF-8": (get(b"/v1/i?campaign_id=%ff&impression_id=i-u"), 1, ""),
    "pixel, too long": (get(b"/v1/i?campaign_id=" + b"x" * 9000), 1, ""),
    "pixel, connection close": (get(PIXEL + b"&impression_id=i-6", b"Connection: close"), 1, ""),
    "pixel, HTTP/1.0": (get(PIXEL + b"&impression_id=i-7", version=b"1.0"), 1, ""),
    "pixel, forwarded": (
        get(
            PIXEL + b"&impression_id=i-8",
            b"X-Forwarded-For: 203.0.113.9",
            b"X-Forwarded-Proto: https",
        ),
        1,
        "",
    ),
    "pixel, with a body": (get(PIXEL + b"&impression_id=i-b", b"Content-Length: 2") + b"{}", 1, ""),
    "pixels, pipelined": (
        get(PIXEL + b"&impression_id=i-9") + get(PIXEL + b"&impression_id=i-10&user_id=u-1"),
        2,
        "",
    ),
    "pixels, a reload pipelined": (
        get(PIXEL + b"&impression_id=i-12") + get(PIXEL + b"&impression_id=i-12"),
        2,
        "",
    ),
    "HEAD, pixel, health, click, pipelined": (
        get(PIXEL + b"&impression_id=i-13", method=b"HEAD")
        + get(PIXEL + b"&impression_id=i-14")
        + get(b"/healthz")
        + get(LINK)
        + get(PIXEL + b"&impression_id=i-15", method=b"HEAD"),
        5,
        "",
    ),
    "pixels, the write buffer full": (
        get(PIXEL + b"&impression_id=i-16") + get(PIXEL + b"&impression_id=i-17"),
        2,
        "paused",
    ),
    "pixel, shutdown": (get(PIXEL + b"&impression_id=i-18"), 1, "shutdown"),
    "pixels, the client gone": (
        get(PIXEL + b"&impression_id=i-19") + get(PIXEL + b"&impression_id=i-20"),
        0,
        "gone",
    ),
    "click": (get(LINK, b"Cookie: adx_uid=u-7"), 1, ""),
    "click, new visitor": (get(LINK), 1, ""),
    "click, HEAD": (get(LINK, method=b"HEAD"), 1, ""),
    "click, tampered": (get(TAMPERED), 1, ""),
    "click, unsigned": (get(b"/v1/c?campaign_id=c-1&to=https%3A%2F%2Fshop.example%2F"), 1, ""),
    "click, javascript:": (get(link(b"javascript%3Aalert(1)")), 1, ""),
    "click, data URL": (get(link(b"data%3Atext%2Fhtml%2C%3Cb%3E")), 1, ""),
    "click, header injection": (
        get(link(b"https%3A%2F%2Fshop.example%2F%0D%0ASet-Cookie%3A%20a%3D1")),
        1,
        "",
    ),
    "click, not UTF-8": (get(link(b"https%3A%2F%2Fshop.example%2F%ff")), 1, ""),
    "click, too long": (get(link(b"https%3A%2F%2Fshop.example%2F" + b"x" * 9000)), 1, ""),
    "click, duplicate parameter": (get(LINK + b"&to=https%3A%2F%2Fevil.example%2F"), 1, ""),
    "click, then a pixel, pipelined": (get(LINK) + get(PIXEL + b"&impression_id=i-11"), 2, ""),
    "click, POST": (get(LINK, b"Content-Length: 0", method=b"POST"), 1, ""),
}


def _answers(data: bytes) -> int:
    return data.count(b"HTTP/1.1 ")


async def _serve(data_dir: Path, answering: bool) -> list[tuple[bytes, bool, bytes, int]]:
    """Each case's (bytes written, connection closed, bytes written while the write buffer
    was full, ASGI tasks started for it)."""
    from uvicorn.lifespan.on import LifespanOn

    from advertisex.cli.console import beside_collector
    from advertisex.collector.app import create_app
    from advertisex.collector.inprocess import connect, server_state
    from advertisex.collector.server import uvicorn_config
    from advertisex.config import load_settings

    settings = load_settings(data_dir=data_dir, collector={"tracking": {"click_secret": SECRET}})
    wrap = beside_collector(settings)
    app = create_app(settings)
    tracking = app.state.tracking if answering else None
    config = uvicorn_config(settings, wrap(app) if wrap is not None else app, tracking)
    config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    state = server_state(config)
    started: list[object] = []
    state.tasks = _Spy(started)
    seen = []
    try:
        for raw, answers, then in CASES.values():
            protocol, transport = connect(config, state)
            started.clear()
            if then == "paused":
                protocol.pause_writing()
            protocol.data_received(raw)
            if then == "shutdown":
                protocol.shutdown()
            elif then == "gone":
                protocol.connection_lost(None)
            paused = b""
            if then == "paused":
                await _settle(state)
                paused = bytes(transport.data)
                protocol.resume_writing()
            # Up to 60 s: an answer waits for its landing's fsync, which took over 5 s (the
            # 500 turns here before) on a loaded machine; the case's bytes were then compared
            # unanswered, different from the other run's.
            for _ in range(6000):
                if _answers(bytes(transport.data)) >= answers and not state.tasks:
                    break
                await asyncio.sleep(0.01)
            await _settle(state)
            seen.append((bytes(transport.data), transport.closed, paused, len(started)))
            protocol.connection_lost(None)
    finally:
        await lifespan.shutdown()
    return seen


class _Spy(set):  # type: ignore[type-arg]
    """uvicorn's set of running ASGI tasks, telling ``started`` of each one added."""

    def __init__(self, started: list[object]) -> None:
        super().__init__()
        self.started = started

    def add(self, task: object) -> None:
        self.started.append(task)
        super().add(task)


async def _settle(state: object) -> None:
    """Until what is in flight has landed and answered (writers commit every few ms)."""
    for _ in range(5):
        await asyncio.sleep(0.02)


def _landed(data_dir: Path) -> list[bytes]:
    lines = []
    for path in sorted((data_dir / "landing").rglob("*.ndjson")):
        lines += path.read_bytes().splitlines()
    return sorted(lines)


def _run(
    data_dir: Path, answering: bool
) -> tuple[list[tuple[bytes, bool, bytes, int]], list[bytes]]:
    import uvloop

    seen = uvloop.run(_serve(data_dir, answering))
    return seen, _landed(data_dir)


@pytest.mark.slow  # two real servers, every case through each
def test_the_protocol_answers_and_lands_what_the_asgi_path_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.collector.tracking import redirect, visitor

    monkeypatch.setattr(visitor.Visitors, "now", staticmethod(lambda: "2026-12-02T03:00:00Z"))
    monkeypatch.setattr(visitor, "unique_token", lambda n: "t" * n)
    monkeypatch.setattr(redirect, "new_click_id", lambda campaign, user: f"k-{campaign}-{user}")

    fast, fast_landed = _run(tmp_path / "fast", answering=True)
    slow, slow_landed = _run(tmp_path / "asgi", answering=False)

    for name, (a, b) in zip(CASES, zip(fast, slow, strict=True), strict=True):
        assert a[:3] == b[:3], name
    assert fast_landed == slow_landed
    # what the cases were meant to exercise
    answers = {name: seen[0] for name, seen in zip(CASES, fast, strict=True)}
    tasks = {name: (seen[3], asgi[3]) for name, seen, asgi in zip(CASES, fast, slow, strict=True)}
    for name in CASES:  # the protocol answered the tracking requests itself: no task
        asgi_way = ("body", "health", "POST")
        assert (tasks[name][0] == 0) is not any(w in name for w in asgi_way), (name, tasks[name])
        assert tasks[name][1] > 0 or name.endswith("gone"), name
    assert answers["pixel, new visitor"].count(b"set-cookie: adx_uid=u-tttt") == 1
    assert b"SameSite=None; Secure" in answers["pixel, forwarded"]  # the forwarded scheme
    assert answers["pixel, HEAD"].endswith(b"\r\n\r\n")
    assert fast[list(CASES).index("pixel, connection close")][1]  # closed
    assert b"connection: close\r\n" in answers["pixel, HTTP/1.0"]
    assert b"connection: close\r\n" in answers["pixel, shutdown"]
    assert _answers(answers["pixels, pipelined"]) == 2
    assert _answers(answers["HEAD, pixel, health, click, pipelined"]) == 5
    order = [
        answers["HEAD, pixel, health, click, pipelined"].find(m)
        for m in (b"GIF89a", b'"ok"', b" 302 ")
    ]
    assert order == sorted(order) and -1 not in order
    assert fast[list(CASES).index("pixels, the write buffer full")][2] == b""
    assert answers["pixels, the client gone"] == b""
    assert b"location: https://shop.example/a?b=1&adx_click_id=k-c-1-u-7\r\n" in answers["click"]
    for name in ("tampered", "unsigned", "javascript:", "data URL", "header injection"):
        assert answers[f"click, {name}"].startswith(b"HTTP/1.1 403 "), name
        assert b"location" not in answers[f"click, {name}"], name
    for name in ("not UTF-8", "too long", "duplicate parameter"):
        assert answers[f"click, {name}"].startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 414 ")), name
    pixels = sum(b'"intake":"pixel"' in line for line in fast_landed)
    clicks = sum(b'"intake":"click_redirect"' in line for line in fast_landed)
    broken = [line for line in fast_landed if b"_intake_error" in line]
    # pixels landed: i-1 2 3 6 7 8 b 9 10 12 14 16 17 18 19 11 (a client gone lands the
    # request in flight, not the one queued behind it); clicks: 2 + 1 pipelined + 1
    assert (pixels, clicks, len(broken)) == (16, 4, 3), fast_landed
    assert sum(b'"impression_id":"i-19"' in line for line in fast_landed) == 1
    assert not any(b'"impression_id":"i-20"' in line for line in fast_landed)
    assert {line.split(b":", 2)[1] for line in broken} == {
        b'"query_duplicate_parameter',
        b'"query_invalid_utf8',
        b'"query_too_long',
    }


def test_answers_written_whole_check_headers_as_uvicorn_does() -> None:
    from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

    from advertisex.collector import whole

    assert (whole._NAME.pattern, whole._VALUE.pattern) == (
        HEADER_RE.pattern,
        HEADER_VALUE_RE.pattern,
    )
    with pytest.raises(ValueError):
        whole.header_lines([(b"location", b"https://shop.example/\r\nset-cookie: x=1")])


# The pieces of uvicorn advertisex.collector.tracking.protocol subclasses, calls or stands
# in for, as of the version pyproject.toml pins (digests of their source).
UVICORN_PIECES = {
    "HttpToolsProtocol.__init__": "4f08999410347141",
    "HttpToolsProtocol.connection_lost": "c91a4c9bf2e29c55",
    "HttpToolsProtocol.data_received": "010a7ae59a5d3b1a",
    "HttpToolsProtocol.on_message_begin": "96d377fdc7c2baef",
    "HttpToolsProtocol.on_headers_complete": "1ea8589acfad92d8",
    "HttpToolsProtocol.on_message_complete": "1fbad42dc31fc01f",
    "HttpToolsProtocol._start_asgi_task": "9c08c2571ae9b038",
    "HttpToolsProtocol.on_response_complete": "64e254f28e389e76",
    "HttpToolsProtocol.shutdown": "d7351fa33f00d430",
    "HttpToolsProtocol.resume_writing": "7844bbaa8cceb1ef",
    "RequestResponseCycle.send": "abdd8601b326a8da",
    "FlowControl": "126debcdaa894c83",
    "ProxyHeadersMiddleware.__call__": "b601df964c02a3bb",
    "Config.load": "92b7159dce105a9c",
}


def test_the_uvicorn_pieces_the_protocol_relies_on_are_the_ones_it_was_written_for() -> None:
    """Fails loudly on another uvicorn: the protocol takes over its cycle's work (pipeline,
    flow control, keep-alive, shutdown) for the pixel and the redirect. On a new version,
    read these pieces again, re-run the comparison above and update the digests and
    pyproject.toml's pin."""
    from importlib.metadata import version

    from uvicorn.config import Config
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

    assert version("uvicorn").startswith("0.54."), version("uvicorn")
    where = {
        "HttpToolsProtocol": HttpToolsProtocol,
        "RequestResponseCycle": RequestResponseCycle,
        "FlowControl": FlowControl,
        "ProxyHeadersMiddleware": ProxyHeadersMiddleware,
        "Config": Config,
    }
    changed = []
    for name, digest in UVICORN_PIECES.items():
        owner, _, attribute = name.partition(".")
        piece = getattr(where[owner], attribute) if attribute else where[owner]
        if hashlib.sha256(inspect.getsource(piece).encode()).hexdigest()[:16] != digest:
            changed.append(name)
    assert not changed, f"uvicorn changed what the tracking protocol relies on: {changed}"
