"""Signed tracking links: HMAC-SHA256 over the canonical parameters.

The canonical form of a parameter set is every parameter except the signature itself
(and, for postbacks, the API key), sorted by name, each ``name=value`` percent-encoded
by RFC 3986 rules (unreserved characters stay, everything else is ``%XX`` of its UTF-8
bytes), joined with ``&``. The signature is the URL-safe base64 (no padding) of the
HMAC-SHA256 of that text. Any added, removed or changed parameter — the destination
above all — breaks it, and the same links verify whatever order or escaping a browser
or a macro engine gives them.

Keys come from configuration: a campaign's own key when it has one, else the global
one, so a leaked key of one advertiser cannot sign links for another.

One link is clicked by many visitors: the raw query strings that verified are remembered
(a bounded set per :class:`Keys`), so the same link again skips its canonical text and HMAC
— a sixth of a click's CPU. The raw query decides the parameters, hence the campaign, the
key and the signed text: it verifies again exactly when it verified once. Refusals are
never remembered, so only validly signed links take room.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

from advertisex.collector.tracking.params import ParamError, parse_pairs

SIGNATURE = "sig"
VERIFIED_LINKS = 1024  # raw queries remembered per Keys (≤ max_query_bytes each: ≤ 4 MB)


def canonical(
    params: Mapping[str, str], unsigned: frozenset[str] = frozenset({SIGNATURE})
) -> bytes:
    """The text a signature covers.

    >>> canonical({"to": "https://shop.example/?a=1", "campaign_id": "c 1", "sig": "x"})
    b'campaign_id=c%201&to=https%3A%2F%2Fshop.example%2F%3Fa%3D1'
    """
    parts = []
    for name in sorted(params):  # names are unique: sorting by name sorts the pairs
        if name not in unsigned:
            parts.append(_escape(name) + "=" + _escape(params[name]))
    return "&".join(parts).encode()


def signature(
    params: Mapping[str, str],
    key: str | bytes,
    unsigned: frozenset[str] = frozenset({SIGNATURE}),
) -> str:
    """The signature of ``params`` under ``key``."""
    keyed = _keyed(key.encode() if isinstance(key, str) else key).copy()
    keyed.update(canonical(params, unsigned))
    return base64.urlsafe_b64encode(keyed.digest()).rstrip(b"=").decode()


@functools.lru_cache(maxsize=256)
def _keyed(secret: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 with ``secret`` set up, to copy: setting a key up costs more than
    hashing a link (a few microseconds against one), and the keys in force are few."""
    return hmac.new(secret, digestmod=hashlib.sha256)


def sign_url(base_url: str, params: Mapping[str, str], key: str | bytes) -> str:
    """``base_url`` with ``params`` (and any query it already has) and their signature.

    >>> sign_url("https://t.example/v1/c", {"campaign_id": "c1", "to": "https://shop.example/"},
    ...          "k")  # doctest: +ELLIPSIS
    'https://t.example/v1/c?campaign_id=c1&to=https%3A%2F%2Fshop.example%2F&sig=...'
    """
    parts = urlsplit(base_url)
    given = parse_pairs(parts.query, max_parameters=1000, where="base URL") if parts.query else {}
    merged = dict(given)
    for name, value in params.items():
        if name in merged or name == SIGNATURE:
            raise ValueError(f"parameter {name!r} is given twice (or is the reserved 'sig')")
        merged[name] = value
    merged[SIGNATURE] = signature(merged, key)
    query = urlencode(list(merged.items()), quote_via=quote, safe="")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class Keys:
    """The link keys in force: per campaign, else global."""

    def __init__(self, default: SecretStr | None, per_campaign: Mapping[str, SecretStr]) -> None:
        self._default = default.get_secret_value().encode() if default else None
        self._campaigns = {c: k.get_secret_value().encode() for c, k in per_campaign.items()}
        # (raw query, unsigned names) that verified, oldest first: a dict kept as a FIFO
        self._verified: dict[tuple[bytes, frozenset[str]], None] = {}

    @property
    def configured(self) -> bool:
        return bool(self._default or self._campaigns)

    def key_for(self, campaign_id: str | None) -> bytes | None:
        return self._campaigns.get(campaign_id or "", self._default)

    def check(
        self,
        params: Mapping[str, str],
        campaign_id: str | None,
        unsigned: frozenset[str] = frozenset({SIGNATURE}),
        *,
        query: bytes | None = None,
    ) -> None:
        """Refuse (403) unless ``params`` carry a valid signature under the campaign's key.

        ``query``, the raw query string ``params`` were parsed from, lets a link that
        verified before pass without its HMAC again.
        """
        seen = (query, unsigned) if query is not None else None
        if seen is not None and seen in self._verified:
            return
        presented = params.get(SIGNATURE, "")
        if not presented:
            raise ParamError(
                403,
                "signature_missing",
                f"the link carries no '{SIGNATURE}' parameter; build links with "
                "`advertisex sign-url`",
            )
        key = self.key_for(campaign_id)
        if key is None:
            raise ParamError(
                403,
                "signing_not_configured",
                "no signing key is configured for this link's campaign "
                "(collector.tracking.click_secret or campaign_secrets)",
            )
        if not hmac.compare_digest(presented.encode(), signature(params, key, unsigned).encode()):
            raise ParamError(
                403,
                "signature_invalid",
                "the signature does not match the link's parameters (changed after signing, "
                "or signed with another key)",
            )
        if seen is not None:
            if len(self._verified) >= VERIFIED_LINKS:
                del self._verified[next(iter(self._verified))]
            self._verified[seen] = None


_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~]*")


# A click's names, campaign and destination repeat from link to link: their escaped forms
# are remembered (``quote`` is pure Python, a few microseconds a value); plain values —
# the per-view ids — pass the unreserved check and are never cached.
@functools.lru_cache(maxsize=4096)
def _quote(text: str) -> str:
    return quote(text, safe="-_.~")


def _escape(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else _quote(text)


def escape_value(text: str) -> str:
    """``text`` percent-encoded for a query (``quote(text, safe="")``), at the cost of one
    check when it needs none — a click id never does.

    >>> escape_value("c1.x_y-z"), escape_value("a/b c")
    ('c1.x_y-z', 'a%2Fb%20c')
    """
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")
