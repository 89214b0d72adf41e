"""Fixtures for monitor tests: real receivers on 127.0.0.1, a clean simulated week."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from receivers import HttpReceiver, smtp_server


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp() -> Iterator[Any]:
    with smtp_server() as server:
        yield server
