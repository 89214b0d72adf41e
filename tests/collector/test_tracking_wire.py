"""The pixel's and the redirect's fast paths answer and land exactly what the ASGI path does.

The requests go through the protocol ``serve`` runs (uvicorn's httptools protocol with
the collector's guards, the proxy-headers middleware, the console wrapper, the app and
its writers) over an in-memory transport, once as served and once with every fast path
turned off: the bytes on the wire, the connection's fate and the landed records must be
identical.
"""

from __future__ import annotations

import asyncio
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


# (what is sent in one piece, how many answers to wait for)
CASES = {
    "pixel, user id": (get(PIXEL + b"&impression_id=i-1&user_id=u-9"), 1),
    "pixel, cookie": (get(PIXEL + b"&impression_id=i-2", b"Cookie: adx_uid=u-7"), 1),
    "pixel, new visitor": (get(PIXEL + b"&impression_id=i-3"), 1),
    "pixel, reload": (get(PIXEL + b"&impression_id=i-1&user_id=u-9"), 1),
    "pixel, HEAD": (get(PIXEL + b"&impression_id=i-4", method=b"HEAD"), 1),
    "pixel, prefetch": (get(PIXEL + b"&impression_id=i-5", b"Sec-Purpose: prefetch"), 1),
    "pixel, broken": (get(b"/v1/i?campaign_id=a&campaign_id=b"), 1),
    "pixel, connection close": (get(PIXEL + b"&impression_id=i-6", b"Connection: close"), 1),
    "pixel, HTTP/1.0": (get(PIXEL + b"&impression_id=i-7", version=b"1.0"), 1),
    "pixel, forwarded": (get(PIXEL + b"&impression_id=i-8", b"X-Forwarded-For: 203.0.113.9"), 1),
    "pixels, pipelined": (
        get(PIXEL + b"&impression_id=i-9") + get(PIXEL + b"&impression_id=i-10&user_id=u-1"),
        2,
    ),
    "click": (get(LINK, b"Cookie: adx_uid=u-7"), 1),
    "click, new visitor": (get(LINK), 1),
    "click, HEAD": (get(LINK, method=b"HEAD"), 1),
    "click, tampered": (get(TAMPERED), 1),
    "click, then a pixel, pipelined": (get(LINK) + get(PIXEL + b"&impression_id=i-11"), 2),
}


def _answers(data: bytes) -> int:
    return data.count(b"HTTP/1.1 ")


async def _serve(data_dir: Path) -> list[tuple[bytes, bool]]:
    from uvicorn.lifespan.on import LifespanOn

    from advertisex.cli.console import beside_collector
    from advertisex.collector.app import create_app
    from advertisex.collector.inprocess import connect, server_state
    from advertisex.collector.server import uvicorn_config
    from advertisex.config import load_settings

    settings = load_settings(data_dir=data_dir, collector={"tracking": {"click_secret": SECRET}})
    wrap = beside_collector(settings)
    app = create_app(settings)
    config = uvicorn_config(settings, wrap(app) if wrap is not None else app)
    config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    state = server_state(config)
    seen = []
    try:
        for raw, answers in CASES.values():
            protocol, transport = connect(config, state)
            protocol.data_received(raw)
            for _ in range(500):
                if _answers(bytes(transport.data)) >= answers and not state.tasks:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.01)
            seen.append((bytes(transport.data), transport.closed))
            protocol.connection_lost(None)
    finally:
        await lifespan.shutdown()
    return seen


def _landed(data_dir: Path) -> list[bytes]:
    lines = []
    for path in sorted((data_dir / "landing").rglob("*.ndjson")):
        lines += path.read_bytes().splitlines()
    return sorted(lines)


def _run(data_dir: Path) -> tuple[list[tuple[bytes, bool]], list[bytes]]:
    import uvloop

    seen = uvloop.run(_serve(data_dir))
    return seen, _landed(data_dir)


def test_the_fast_paths_answer_and_land_what_the_asgi_path_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.collector import tracking
    from advertisex.collector.tracking import redirect, visitor

    monkeypatch.setattr(visitor.Visitors, "now", staticmethod(lambda: "2026-12-02T03:00:00Z"))
    monkeypatch.setattr(visitor, "unique_token", lambda n: "t" * n)
    monkeypatch.setattr(redirect, "new_click_id", lambda campaign, user: f"k-{campaign}-{user}")

    fast, fast_landed = _run(tmp_path / "fast")
    monkeypatch.setattr(tracking, "answer_whole", lambda *args: False)
    slow, slow_landed = _run(tmp_path / "asgi")

    for name, (a, b) in zip(CASES, zip(fast, slow, strict=True), strict=True):
        assert a == b, name
    assert fast_landed == slow_landed
    # what the cases were meant to exercise
    answers = dict(zip(CASES, fast, strict=True))
    assert answers["pixel, new visitor"][0].count(b"set-cookie: adx_uid=u-tttt") == 1
    assert answers["pixel, HEAD"][0].endswith(b"\r\n\r\n")
    assert answers["pixel, connection close"] == (answers["pixel, connection close"][0], True)
    assert b"connection: close\r\n" in answers["pixel, HTTP/1.0"][0]
    assert _answers(answers["pixels, pipelined"][0]) == 2
    assert b"location: https://shop.example/a?b=1&adx_click_id=k-c-1-u-7\r\n" in answers["click"][0]
    assert answers["click, tampered"][0].startswith(b"HTTP/1.1 403 ")
    assert b"location" not in answers["click, tampered"][0]
    assert len(fast_landed) == 9 + 1 + 3, fast_landed  # pixels, the broken one, clicks
    assert sum(b'"intake":"pixel"' in line for line in fast_landed) == 9
    assert sum(b'"intake":"click_redirect"' in line for line in fast_landed) == 3
    assert sum(b"_intake_error" in line for line in fast_landed) == 1


def test_answers_written_whole_check_headers_as_uvicorn_does() -> None:
    from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

    from advertisex.collector import whole

    assert (whole._NAME.pattern, whole._VALUE.pattern) == (
        HEADER_RE.pattern,
        HEADER_VALUE_RE.pattern,
    )
    with pytest.raises(ValueError):
        whole.header_lines([(b"location", b"https://shop.example/\r\nset-cookie: x=1")])
