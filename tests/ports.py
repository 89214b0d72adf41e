"""Ports for the servers tests start on 127.0.0.1 (and for addresses nothing answers on).

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` comes from its ephemeral range
(32768-60999 here), the range the tests' own client connections take their local ports
from: between the probe closing and the server binding, a connection elsewhere in the
suite could take it ("Address already in use"; it stopped a CI run). These come from
below that range, checked free when picked.
"""

from __future__ import annotations

import random
import socket

SERVER_PORTS = range(20_000, 32_000)


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on now, below the ephemeral range. Another
    test's server may still take it first: a server helper that picked it tries another."""
    for _ in range(200):
        port = random.choice(SERVER_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(
        f"no free port on 127.0.0.1 between {SERVER_PORTS.start} and {SERVER_PORTS.stop}"
    )
