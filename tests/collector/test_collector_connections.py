"""Bounded connections: a request must arrive in time, and slow clients are capped."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The four connections below must all be open before the first times out: 3 s, not 1 s, so
# a loaded machine that stalls this test for a second still has them unfinished together.
LIMITS = {
    "ADVERTISEX_COLLECTOR__HEADER_TIMEOUT_SECONDS": "3",
    "ADVERTISEX_COLLECTOR__BODY_TIMEOUT_SECONDS": "3",
    "ADVERTISEX_COLLECTOR__MAX_UNFINISHED_REQUESTS": "3",
}


def _connect(server: Any, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    if first:
        sock.sendall(first)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read until the server closes: (status, JSON body)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_slow_headers_slow_bodies_and_too_many_of_them_are_cut_off(server_factory: Any) -> None:
    server = server_factory(**LIMITS)
    slow_headers = _connect(server, b"POST /v1/impressions HTTP/1.1\r\nHost: x\r\n")
    slow_body = _connect(
        server,
        b"POST /v1/impressions HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-ndjson\r\n"
        b'content-length: 200\r\n\r\n{"user_id":',
    )
    idle = _connect(server, b"")  # opened, nothing sent yet
    refused = _connect(server, b"")  # one more than max_unfinished_requests
    assert _answer(refused) == (
        503,
        {
            "code": "too_many_connections",
            "message": "more than 3 connections are sending requests; retry later",
        },
    )
    assert _answer(slow_headers)[1]["code"] == "header_timeout"
    status, body = _answer(slow_body)
    assert (status, body["code"]) == (408, "body_timeout")
    assert _answer(idle)[1]["code"] == "header_timeout"
    # The slow ones are gone: an ordinary client is served, nothing partial was stored.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        ok = client.post(
            "/v1/impressions",
            content=b'{"user_id":"u"}\n',
            headers={"content-type": "application/x-ndjson"},
        )
        assert ok.status_code == 200
    server.stop()
    landed = [p.read_bytes() for p in server.data_dir.glob("landing/impressions/**/*.ndjson")]
    assert landed == [b'{"user_id":"u"}\n']
