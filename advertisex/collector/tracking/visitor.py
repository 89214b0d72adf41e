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

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any, NamedTuple

from advertisex.collector.tracking.clickids import unique_token
from advertisex.config import Settings
from advertisex.errors import ConfigError
from advertisex.util.timeutil import utcnow_iso

# Headers with which browsers mark speculative loads (Chrome, Safari, Firefox, link previews).
_PREFETCH_HEADERS = frozenset({b"sec-purpose", b"purpose", b"x-purpose", b"x-moz"})
_PREFETCH_WORDS = ("prefetch", "preview", "prerender")
_CACHED_COOKIE = 512  # bytes: longer Cookie headers are not kept in the per-header cache


class Hit(NamedTuple):
    """What a pixel or a click endpoint reads of its request: the same from an ASGI scope
    (:meth:`of`) as from the HTTP protocol that answers them itself
    (:mod:`advertisex.collector.tracking.protocol`)."""

    method: str  # GET or HEAD
    query: bytes  # the raw query string, still percent-encoded
    headers: list[tuple[bytes, bytes]]  # names lower-case, as the ASGI scope has them
    client: tuple[str, int] | None  # after the proxy headers, as uvicorn's middleware sets it
    scheme: str

    @classmethod
    def of(cls, scope: Mapping[str, Any]) -> Hit:
        return cls(
            scope["method"],
            scope.get("query_string", b""),
            scope["headers"],
            scope.get("client"),
            scope.get("scheme", "http"),
        )


class Visitor(NamedTuple):
    """The request-derived fields of a tracking record (a tuple: one is made per pixel and
    click, and a frozen dataclass cost several times more to make)."""

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
    """Reads :class:`Visitor` s from requests under the configured privacy rules.

    On the hot path of every pixel and click: the request's headers are read in one pass
    over the raw list, and what an address becomes (private form, IVT range) is cached
    per address, since a visitor's requests come in bursts.
    """

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
        self._cookie_prefix = t.cookie_name + "="
        self.set_cookie = t.set_cookie
        self.cookie_max_age = t.cookie_max_age_days * 86400
        self.describe = functools.lru_cache(maxsize=1 << 16)(self._describe)
        self.cookie_user = functools.lru_cache(maxsize=1 << 13)(self._cookie_value)

    @staticmethod
    def now() -> str:
        return utcnow_iso()

    def read(self, hit: Hit) -> Visitor:
        agent = referrer = cookie = None
        for name, value in hit.headers:
            if name == b"user-agent":
                agent = value
            elif name == b"referer":
                referrer = value
            elif name == b"cookie":
                cookie = value
        client = hit.client
        ip, ivt_range = self.describe(client[0]) if client else (None, None)
        return Visitor(  # positional: a named tuple's keywords cost twice the call
            self.now(),
            agent.decode("latin-1") if agent else None,
            ip,
            ivt_range,
            referrer.decode("latin-1") if referrer else None,
            self._user_in(cookie) if cookie else None,
        )

    def _user_in(self, cookie: bytes) -> str | None:
        # a long header is worked out each time: a cache of hostile cookies stays small
        return (
            self.cookie_user(cookie)
            if len(cookie) <= _CACHED_COOKIE
            else self._cookie_value(cookie)
        )

    def _cookie_value(self, header: bytes) -> str | None:
        """The user id in a ``Cookie`` header (cached per header by :attr:`cookie_user`:
        a visitor's requests carry the same one)."""
        for part in header.decode("latin-1").split(";"):
            part = part.strip()
            if part.startswith(self._cookie_prefix):
                return part[len(self._cookie_prefix) :].strip('"') or None
        return None

    def _describe(self, text: str) -> tuple[str | None, str | None]:
        """(stored form, IVT range of the whole address) of a client address."""
        address = _address(text)
        if address is None:
            return text, None
        if self.mode == "keep":
            return str(address), None  # whole: the processor checks the ranges itself
        ivt_range = next((label for net, label in self._ranges if address in net), None)
        if self.mode == "hash":
            digest = hmac.new(self._hash_key, address.packed, hashlib.sha256).hexdigest()
            return "h-" + digest[:32], ivt_range
        prefix = 24 if address.version == 4 else 48
        # Written as a network (a.b.c.0/24): no one mistakes it for the visitor's address.
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False)), ivt_range

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
    fresh = "u-" + unique_token(12)
    return fresh, fresh


def is_prefetch(hit: Hit) -> bool:
    """Whether a browser only prefetches or previews (one pass over the raw headers)."""
    for name, value in hit.headers:
        if name in _PREFETCH_HEADERS:
            text = value.decode("latin-1").lower()
            if any(word in text for word in _PREFETCH_WORDS):
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
