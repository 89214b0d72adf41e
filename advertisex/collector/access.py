"""API keys: who may send which source. Keys are stored only as SHA-256 digests.

A key travels as ``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``. Firehose
clients (boto3) sign with AWS SigV4 instead; there the access key id of the signature
plays the part of the API key — the collector cannot check the signature itself, since
it never holds a secret, so put TLS in front when the network is not trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from advertisex.config import ApiKey
from advertisex.errors import AdvertiseXError


class AccessDenied(AdvertiseXError):
    """``http_status`` 401 (no or unknown key) or 403 (key not allowed this source)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status, self.code = status, code

    @property
    def status(self) -> int:
        return self.http_status


@dataclass(frozen=True)
class Principal:
    name: str
    sources: frozenset[str]


# Beside the sources: the permission to send conversion postbacks (/v1/postback).
POSTBACK = "postback"
SCOPES = ("impressions", "clicks", "bids", POSTBACK)
ANONYMOUS = Principal("anonymous", frozenset(SCOPES))


class KeyRing:
    """Checks presented keys against the configured digests; empty ring = access is open."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest = {
            k.sha256.strip().lower(): Principal(k.name, frozenset(k.sources)) for k in keys
        }

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def principal(self, presented: str | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        if not presented:
            raise AccessDenied(
                401, "api_key_missing", "an API key is required: send 'Authorization: Bearer <key>'"
            )
        digest = hash_key(presented)
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise AccessDenied(401, "api_key_invalid", "the API key is not valid")

    def authorize(self, presented: str | None, source: str) -> Principal:
        principal = self.principal(presented)
        if source not in principal.sources:
            raise AccessDenied(
                403,
                "source_forbidden",
                f"this API key may not send {source} "
                f"(allowed: {', '.join(sorted(principal.sources)) or 'none'})",
            )
        return principal


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key a request carries: bearer token, X-Api-Key, or a SigV4 access key id."""
    authorization = headers.get("authorization", "")
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip() or None
    if scheme == "AWS4-HMAC-SHA256":
        for part in rest.split(","):
            name, _, value = part.strip().partition("=")
            if name == "Credential":
                return value.split("/", 1)[0] or None
    return headers.get("x-api-key") or None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh random key and its digest, for ``advertisex keygen``."""
    key = "adx_" + secrets.token_urlsafe(24)
    return key, hash_key(key)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
