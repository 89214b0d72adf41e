"""``GET /v1/c``: the click redirect — land a click, answer ``302`` to the signed destination.

``/v1/c?campaign_id=…&ad_creative_id=…&impression_id=…&to=<url>&sig=<hmac>``: the
parameters (with ``to``) are signed by :mod:`.signing` with the campaign's key. Nothing
but a validly signed, well-formed http(s) destination inside the allow-list is ever
redirected to — never an open redirect. Checks, in order, each a 4xx JSON error with a
stable code and no redirect:

1. the query string reads (``query_too_long`` 414, ``query_invalid_utf8``,
   ``query_duplicate_parameter``, ``query_too_many_parameters``: 400);
2. ``to`` and ``campaign_id`` are present (``parameter_missing`` 400);
3. ``to`` is an absolute http(s) URL with a host, no user info, no control characters,
   spaces or backslashes — so no header injection, no ``javascript:`` or ``data:``
   (``destination_invalid`` 403);
4. the signature is there and right (``signature_missing``, ``signing_not_configured``,
   ``signature_invalid``: 403);
5. the host is allowed (``destination_not_allowed`` 403).

The click lands (durable) with a new click id, which the destination receives as the
``collector.tracking.click_id_param`` query parameter, for the advertiser to send back
in its conversion postback. ``HEAD`` (link checkers) and browser prefetches are answered
the same way but land nothing: a speculative load is not a click (the MRC counts
prefetch as general invalid traffic), and it is counted in ``/metrics`` as such. If the
collector cannot store the click, the visitor is still sent on (without a click id): the
loss is counted in ``/metrics`` under the refusal's code.
"""

from __future__ import annotations

import functools
import re
import time
from urllib.parse import quote, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import Response

from advertisex.collector.responses import ApiError
from advertisex.collector.tracking import records
from advertisex.collector.tracking.clickids import new_click_id
from advertisex.collector.tracking.params import ParamError, parse_link, required
from advertisex.collector.tracking.service import Tracking
from advertisex.collector.tracking.signing import escape_value
from advertisex.collector.tracking.visitor import Hit, is_prefetch, user_of
from advertisex.collector.whole import header_line, header_lines

ENDPOINT = "click"
SOURCE = "clicks"
# Control characters (CR/LF would inject headers), space and backslash: never in a target.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


async def endpoint(request: Request) -> Response:
    return await answer(request.app.state.tracking, Hit.of(request.scope))


async def answer(tracking: Tracking, hit: Hit) -> Response:
    """The redirect's answer to ``hit``, once its click (if any) is durable."""
    started = time.perf_counter()
    try:
        params = parse_link(
            hit.query,
            max_bytes=tracking.config.max_query_bytes,
            max_parameters=tracking.config.max_parameters,
        )
        destination = required(params, "to", "the destination to send the visitor to")
        campaign_id = required(params, "campaign_id", "it picks the key the link is signed with")
        host = check_destination(destination)
        tracking.click_keys.check(params, campaign_id, query=hit.query)
        if not host_allowed(host, tracking.config.redirect_allow):
            raise ParamError(
                403,
                "destination_not_allowed",
                f"{host!r} is not among the allowed destinations (collector.tracking.redirect_allow)",
            )
    except ApiError as error:
        tracking.refused(ENDPOINT, SOURCE, error)
        return error.response()

    if hit.method == "HEAD" or is_prefetch(hit):
        tracking.count(ENDPOINT, "head" if hit.method == "HEAD" else "prefetch")
        return _redirect(destination)
    visitor = tracking.visitors.read(hit)
    user_id, fresh = user_of(params, visitor, tracking.visitors)
    cookie = tracking.visitors.cookie_header(fresh, hit.scheme == "https") if fresh else None
    click_id = new_click_id(campaign_id, user_id or "")
    try:
        await tracking.land(SOURCE, records.click(params, visitor, user_id, click_id))
    except ApiError as error:
        tracking.refused(ENDPOINT, SOURCE, error)
        return _redirect(destination, cookie=cookie)
    tracking.count(ENDPOINT, "accepted", started)
    target = with_parameter(destination, tracking.config.click_id_param, click_id)
    return _redirect(target, cookie=cookie)


