"""Response header lines checked as uvicorn checks them, for answers written whole.

The pixel's GIF and the click's 302 are known whole before their first byte; the
protocol that answers them (:mod:`advertisex.collector.tracking.protocol`) writes each
in one piece, with header lines built — and checked — once where they are fixed. Kept
apart from that module so that building links (``sign-url``) does not import uvicorn.
"""

from __future__ import annotations

import re

# The checks uvicorn's httptools protocol makes of every response header (its HEADER_RE and
# HEADER_VALUE_RE): no CR, LF or other control character — no header injection.
_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


def header_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """``headers`` as the lines of a response head, each checked as uvicorn checks them.
    ValueError otherwise.

    >>> header_lines([(b"Location", b"https://shop.example/")])
    b'location: https://shop.example/\\r\\n'
    """
    lines: list[bytes] = []
    for name, value in headers:
        if _NAME.search(name) or _VALUE.search(value):
            raise ValueError(f"invalid response header {name!r}: {value!r}")
        lines += (name.lower(), b": ", value, b"\r\n")
    return b"".join(lines)


def header_line(name: bytes, value: bytes) -> bytes:
    """One header line, ``name`` a lower-case name known to be valid (a constant of the
    caller's), ``value`` checked as :func:`header_lines` checks it. ValueError otherwise.

    >>> header_line(b"location", b"https://shop.example/")
    b'location: https://shop.example/\\r\\n'
    """
    if _VALUE.search(value):
        raise ValueError(f"invalid response header {name!r}: {value!r}")
    return name + b": " + value + b"\r\n"
