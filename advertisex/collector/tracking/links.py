"""Signed click links for ad ops: what ``advertisex sign-url`` and ``AdvertiseX.click_url``
build, checked the way the collector will check them when a visitor follows one."""

from __future__ import annotations

from collections.abc import Mapping

from advertisex.collector.tracking.params import ParamError
from advertisex.collector.tracking.redirect import check_destination, host_allowed
from advertisex.collector.tracking.signing import Keys, sign_url
from advertisex.config import Settings
from advertisex.errors import ConfigError, UserInputError


def click_url(
    settings: Settings,
    to: str,
    campaign_id: str,
    params: Mapping[str, str] | None = None,
    base_url: str | None = None,
) -> str:
    """A link through the collector's ``/v1/c`` to ``to``, signed with the campaign's key.

    ``params`` adds click fields (``ad_creative_id``, ``impression_id`` or an ad server's
    macro such as ``%%IMPRESSION_ID%%`` — signed as written, so fill macros before
    signing, or sign at render time). Refuses what the collector would refuse.
    """
    tracking = settings.collector.tracking
    try:
        host = check_destination(to)
    except ParamError as error:
        raise UserInputError(error.message, hint="give an absolute http(s) URL") from None
    if not host_allowed(host, tracking.redirect_allow):
        raise UserInputError(
            f"{host!r} is not in collector.tracking.redirect_allow, so the collector would "
            "refuse this link",
            hint="add the host (or *.its-domain) to redirect_allow",
        )
    key = Keys(tracking.click_secret, tracking.campaign_secrets).key_for(campaign_id)
    if key is None:
        raise ConfigError(
            f"no key signs links of campaign {campaign_id!r}",
            hint="set collector.tracking.click_secret (or campaign_secrets) in advertisex.toml "
            "or ADVERTISEX_COLLECTOR__TRACKING__CLICK_SECRET",
        )
    extra = dict(params or {})
    for reserved in ("to", "campaign_id", "sig"):
        if reserved in extra:
            raise UserInputError(f"parameter {reserved!r} is set by sign-url itself")
    c = settings.collector
    base = (base_url or tracking.public_url or f"http://{c.host}:{c.port}").rstrip("/")
    return sign_url(f"{base}/v1/c", {"campaign_id": campaign_id, **extra, "to": to}, key)
