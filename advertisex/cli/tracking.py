"""``advertisex sign-url``: signed click links for ad ops (the collector's ``/v1/c``)."""

from __future__ import annotations

import typer

from advertisex.cli.common import FormatOption, open_platform
from advertisex.cli.output import Format, print_json
from advertisex.errors import UserInputError


def register(app: typer.Typer) -> None:
    app.command("sign-url")(sign_url)


def sign_url(
    to: str = typer.Option(..., "--to", help="Destination: an absolute http(s) URL."),
    campaign_id: str = typer.Option(..., "--campaign-id", help="Campaign; picks the key."),
    creative_id: str | None = typer.Option(None, "--creative-id", help="Creative of the ad."),
    impression_id: str | None = typer.Option(
        None, "--impression-id", help="Impression id (or the ad server's macro for it)."
    ),
    param: list[str] = typer.Option(
        [], "--param", help="Another signed parameter, NAME=VALUE (repeatable)."
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Collector URL; default collector.tracking.public_url."
    ),
    fmt: Format = FormatOption,
) -> None:
    """Print a signed click link: the click lands in AdvertiseX, the visitor goes on to --to."""
    extra: dict[str, str] = {}
    if creative_id:
        extra["ad_creative_id"] = creative_id
    if impression_id:
        extra["impression_id"] = impression_id
    for item in param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserInputError(
                f"--param {item!r} is not NAME=VALUE", hint="e.g. --param placement=top"
            )
        if name in extra:
            raise UserInputError(f"parameter {name!r} is given twice")
        extra[name] = value
    ax = open_platform()
    from advertisex.collector.tracking.links import click_url

    url = click_url(ax.settings, to, campaign_id, extra, base_url)
    if fmt is Format.json:
        print_json({"url": url})
    else:
        typer.echo(url)