@functools.lru_cache(maxsize=4096)  # a campaign's destination repeats from click to click
def check_destination(url: str) -> str:
    """The host of ``url`` if it is a safe redirect target; ``destination_invalid`` otherwise
    (a refusal is not cached: it is worked out again each time)."""

    def invalid(why: str) -> ParamError:
        return ParamError(403, "destination_invalid", f"the destination {why}")

    bad = _UNSAFE.search(url)
    if bad:
        raise invalid(
            "contains a space or a backslash"
            if bad.group() in " \\"
            else "contains control characters (a CR/LF could inject headers)"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 — raises ValueError on a malformed port
    except ValueError:
        raise invalid("is not a well-formed URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise invalid(
            f"has scheme {parts.scheme or '(none)'!r}; only absolute http and https URLs are "
            "redirected to (never javascript: or data:)"
        )
    if not host or "@" in parts.netloc:
        raise invalid("has no host, or carries user info before its host")
    if not host.isascii():
        raise invalid(f"host {host!r} is not ASCII; sign the link with its punycode (xn--) form")
    return host


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``host`` against the allow-list: ``shop.example`` exactly, ``*.example.com`` for that
    domain and its subdomains; an empty list allows any host (the signature is the guard).

    >>> host_allowed("a.shop.example", ("*.shop.example",)), host_allowed("evil.example", ("shop.example",))
    (True, False)
    """
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*."):
            domain = entry[2:]
            if host == domain or host.endswith("." + domain):
                return True
        elif host == entry:
            return True
    return False


def with_parameter(url: str, name: str, value: str) -> str:
    """``url`` with ``name=value`` appended to its query (the rest of it untouched).

    >>> with_parameter("https://shop.example/a?b=1#top", "click id", "c1.x/y")
    'https://shop.example/a?b=1&click%20id=c1.x%2Fy#top'
    """
    before, after = _around_parameter(url, name)
    return before + escape_value(value) + after


@functools.lru_cache(maxsize=4096)  # a campaign's destination repeats from click to click
def _around_parameter(url: str, name: str) -> tuple[str, str]:
    """What comes before and after the value of ``name`` appended to ``url``'s query."""
    parts = urlsplit(url)
    pair = f"{quote(name, safe='')}=\x00"
    query = f"{parts.query}&{pair}" if parts.query else pair
    before, _, after = urlunsplit(
        (parts.scheme, parts.netloc, parts.path, query, parts.fragment)
    ).partition("\x00")
    return before, after


def _ascii(url: str) -> str:
    """Percent-encode the non-ASCII characters of a path or query (a header is ASCII)."""
    return url if url.isascii() else "".join(c if c.isascii() else quote(c, safe="") for c in url)


_FIXED = [(b"cache-control", b"no-store"), (b"content-length", b"0")]
_FIXED_HEAD = header_lines(_FIXED)


class Redirect(Response):
    """A 302 with its headers built directly (Starlette's generic path costs more), and
    ``head``, their lines as the protocol writes them
    (:mod:`~advertisex.collector.tracking.protocol`)."""

    def __init__(self, location: str, cookie: str | None = None) -> None:
        self.status_code = 302
        self.background = None
        self.body = b""
        value = _ascii(location).encode("latin-1")
        located = (b"location", value)
        if cookie:
            set_cookie = (b"set-cookie", cookie.encode("latin-1"))
            self.raw_headers = [located, *_FIXED, set_cookie]
            self.head = (
                header_line(b"location", value)
                + _FIXED_HEAD
                + header_line(b"set-cookie", set_cookie[1])
            )
        else:
            self.raw_headers = [located, *_FIXED]
            self.head = header_line(b"location", value) + _FIXED_HEAD


def failed() -> Response:
    """The answer to a click the collector failed on unexpectedly: no redirect."""
    return ApiError(
        500, "internal", "the collector failed unexpectedly; nothing was stored"
    ).response()


def _redirect(location: str, cookie: str | None = None) -> Response:
    return Redirect(location, cookie)
