"""The console on real servers: beside the collector (``serve``) and alone (``console``)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.collector.collector_helpers import ServerProcess, free_port, impressions, ndjson

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_serve_puts_the_console_beside_the_collector(lake_copy: Callable[[], Path]) -> None:
    server = ServerProcess(lake_copy(), verb="serve").start()
    http = httpx.Client(base_url=server.url, timeout=60)  # patient on a loaded machine
    try:
        page = http.get("/")
        assert page.status_code == 200 and "Overview" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        spec = http.get("/openapi.json").json()
        assert {"/v1/impressions", "/api/v1/query", "/api/v1/status", "/campaigns"} <= set(
            spec["paths"]
        )
        assert set(spec["paths"]["/"]) == {"get", "post"}  # console page and Firehose API
        sent = http.post(
            "/v1/impressions",
            content=ndjson(impressions(2, "beside-console")),
            headers={"content-type": "application/x-ndjson"},
        )
        assert sent.status_code == 200 and sent.json()["accepted"] == 2
        wrong = http.get("/v1/impressions")
        assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")
        status = http.get("/api/v1/status").json()
        assert [s["source"] for s in status["sources"]] == ["impressions", "clicks", "bids"]
        assert server.stop(signal.SIGINT) == 0  # Ctrl-C, as it says: a stop, not an interrupt
        assert "interrupted" not in server.log()
    finally:
        if server.process and server.process.poll() is None:
            server.process.kill()
        http.close()


def test_console_alone_refuses_a_public_bind_without_keys(lake_template: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "advertisex.cli.app",
            "console",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        env={"ADVERTISEX_DATA_DIR": str(lake_template), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 2
    assert "without console keys" in result.stderr and "Traceback" not in result.stderr


def test_console_alone_needs_a_lake(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", "console", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env={"ADVERTISEX_DATA_DIR": str(tmp_path / "nothing"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 2 and "there is no lake at" in result.stderr
    assert not (tmp_path / "nothing").exists()


def test_keygen_prints_a_console_key_entry(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", "keygen", "--name", "ana", "--scope", "admin"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    from advertisex.collector.access import hash_key

    assert "[[console.keys]]" in result.stderr and 'scope = "admin"' in result.stderr
    assert hash_key(key) in result.stderr


def test_console_on_port_0_says_the_port_it_took_and_ctrl_c_stops_it(lake_template: Path) -> None:
    console = subprocess.Popen(
        [sys.executable, "-m", "advertisex.cli.app", "console", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={"ADVERTISEX_DATA_DIR": str(lake_template), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    try:
        assert console.stderr is not None
        said = console.stderr.readline()
        url = re.search(r"console on (http://127\.0\.0\.1:(\d+))/", said)
        assert url and url.group(2) != "0", said
        # Its forkserver runs before the first query, which no longer waits for its imports.
        assert any(b"forkserver" in command for command in _children(console.pid)), said
        assert httpx.get(url.group(1) + "/openapi.json", timeout=60).status_code == 200
        console.send_signal(signal.SIGINT)
        assert console.wait(60) == 0
        assert "interrupted" not in console.stderr.read()
    finally:
        if console.poll() is None:
            console.kill()
            console.wait()
        console.stderr.close()


def _children(pid: int) -> list[bytes]:
    """The command lines of ``pid``'s child processes (Linux's /proc)."""
    commands = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_bytes().rsplit(b")", 1)[1].split()[1]) == pid:
                commands.append((stat.parent / "cmdline").read_bytes())
        except (OSError, ValueError, IndexError):  # a process that ended meanwhile
            continue
    return commands


@pytest.mark.slow
def test_console_alone_bounds_its_connections(lake_copy: Callable[[], Path]) -> None:
    """``advertisex console`` ran plain uvicorn: a client sending its headers a byte at a
    time held a connection forever, and one refused 413 at 256 KiB of a query's body was
    read for as long as it kept sending. It has the collector's connection guards."""
    import json
    import socket
    import time

    server = ServerProcess(
        lake_copy(),
        verb="console",
        ADVERTISEX_COLLECTOR__HEADER_TIMEOUT_SECONDS="2",
        ADVERTISEX_COLLECTOR__BODY_TIMEOUT_SECONDS="60",
    ).start(wait=False)

    def answer(sock: socket.socket) -> tuple[bytes, dict[str, str]]:
        data = b""
        while chunk := sock.recv(65536):  # a timeout here: the server still holds it
            data += chunk
        sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return head, json.loads(body)

    try:
        deadline = time.monotonic() + 60  # the console has no /readyz
        while "console on http" not in server.log():
            assert time.monotonic() < deadline and server.process.poll() is None, server.log()  # type: ignore[union-attr]
            time.sleep(0.1)
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        host = b"Host: 127.0.0.1:%d\r\n" % server.port  # another is refused (421)
        slow.sendall(b"GET /api/v1/status HTTP/1.1\r\n" + host)
        started = time.monotonic()
        head, body = answer(slow)
        assert body["code"] == "header_timeout" and time.monotonic() - started < 15, head

        big = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        big.sendall(
            b"POST /api/v1/query HTTP/1.1\r\n"
            + host
            + b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % (1 << 30)
        )
        for _ in range(32):  # 2 MiB of the gigabyte announced, then no more
            big.sendall(b" " * 65536)
        head, body = answer(big)
        assert head.split()[1] == b"413" and body["code"] == "body_too_large", head
        assert b"\r\nconnection: close" in head.lower(), head
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [
                {"a": 1}
            ]
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)
