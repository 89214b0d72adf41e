"""Strict parameters for the tracking endpoints: bounded, UTF-8, one value per name.

A tracking URL is built by an ad server's macros and pasted into markup by hand, so it
is checked before any value is used: a query string over the limit, bytes that are not
UTF-8 (raw or percent-escaped), a parameter given twice (which value would be the real
one?) or too many parameters are refused with a stable code.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from advertisex.collector.responses import ApiError


class ParamError(ApiError):
    """A refused parameter set: ``code`` is stable; a pixel quarantines it instead of answering."""


def parse_query(raw: bytes, *, max_bytes: int, max_parameters: int) -> dict[str, str]:
    """The parameters of a raw (still percent-encoded) query string.

    >>> parse_query(b"campaign_id=c%201&to=https%3A%2F%2Fshop.example", max_bytes=99,
    ...             max_parameters=9)
    {'campaign_id': 'c 1', 'to': 'https://shop.example'}
    """
    if len(raw) > max_bytes:
        raise ParamError(
            414,
            "query_too_long",
            f"the query string has {len(raw)} bytes, more than the limit of {max_bytes}; "
            "shorten the link (collector.tracking.max_query_bytes)",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParamError(
            400,
            "query_invalid_utf8",
            f"byte {error.start} of the query string is not UTF-8; percent-encode UTF-8 text",
        ) from None
    return parse_pairs(text, max_parameters=max_parameters, where="query string")


def parse_link(raw: bytes, *, max_bytes: int, max_parameters: int) -> dict[str, str]:
    """:func:`parse_query` of a click link's query, remembered: one link is clicked by many
    visitors, so the same raw bytes come again and again. Only a query that reads is
    remembered (a refusal is worked out, and raised, each time); each call gets its own
    dict, so a caller's change never reaches the next click.

    >>> parse_link(b"to=x&campaign_id=c", max_bytes=99, max_parameters=9) is parse_link(
    ...     b"to=x&campaign_id=c", max_bytes=99, max_parameters=9)
    False
    """
    return dict(_link(raw, max_bytes, max_parameters))


@functools.lru_cache(maxsize=1024)
def _link(raw: bytes, max_bytes: int, max_parameters: int) -> dict[str, str]:
    return parse_query(raw, max_bytes=max_bytes, max_parameters=max_parameters)


def parse_pairs(text: str, *, max_parameters: int, where: str) -> dict[str, str]:
    """``name=value&…`` (a query string or a form body) as a dict, refusing repeats.

    The form rules of ``urllib.parse.parse_qsl`` (``&`` between pairs, ``+`` for a space,
    a name without ``=`` has an empty value, empty pairs are skipped), with the stdlib's
    ``unquote`` for percent-escapes — only where a part has one: this runs for every
    pixel and click, and most parts are plain text.
    """
    parts = text.split("&")
    if "" in parts:
        parts = [part for part in parts if part]
    if len(parts) > max_parameters:
        raise ParamError(
            400,
            "query_too_many_parameters",
            f"the {where} has {len(parts)} parameters, more than {max_parameters}",
        )
    if "%" not in text and "+" not in text:  # the usual case: nothing to decode
        plain = {}
        for part in parts:  # a plain loop: twice as fast here as a comprehension over map()
            name, _, value = part.partition("=")
            plain[name] = value
        if len(plain) == len(parts):
            return plain  # else a name came twice: refused below, naming it
    try:
        pairs = []
        for part in parts:
            name, _, value = part.partition("=")
            pairs.append((_decode(name), _decode(value)))
    except UnicodeDecodeError as error:
        raise ParamError(
            400,
            "query_invalid_utf8",
            f"a percent-escape in the {where} decodes to bytes that are not UTF-8 ({error.reason})",
        ) from None
    return unique(pairs, where)


def _decode(part: str) -> str:
    return _unquote(part) if "%" in part or "+" in part else part


# An escaped part (a click's destination above all) repeats from link to link: its
# decoded form is remembered (``unquote`` is pure Python); an invalid one raises each time.
@functools.lru_cache(maxsize=4096)
def _unquote(part: str) -> str:
    return unquote(part.replace("+", " "), errors="strict")


def unique(pairs: Iterable[tuple[str, str]], where: str = "query string") -> dict[str, str]:
    """Pairs as a dict; a name given twice is refused (never silently first- or last-wins)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise ParamError(
                400,
                "query_duplicate_parameter",
                f"parameter {name!r} appears more than once in the {where}; send it once",
            )
        out[name] = value
    return out


def required(params: Mapping[str, str], name: str, why: str) -> str:
    """The non-blank value of ``name``, or a ``parameter_missing`` refusal saying ``why``."""
    value = params.get(name, "").strip()
    if not value:
        raise ParamError(400, "parameter_missing", f"parameter {name!r} is required: {why}")
    return value
