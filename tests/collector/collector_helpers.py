"""Helpers for collector tests: real ``advertisex serve`` / ``up`` processes on free ports.

A :class:`ServerProcess` runs the CLI exactly as a user would (``python -m
advertisex.cli.app serve``) against a temporary data directory, waits for ``/readyz``
and stops it with a real signal, so the tests cover start-up, recovery and shutdown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from advertisex.collector.app import create_app
from advertisex.collector.service import Collector
from advertisex.config import load_settings
from advertisex.util import jsonutil
from tests.ports import free_port

# Requests to a test's server wait as long as a loaded machine needs (httpx's default of
# 5 s was once too short for a collector's first upload at a load of 15).
PATIENT_SECONDS = 60.0


def post(url: str, **options: Any) -> httpx.Response:
    return httpx.post(url, timeout=PATIENT_SECONDS, **options)


def get(url: str, **options: Any) -> httpx.Response:
    return httpx.get(url, timeout=PATIENT_SECONDS, **options)


class ServerProcess:
    """One collector (or ``up``) subprocess on 127.0.0.1."""

    def __init__(
        self, data_dir: Path, *, verb: str = "serve", port: int | None = None, **env: str
    ) -> None:
        self.data_dir = data_dir
        self.verb = verb
        self.port = port or free_port()
        self._picked = port is None  # a port of our choosing: another may be tried
        # An empty config file: nothing from the working directory's advertisex.toml.
        config = data_dir.parent / "empty-advertisex.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.touch()
        self.env = {
            **os.environ,
            "ADVERTISEX_DATA_DIR": str(data_dir),
            "ADVERTISEX_CONFIG": str(config),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "ADVERTISEX_COLLECTOR__WORKERS": "1",  # one process unless a test asks for more
            **env,
        }
        self.log_path = data_dir.parent / f"{verb}-{self.port}-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "advertisex.cli.app",
                        self.verb,
                        "--port",
                        str(self.port),
                    ],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if not wait:
                return self
            try:
                self.wait_ready()
                return self
            except AssertionError:
                # Another test's server took the port between its pick and the bind.
                if not self._picked or attempt == 2 or "already in use" not in self.log():
                    raise
                self.port = free_port()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.verb} exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                if (
                    httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
                    and self._announced()
                ):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.verb} not ready after {timeout} s:\n{self.log()}")

    def _announced(self) -> bool:
        """``serve`` says it listens once every worker is ready: one worker answering
        /readyz is not all of them, and a test that killed a worker the supervisor still
        waited for (a busy machine starts them seconds apart) stopped the whole server."""
        return self.verb != "serve" or "collector listening on" in self.log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def impressions(n: int, prefix: str, **fields: Any) -> list[dict[str, Any]]:
    """``n`` valid impressions with ids ``<prefix>-<i>``, stamped now."""
    now = datetime.now(UTC).isoformat()
    return [
        {
            "impression_id": f"{prefix}-{i}",
            "timestamp": now,
            "ad_creative_id": f"cr-{i % 7}",
            "campaign_id": f"cmp-{i % 3}",
            "user_id": f"user-{i % 11}",
            "website": "news.example.com",
            **fields,
        }
        for i in range(n)
    ]


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return b"".join(jsonutil.dumps(r) + b"\n" for r in records)


class InProcess:
    """The app on its own event loop, driven synchronously (hypothesis tests are sync)."""

    def __init__(self, data_dir: Path, **collector: Any) -> None:
        self.settings = load_settings(data_dir=data_dir, collector=collector)
        self.collector = Collector(self.settings)
        self.loop = asyncio.new_event_loop()
        self.collector.start()
        transport = httpx.ASGITransport(app=create_app(self.settings, self.collector))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://collector")

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post(path, content=body, headers=headers))

    def request(self, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, headers=headers))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.collector.stop()
        self.loop.close()
