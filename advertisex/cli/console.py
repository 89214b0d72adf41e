"""``advertisex console``: the web console and read API alone (no collector)."""

from __future__ import annotations

from typing import Any

import typer

from advertisex.cli.output import literal, print_message


def register(app: typer.Typer) -> None:
    app.command()(console)


def console(
    host: str | None = typer.Option(
        None,
        "--host",
        help="Interface to listen on (default 127.0.0.1); beyond loopback needs console keys.",
    ),
    port: int | None = typer.Option(None, "--port", "-p", help="TCP port (default 8081)."),
) -> None:
    """Serve the web console at / and the JSON read API at /api/v1 over this lake."""
    from advertisex.api import AdvertiseX
    from advertisex.cli.common import require_lake
    from advertisex.config import load_settings
    from advertisex.console.server import serve

    # --host / --port checked as the configured ones are (a port past 65535 is a setting
    # to fix, where a copy of the settings took it unchecked and the bind failed as a bug).
    given = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(**({"console": given} if given else {}))
    require_lake(AdvertiseX(settings))  # stops with a message where there is no lake

    def ready(url: str) -> None:
        print_message(
            f"console on [bold]{url}/[/] over {literal(settings.data_dir)} "
            f"(API {url}/api/v1, docs {url}/docs; Ctrl-C to stop)"
        )

    serve(settings, platform_opener(settings), on_ready=ready)


def platform_opener(settings: Any) -> Any:
    """What the console calls to open the platform, on its first request."""

    def open_platform() -> Any:
        from advertisex.api import AdvertiseX

        return AdvertiseX(settings)

    return open_platform


def beside_collector(settings: Any) -> Any:
    """For ``serve``/``up``: a wrapper putting the console in front of the collector app."""
    if not settings.console.enabled:
        return None
    from advertisex.collector.openapi import SPEC
    from advertisex.console.app import combine, create_app

    def wrap(collector_app: Any) -> Any:
        console_app = create_app(
            platform_opener(settings), settings, settings.collector.host, base_spec=SPEC
        )
        return combine(collector_app, console_app)

    return wrap
