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
    # One more than max_unfinished_requests, its request sent at once: the refusal must
    # not reset the connection, which loses the answer (a socket closed with bytes unread
    # is reset).
    refused = _connect(server, b"POST /v1/impressions HTTP/1.1\r\nHost: x\r\n")
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


@pytest.mark.parametrize(
    "start",
    [b"GET /healthz?q=", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: "],
    ids=["url", "header"],
)
def test_an_endless_request_head_is_cut_off_at_its_limit(server_factory: Any, start: bytes) -> None:
    # httptools kept a head whole however long (400 MB of headers held 400 MB) and grew a
    # long URL or header value by a copy per read: a 300 MB URL stalled every request for
    # seconds. The client gets the answer, not a reset, though it is still sending.
    server = server_factory()
    sock = _connect(server, start)
    for _ in range(128):  # 8 MiB, far past the 64 KiB limit
        sock.sendall(b"a" * 65536)
    status, body = _answer(sock)
    assert (status, body["code"]) == (431, "headers_too_large"), body
    assert "65536 bytes" in body["message"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/healthz", headers={"x-fine": "a" * 8000}).status_code == 200


def test_a_request_httptools_cannot_parse_is_a_json_error(server_factory: Any) -> None:
    server = server_factory()
    for request in [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: \x01\r\n\r\n",  # a control character
        b"POST /v1/impressions HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        b"BREW /v1/impressions HTTP/1.1\r\n\r\n",
    ]:
        status, body = _answer(_connect(server, request))  # was text: "Invalid HTTP request …"
        assert (status, body["code"]) == (400, "http_invalid"), body
        assert body["message"].startswith("the request is not valid HTTP/1.1 (")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_over_limit_body_on_a_closing_connection_gets_its_413(
    server_factory: Any, chunked: bool
) -> None:
    # The endpoint answers 413 as soon as the body is known to be too large; with
    # ``Connection: close`` uvicorn closed the socket at once, the body's rest unread, and
    # the client still sending got a reset instead of the answer.
    server = server_factory(ADVERTISEX_COLLECTOR__MAX_BODY_BYTES=str(1 << 20))
    framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % (6 << 20)
    sock = _connect(
        server,
        b"POST /v1/impressions HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-ndjson\r\n"
        b"connection: close\r\n" + framing + b"\r\n\r\n",
    )
    lines = b'{"user_id":"u"}\n' * 4096
    for _ in range((6 << 20) // len(lines)):
        sock.sendall(b"%x\r\n%b\r\n" % (len(lines), lines) if chunked else lines)
    if chunked:
        sock.sendall(b"0\r\n\r\n")
    status, body = _answer(sock)
    assert (status, body["code"]) == (413, "body_too_large"), body
    assert "more than the limit of 1048576" in body["message"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_over_limit_body_on_a_kept_alive_connection_is_answered_and_closed(
    server_factory: Any, chunked: bool
) -> None:
    # Answered 413 on a kept-alive connection, the server went on reading the rest of the
    # body (a gigabyte, if the client sent one) to reach the next request, holding the
    # connection until the body timeout. The 413 says ``connection: close`` and the server
    # ends the connection without waiting for the rest.
    server = server_factory(
        ADVERTISEX_COLLECTOR__MAX_BODY_BYTES=str(1 << 20),
        ADVERTISEX_COLLECTOR__BODY_TIMEOUT_SECONDS="60",
    )
    framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % (1 << 30)
    sock = _connect(
        server,
        b"POST /v1/impressions HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-ndjson\r\n"
        + framing
        + b"\r\n\r\n",
    )
    sock.settimeout(10)
    lines = b'{"user_id":"u"}\n' * 4096
    for _ in range((2 << 20) // len(lines)):  # 2 MiB of the gigabyte announced, then no more
        sock.sendall(b"%x\r\n%b\r\n" % (len(lines), lines) if chunked else lines)
    data = b""
    while chunk := sock.recv(65536):  # a timeout here: the server waits for the rest
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"413", data[:300]
    assert b"\r\nconnection: close" in head.lower(), head
    assert json.loads(body)["code"] == "body_too_large"
