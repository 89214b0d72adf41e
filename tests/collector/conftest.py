"""Fixtures for collector tests; the helpers live in ``collector_helpers``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import ServerProcess


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start servers with ``server_factory(**env)``; all are killed at the end of the test."""
    started: list[ServerProcess] = []

    def make(
        data_dir: Path | None = None, verb: str = "serve", start: bool = True, **env: str
    ) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", verb=verb, **env)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)
