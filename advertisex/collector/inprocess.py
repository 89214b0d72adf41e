"""Serve's own HTTP protocol driven in process, over in-memory connections.

For tests and ``bench/wire_cpu.py``: the bytes a client would send go straight to the
protocol ``advertisex serve`` runs (uvicorn's, as
:func:`~advertisex.collector.server.uvicorn_config` sets it up, with the collector's
guards, the proxy-headers middleware and the app), and what it writes back is kept — no
socket, no kernel in between, so what is measured or compared is the collector's alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

OnWrite = Callable[["MemoryTransport"], None]


class MemoryTransport(asyncio.Transport):
    """A connected socket's stand-in: keeps what the server writes (``data``, ``writes``),
    and calls ``on_write`` after each write. As a socket's transport, it drops what is
    written once it is closed."""

    def __init__(self, on_write: OnWrite | None = None) -> None:
        super().__init__()
        self.data = bytearray()
        self.writes = 0
        self.closed = False
        self._on_write = on_write

    def write(self, data: Any) -> None:
        if self.closed:
            return
        self.writes += 1
        self.data += data
        if self._on_write is not None:
            self._on_write(self)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50123)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def server_state(config: Any, date: bytes = b"Wed, 02 Dec 2026 03:00:00 GMT") -> Any:
    """uvicorn's shared server state, with a fixed ``date`` header (a real server's changes
    every second)."""
    from uvicorn.server import ServerState

    state = ServerState()
    state.default_headers = [(b"date", date), *config.encoded_headers]
    return state


def connect(
    config: Any, state: Any, on_write: OnWrite | None = None
) -> tuple[Any, MemoryTransport]:
    """A new connection to the loaded ``uvicorn.Config``'s protocol: (protocol, transport);
    feed requests with ``protocol.data_received(raw)``."""
    protocol = config.http_protocol_class(
        config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = MemoryTransport(on_write)
    protocol.connection_made(transport)
    return protocol, transport
