"""``advertisex console``: the console and read API on their own port, no collector.

For a lake whose collector runs elsewhere (another machine writing the same landing
zone and catalog, or ``serve`` without the console). uvicorn serves it with the
collector's connection guards and their settings (``collector.header_timeout_seconds``,
``body_timeout_seconds``, ``max_unfinished_requests``, ``max_header_bytes``:
:mod:`advertisex.collector.connections`), as under ``serve``: plain uvicorn held a client
sending its headers a byte at a time forever, and read a refused body for as long as it
came. SIGTERM or Ctrl-C stops it after in-flight requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from advertisex.collector.access import is_loopback
from advertisex.collector.server import announce_when_started, listen, run_until_stopped
from advertisex.config import Settings
from advertisex.console.platform import Platform
from advertisex.errors import UserInputError


def check_binding(settings: Settings, host: str) -> None:
    """Refuse to show the lake beyond loopback without console keys."""
    if not settings.console.keys and not is_loopback(host):
        raise UserInputError(
            f"refusing to serve the console on {host} without console keys",
            hint="create one with `advertisex keygen --name YOU --scope read` and add the "
            "[[console.keys]] entry it prints to advertisex.toml, or bind to 127.0.0.1",
        )


def serve(
    settings: Settings,
    open_platform: Callable[[], Platform],
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Block serving the console on ``console.host:console.port`` until a signal."""
    import uvicorn

    from advertisex.collector.connections import guarded_protocol
    from advertisex.console.app import create_app
    from advertisex.console.query import start_query_forkserver

    config = settings.console
    guards = settings.collector
    check_binding(settings, config.host)
    sock = listen(config.host, config.port)
    # No collector here to start the process's forkserver: started now, its imports run
    # beside the server's start, not on the path of the first query (0.3-0.6 s of it).
    start_query_forkserver()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(open_platform, settings, config.host)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=guarded_protocol(
                guards.header_timeout_seconds,
                guards.body_timeout_seconds,
                guards.max_unfinished_requests,
                max_head_bytes=guards.max_header_bytes,
            ),
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    )
    if on_ready is not None:
        announce_when_started(server, on_ready, sock)
    run_until_stopped(server, sock)
