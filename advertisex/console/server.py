"""``advertisex console``: the console and read API on their own port, no collector.

For a lake whose collector runs elsewhere (another machine writing the same landing
zone and catalog, or ``serve`` without the console). uvicorn serves it; SIGTERM or
Ctrl-C stops it after in-flight requests.
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

    from advertisex.console.app import create_app

    config = settings.console
    check_binding(settings, config.host)
    sock = listen(config.host, config.port)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(open_platform, settings, config.host)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
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
