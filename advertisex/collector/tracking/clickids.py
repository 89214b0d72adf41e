"""Click ids that name their campaign and user, so a postback needs nothing but the id.

The click redirect hands the landing page ``c1.<base64url(campaign ␟ user ␟ 9 random
bytes)>``. A conversion postback that sends it back is landed with that campaign and
user — both required by the conversion contract — without the collector looking
anything up, and attribution then matches it to exactly this click. The random part
keeps two clicks of one user on one campaign apart. The id is not a secret and not
signed: a forged one can only name a click that does not exist, which attributes
nothing by id (postback senders are authenticated anyway).
"""

from __future__ import annotations

import base64
import binascii
import os
import random

PREFIX = "c1."
# Ids must be unique, not secret (a click id names its user in clear anyway), and
# os.urandom costs ~0.4 ms a call on some VMs: one generator seeded from it per process.
_RANDOM = random.Random(os.urandom(32))
_SEP = b"\x1f"
_NONCE = 9


def new_click_id(campaign_id: str, user_id: str) -> str:
    """A fresh click id for a click of ``user_id`` on ``campaign_id``.

    >>> read_click_id(new_click_id("cmp-1", "user-7"))
    ('cmp-1', 'user-7')
    """
    payload = campaign_id.encode() + _SEP + user_id.encode() + _SEP + unique_bytes(_NONCE)
    return PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def read_click_id(click_id: str) -> tuple[str, str] | None:
    """(campaign_id, user_id) of a click id made by :func:`new_click_id`; None for any other."""
    if not click_id.startswith(PREFIX):
        return None
    body = click_id[len(PREFIX) :]
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    head = payload[: -_NONCE - 1]
    if len(payload) <= _NONCE + 1 or payload[-_NONCE - 1 : -_NONCE] != _SEP or _SEP not in head:
        return None
    campaign, _, user = head.partition(_SEP)
    try:
        campaign_id, user_id = campaign.decode(), user.decode()
    except UnicodeDecodeError:
        return None
    return (campaign_id, user_id) if campaign_id and user_id else None


def unique_bytes(size: int) -> bytes:
    return _RANDOM.getrandbits(8 * size).to_bytes(size, "big")


def unique_token(size: int) -> str:
    """``size`` random bytes as URL-safe base64 (no padding): a new visitor's id."""
    return base64.urlsafe_b64encode(unique_bytes(size)).rstrip(b"=").decode()
