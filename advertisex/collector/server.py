"""Run the collector on uvicorn with uvloop and httptools (the fastest pair measured here).

uvicorn owns the signals: on SIGTERM or SIGINT it stops accepting connections, lets
in-flight requests finish (up to ``shutdown_grace_seconds``), then runs the app's
lifespan shutdown, which writes, fsyncs and seals every open segment.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from advertisex.collector.access import is_loopback
from advertisex.config import Settings
from advertisex.errors import UserInputError

if TYPE_CHECKING:
    from advertisex.collector.service import Collector, WorkerSlot
    from advertisex.collector.tracking.service import Tracking


def check_binding(settings: Settings) -> None:
    """Refuse to listen beyond loopback without API keys: open intake on a network is a hole."""
    config = settings.collector
    if not config.api_keys and not is_loopback(config.host):
        raise UserInputError(
            f"refusing to listen on {config.host} without API keys",
            hint="create one with `advertisex keygen --name SENDER` and add the collector.api_keys "
            "entry it prints to advertisex.toml, or bind to 127.0.0.1",
        )


def serve(
    settings: Settings,
    on_ready: Callable[[str], None] | None = None,
    wrap: Callable[[Any], Any] | None = None,
    workers: int = 1,
) -> None:
    """Block serving the collector until SIGTERM/SIGINT; segments are sealed on the way out.

    ``wrap`` puts another ASGI app in front of the collector's on the same port (the web
    console: ``advertisex serve`` and ``up`` pass it); it must hand the lifespan through.
    ``workers`` > 1 runs that many processes on the port (:mod:`.workers`).
    """
    from advertisex.collector.service import Collector

    check_binding(settings)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if workers > 1:
        from advertisex.collector.workers import supervise

        def run_worker(slot: WorkerSlot, sock: socket.socket, ready: Callable[[], None]) -> None:
            _run(settings, Collector(settings, slot), sock, wrap, lambda url: ready())

        supervise(settings, workers, run_worker, on_ready)
        return
    collector = Collector(settings)
    collector.acquire()  # before anything touches the landing zone
    # Bind before the app starts: a second collector on a taken port must fail without
    # running recovery or opening segments.
    sock = listen(settings.collector.host, settings.collector.port)
    _run(settings, collector, sock, wrap, on_ready)


def _run(
    settings: Settings,
    collector: Collector,
    sock: socket.socket,
    wrap: Callable[[Any], Any] | None,
    on_ready: Callable[[str], None] | None,
) -> None:
    import uvicorn

    from advertisex.collector.app import create_app

    app = create_app(settings, collector)
    server_config = uvicorn_config(
        settings, wrap(app) if wrap is not None else app, app.state.tracking
    )
    server = uvicorn.Server(server_config)
    if on_ready is not None:
        announce_when_started(server, on_ready, sock)
    # A writer thread back from its fsync needs the GIL to answer its group; while the
    # event loop is busy with a burst it would wait the default 5 ms switch interval.
    sys.setswitchinterval(0.001)
    settle_heap()
    run_until_stopped(server, sock)


def settle_heap() -> None:
    """Take what start-up made (modules, settings, the app: ≈ 120 k objects) out of the
    garbage collector's reach for the life of the process.

    A full collection walks every tracked object: here 40–90 ms with the event loop
    stopped — a stall of every request in flight, at whatever rate. Frozen, those objects
    are never walked again (they live as long as the process anyway), and a full
    collection costs what came after them.
    """
    gc.collect()
    gc.freeze()


def uvicorn_config(settings: Settings, app: Any, tracking: Tracking | None = None) -> Any:
    """The ``uvicorn.Config`` the collector serves ``app`` with (bench/wire_cpu.py drives
    its protocol in process, so it measures exactly what ``serve`` runs).

    With ``tracking`` (the collector app's), the protocol answers the pixel and the
    redirect itself (:mod:`advertisex.collector.tracking.protocol`); ``app`` — the
    collector's, or a wrapper in front of it — must hand ``/v1/i`` and ``/v1/c`` to the
    collector's app, as the console's wrapper does.
    """
    import uvicorn

    from advertisex.collector.connections import guarded_protocol

    base = None
    if tracking is not None:
        from advertisex.collector.tracking.protocol import answering_protocol

        base = answering_protocol(tracking)
    config = settings.collector
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        # httptools, with header and body read deadlines, a cap on unfinished requests and
        # on a request's headers
        http=guarded_protocol(
            config.header_timeout_seconds,
            config.body_timeout_seconds,
            config.max_unfinished_requests,
            base,
            config.max_header_bytes,
        ),
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=int(config.shutdown_grace_seconds),
        backlog=4096,
    )


def run_until_stopped(server: Any, sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGTERM or Ctrl-C, then return.

    uvicorn stops gracefully on either, then raises the signal it caught again; with these
    handlers in place that second time does nothing, so a server stopped the way it says
    ("Ctrl-C or SIGTERM to stop") ends with status 0, as ``up`` does, not as an
    interrupted command (130).
    """
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda signum, frame: None)
    server.run(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, or one clear error (the port is taken …)."""
    try:
        return socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET, backlog=4096
        )
    except OSError as error:
        raise UserInputError(
            f"cannot listen on {host}:{port}: {error.strerror or error}",
            hint="is the port already in use? pick another --port, or stop the process using it",
        ) from None


def announce_when_started(
    server: object, on_ready: Callable[[str], None], sock: socket.socket
) -> None:
    """Call ``on_ready(url)`` once ``server`` has started on ``sock`` (the port it really
    listens on: ``--port 0`` picks one)."""
    import uvicorn

    assert isinstance(server, uvicorn.Server)
    original = server.startup
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def startup(sockets: object = None) -> None:
        await original(sockets=sockets)  # type: ignore[arg-type]
        if server.started:
            on_ready(url)

    server.startup = startup  # type: ignore[method-assign]
