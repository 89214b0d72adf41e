"""What a tracking request says about its visitor: user agent, IP (made private), referrer,
the first-party user cookie — and whether a browser is only prefetching.

The IP is stored as configured (``collector.tracking.ip_privacy``): *truncate* keeps
the network (IPv4 /24, IPv6 /48, written ``a.b.c.0/24``), *hash* keeps an HMAC-SHA256
of the address (``h-…``), *keep* keeps it whole. The invalid-traffic IP ranges (``processor.ivt_ip_ranges``) are checked
here, on the whole address, before it is truncated or hashed, and a hit travels with the
record as ``ivt_ip_range`` — so the processor's IVT filter catches these records exactly
as it catches a POSTed impression whose IP is in the range. Behind a proxy or load
balancer, uvicorn takes the client address from ``X-Forwarded-For`` when the proxy is
listed in ``FORWARDED_ALLOW_IPS``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request

from advertisex.config import Settings
from advertisex.errors import ConfigError

# Headers with which browsers mark speculative loads (Chrome, Safari, Firefox, link previews).
_PREFETCH_HEADERS = ("sec-purpose", "purpose", "x-purpose", "x-moz")
_PREFETCH_WORDS = ("prefetch", "preview", "prerender")


@dataclass(frozen=True)
class Visitor:
    """The request-derived fields of a tracking record."""

    received: str  # ISO-8601 UTC, microseconds
    user_agent: str | None
    ip: str | None
    ivt_ip_range: str | None
    referrer: str | None
    cookie_user: str | None

    def fields(self) -> dict[str, object]:
        """The fields every tracking record carries (None values are left out later)."""
        return {
            "user_agent": self.user_agent,
            "ip": self.ip,
            "referrer": self.referrer,
            "ivt_ip_range": self.ivt_ip_range,
        }


class Visitors:
    """Reads :class:`Visitor` s from requests under the configured privacy rules."""

    def __init__(self, settings: Settings) -> None:
        t = settings.collector.tracking
        self.mode = t.ip_privacy
        if self.mode == "hash" and t.ip_hash_key is None:
            raise ConfigError(
                "collector.tracking.ip_privacy = 'hash' needs collector.tracking.ip_hash_key",
                hint="set a long random ip_hash_key (and keep it: a new key changes every hash), "
                "or use ip_privacy = 'truncate'",
            )
        self._hash_key = t.ip_hash_key.get_secret_value().encode() if t.ip_hash_key else b""
        self._ranges = [
            (ipaddress.ip_network(text, strict=False), text)
            for text in settings.processor.ivt_ip_ranges
        ]
        self.cookie_name = t.cookie_name
        self.set_cookie = t.set_cookie
        self.cookie_max_age = t.cookie_max_age_days * 86400

    @staticmethod
    def now() -> str:
        return datetime.now(UTC).isoformat(timespec="microseconds")

    def read(self, request: Request) -> Visitor:
        headers = request.headers
        address = request.client.host if request.client else None
        parsed = _address(address)
        return Visitor(
            received=self.now(),
            user_agent=headers.get("user-agent") or None,
            ip=self._private(parsed) if parsed else address,
            ivt_ip_range=self._ivt_range(parsed) if parsed and self.mode != "keep" else None,
            referrer=headers.get("referer") or None,
            cookie_user=request.cookies.get(self.cookie_name) or None,
        )

    def _private(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        if self.mode == "keep":
            return str(address)
        if self.mode == "hash":
            digest = hmac.new(self._hash_key, address.packed, hashlib.sha256).hexdigest()
            return "h-" + digest[:32]
        prefix = 24 if address.version == 4 else 48
        # Written as a network (a.b.c.0/24): no one mistakes it for the visitor's address.
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))

    def _ivt_range(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        return next((text for net, text in self._ranges if address in net), None)

    def cookie_header(self, user_id: str, secure: bool) -> str:
        """``Set-Cookie`` value giving a new visitor its id (SameSite=None needs https)."""
        site = "SameSite=None; Secure" if secure else "SameSite=Lax"
        return (
            f"{self.cookie_name}={user_id}; Max-Age={self.cookie_max_age}; Path=/; HttpOnly; {site}"
        )


def user_of(
    params: Mapping[str, str], visitor: Visitor, visitors: Visitors
) -> tuple[str | None, str | None]:
    """(user id, new cookie id or None): the link's user_id, else the cookie, else a new id."""
    given = params.get("user_id", "").strip()
    if given:
        return given, None
    if visitor.cookie_user:
        return visitor.cookie_user, None
    if not visitors.set_cookie:
        return None, None
    fresh = "u-" + secrets.token_urlsafe(12)
    return fresh, fresh


def is_prefetch(headers: Mapping[str, str]) -> bool:
    for name in _PREFETCH_HEADERS:
        value = headers.get(name)
        if value and any(word in value.lower() for word in _PREFETCH_WORDS):
            return True
    return False


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
