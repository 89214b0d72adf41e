"""Enrich curated events: user agent → device, OS, browser; URL → host; day and hour; dimensions.

Pure: Arrow rows and a :class:`~advertisex.dims.model.Dimensions` snapshot in, the
same rows (same count, same order) with enrichment columns out.

- ``device_type`` (only where the record lacks one), ``os`` and ``browser`` come from
  ua-parser (the maintained Python port of Browserscope's uap-core rules, with the
  ua-parser-rs native matcher when installed). Parsing is per *distinct* user agent —
  a batch holds millions of impressions but a few hundred agents — and results are
  cached across batches. ua-parser names the OS, browser and device model but not the
  device class, so :func:`device_class` maps its answer onto desktop / mobile / tablet
  / ctv; crawlers (ua-parser's ``Spider`` device) get no device type.
- ``site_host``: the website's host, lower-case, without ``www.``, port, user info or
  path; a bare name such as ``website_6`` stays as it is.
- ``event_date`` / ``event_hour``: the UTC day and hour of ``event_time``.
- Impressions without ``campaign_id`` get the campaign of their creative; events get
  their campaign's ``advertiser``. Both from the dimension version whose
  [valid_from, valid_to) holds the event's time; null while unknown.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex import native
from advertisex.util.arrays import coded, joined

if TYPE_CHECKING:
    from advertisex.dims.model import Dimensions

# Enrichment columns each source's standardized rows gain.
COLUMNS: dict[str, tuple[str, ...]] = {
    "impressions": (
        "campaign_id",
        "device_type",
        "os",
        "browser",
        "site_host",
        "advertiser",
        "event_date",
        "event_hour",
    ),
    "clicks": ("advertiser", "event_date", "event_hour"),
    "bids": ("event_date", "event_hour"),
}

_HOST = (
    r"^\s*(?:[A-Za-z][A-Za-z0-9+.\-]*://|//)?"  # scheme, or protocol-relative //
    r"(?:[^@/?#]*@)?"  # user info
    r"(?P<host>\[[^\]]*\]|[^/:?#\s]*)"  # [IPv6] or name, up to port / path / query
)
_UA_CACHE_LIMIT = 100_000


def enrich(source: str, rows: pa.Table, dims: Dimensions | None = None) -> pa.Table:
    """Add (or fill) the enrichment columns of ``source`` (impressions, clicks or bids).

    >>> import pyarrow as pa
    >>> from datetime import datetime, UTC
    >>> out = enrich("impressions", pa.table({
    ...     "event_time": pa.array([datetime(2026, 5, 1, 13, 5, tzinfo=UTC)], pa.timestamp("us", "UTC")),
    ...     "website": ["https://WWW.Example.com:443/a?b"], "user_agent": ["curl/8.4.0"],
    ...     "device_type": pa.nulls(1, pa.string()), "ad_creative_id": ["cr-1"],
    ...     "campaign_id": pa.nulls(1, pa.string())}))
    >>> out.select(["site_host", "browser", "event_hour"]).to_pylist()
    [{'site_host': 'example.com', 'browser': 'curl', 'event_hour': 13}]
    """
    added: dict[str, pa.Array | pa.ChunkedArray] = {}
    added.update(day_and_hour(rows.column("event_time")))
    if source == "impressions":
        device, os_family, browser, agents = parse_user_agents(rows.column("user_agent"))
        # The same texts, as codes (parse_user_agents)
        rows = rows.set_column(rows.column_names.index("user_agent"), "user_agent", agents)
        added["device_type"] = pc.coalesce(rows.column("device_type"), device)
        added["os"] = os_family
        added["browser"] = browser
        added["site_host"] = site_host(rows.column("website"))
        campaign, advertiser = resolve_campaigns(
            rows.column("event_time"),
            rows.column("campaign_id"),
            rows.column("ad_creative_id"),
            dims,
        )
        added["campaign_id"] = campaign
        added["advertiser"] = advertiser
    elif source == "clicks":
        _, added["advertiser"] = resolve_campaigns(
            rows.column("event_time"), rows.column("campaign_id"), None, dims
        )
    for name in COLUMNS[source]:
        column = added[name]
        if name in rows.column_names:
            rows = rows.set_column(rows.column_names.index(name), name, column)
        else:
            rows = rows.append_column(name, column)
    return rows


# ---------------------------------------------------------------- time


def day_and_hour(event_time: pa.ChunkedArray) -> dict[str, pa.ChunkedArray]:
    """UTC ``event_date`` (date32) and ``event_hour`` (int8) of each event time."""
    utc = pc.cast(event_time, pa.timestamp("us"))  # drop the zone: values are UTC already
    return {
        "event_date": pc.cast(utc, pa.date32()),
        "event_hour": pc.cast(pc.hour(utc), pa.int8()),
    }


# ---------------------------------------------------------------- websites


def site_host(website: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Normalized host of each website: lower-case, no ``www.``, no port; bare names kept.

    Vectorized down to the authority part (``https://user@Host:8080/path`` →
    ``user@Host:8080``), which has few distinct values; those are normalized once each.

    >>> site_host(pa.chunked_array([["http://www.a.com:8080/x", "website_6", None]])).to_pylist()
    ['a.com', 'website_6', None]
    """
    array = joined(website)
    if len(array) == 0 or array.null_count == len(array):
        return pa.nulls(len(array), pa.string())
    authority = native.url_authorities(array)
    if authority is None:
        authority = _authorities(array)
    encoded = pc.dictionary_encode(authority)
    hosts = [normalize_host(a) for a in encoded.dictionary.to_pylist()]
    # Codes, as the table writes this few-valued column (util.arrays.coded)
    indices = encoded.indices
    if array.null_count:
        indices = pc.if_else(pc.is_null(array), pa.scalar(None, indices.type), indices)
    return coded(indices, hosts)


def _authorities(array: pa.Array) -> pa.Array:
    """The authority part of each website (``native.url_authorities``, by Arrow)."""
    # "scheme:", "", "authority", "rest" — or "authority", "rest" without a scheme.
    parts = pc.split_pattern(array, "/", max_splits=3)
    offsets = parts.offsets.to_numpy()
    values = parts.values
    start, length = offsets[:-1], np.diff(offsets)
    last = max(len(values) - 1, 0)
    first = pc.take(values, np.minimum(start, last))
    second = pc.take(values, np.minimum(np.where(length >= 2, start + 1, start), last))
    has_scheme = (
        (length >= 3)
        & pc.equal(second, "").to_numpy(zero_copy_only=False)
        & pc.or_(pc.ends_with(first, ":"), pc.equal(first, "")).to_numpy(zero_copy_only=False)
    )
    return pc.take(values, np.minimum(np.where(has_scheme, start + 2, start), last))


def normalize_host(authority: str) -> str | None:
    """``user@WWW.Example.com.:8080?x`` → ``example.com``; ``[::1]:80`` → ``[::1]``."""
    text = authority.strip().split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    if text.startswith("["):
        host = text[: text.find("]") + 1] if "]" in text else text
    else:
        host = text.split(":", 1)[0]
    host = host.lower().rstrip(".")
    host = host.removeprefix("www.")
    return host or None


# ---------------------------------------------------------------- user agents


def parse_user_agents(
    user_agent: pa.ChunkedArray | pa.Array,
) -> tuple[pa.Array, pa.DictionaryArray, pa.DictionaryArray, pa.DictionaryArray]:
    """(device class, OS family, browser family, the agents) per row; each distinct agent
    parsed once. OS, browser and the agents themselves come dictionary-encoded: few
    values, moved and written as codes (``TableSpec.few_values``); the agents' texts
    (≈ 110 bytes each) are hashed here once, not again by the invalid-traffic check and
    the writer's encoding."""
    # Texts are encoded chunk by chunk (into one dictionary), not joined into a copy first.
    encoded = joined(
        user_agent if pa.types.is_dictionary(user_agent.type) else pc.dictionary_encode(user_agent)
    )
    distinct = encoded.dictionary.to_pylist()
    parsed = [describe_user_agent(agent) if agent is not None else _NOTHING for agent in distinct]
    device = pc.take(pa.array([p[0] for p in parsed], pa.string()), encoded.indices)
    os_family = coded(encoded.indices, [p[1] for p in parsed])
    browser = coded(encoded.indices, [p[2] for p in parsed])
    return device, os_family, browser, coded(encoded.indices, distinct)


_NOTHING: tuple[str | None, str | None, str | None] = (None, None, None)


@functools.lru_cache(maxsize=_UA_CACHE_LIMIT)
def describe_user_agent(agent: str) -> tuple[str | None, str | None, str | None]:
    """(device class, OS family, browser family) of one user agent string.

    >>> describe_user_agent("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    ...     "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
    ('tablet', 'iOS', 'Mobile Safari')
    """
    from ua_parser import parse

    result = parse(agent)
    os_family = _family(result.os)
    browser = _family(result.user_agent)
    device = result.device
    return (
        device_class(
            agent,
            os_family,
            device.family if device else None,
            device.brand if device else None,
        ),
        os_family,
        browser,
    )


def _family(part: Any) -> str | None:
    family = getattr(part, "family", None)
    return None if family in (None, "", "Other") else family


_CTV_OS = {"Roku", "Tizen", "Web0S", "webOS", "ATV OS X", "tvOS", "Android TV", "Chromecast"}
_CTV_TOKENS = (
    "SMART-TV",
    "SmartTV",
    "Smart TV",
    "HbbTV",
    "CrKey",
    "AppleTV",
    "Roku",
    "AFT",
    "BRAVIA",
)
_MOBILE_OS = {
    "iOS",
    "Android",
    "Windows Phone",
    "BlackBerry OS",
    "KaiOS",
    "Firefox OS",
    "HarmonyOS",
}
_DESKTOP_OS = {
    "Windows",
    "Mac OS X",
    "Linux",
    "Ubuntu",
    "Chrome OS",
    "Fedora",
    "Debian",
    "FreeBSD",
    "OpenBSD",
    "NetBSD",
    "Solaris",
}


def device_class(
    agent: str, os_family: str | None, device_family: str | None, brand: str | None
) -> str | None:
    """desktop, mobile, tablet or ctv from ua-parser's answer; None for crawlers and unknowns.

    ua-parser's rules name the device model; the class follows from the model family
    (``iPad``, ``Generic_Android_Tablet``, TV platforms) and, for Android, from the
    ``Mobile`` token that Android phones send and tablets leave out.
    """
    if device_family == "Spider":
        return None
    family = device_family or ""
    if (
        os_family in _CTV_OS
        or brand == "Generic_Inettv"
        or "TV" in family
        or any(token in agent for token in _CTV_TOKENS)
    ):
        return "ctv"
    if (
        family.startswith(("iPad", "Kindle"))
        or "Tablet" in family
        or brand == "Generic_Android_Tablet"
        or (os_family == "Android" and "Mobile" not in agent)
    ):
        return "tablet"
    if (
        os_family in _MOBILE_OS
        or family.startswith(("iPhone", "iPod"))
        or "Smartphone" in family
        or "Mobi" in agent
    ):
        return "mobile"
    if os_family in _DESKTOP_OS or family == "Mac":
        return "desktop"
    return None


# ---------------------------------------------------------------- dimensions


def resolve_campaigns(
    event_time: pa.ChunkedArray,
    campaign_id: pa.ChunkedArray,
    ad_creative_id: pa.ChunkedArray | None,
    dims: Dimensions | None,
) -> tuple[pa.ChunkedArray | pa.Array, pa.Array]:
    """(campaign id, advertiser) per event, from the dimension versions true at its time.

    The campaign is the event's own, else (when ``ad_creative_id`` is given) its
    creative's; null while unknown.
    """
    n = len(event_time)
    campaigns = dims.campaigns if dims is not None else None
    creatives = dims.creatives if dims is not None else None
    times = _micros(event_time)
    campaign: pa.ChunkedArray | pa.Array = campaign_id
    if ad_creative_id is not None and creatives is not None and creatives.num_rows:
        version = version_at(ad_creative_id, times, creatives, "ad_creative_id")
        from_creative = pc.take(creatives.column("campaign_id"), _masked(version))
        campaign = pc.coalesce(campaign_id, from_creative)
    if campaigns is None or not campaigns.num_rows or n == 0:
        return campaign, pa.nulls(n, pa.string())
    version = version_at(campaign, times, campaigns, "campaign_id")
    return campaign, pc.take(campaigns.column("advertiser"), _masked(version)).combine_chunks()


def version_at(
    keys: pa.ChunkedArray | pa.Array, times: np.ndarray, versions: pa.Table, key: str
) -> np.ndarray:
    """Per row, the index of the version of its key whose [valid_from, valid_to) holds its time.

    -1 where the key is null or unknown, or no version covers the time. Vectorized: the
    version boundaries (few) cut time into slots; (key, slot) → version is a small table.

    >>> from datetime import datetime, UTC
    >>> t = lambda d: datetime(2026, 1, d, tzinfo=UTC)
    >>> v = pa.table({"k": ["a", "a"], "valid_from": pa.array([t(1), t(5)], pa.timestamp("us", "UTC")),
    ...               "valid_to": pa.array([t(5), None], pa.timestamp("us", "UTC"))})
    >>> ts = _micros(pa.chunked_array([pa.array([t(1), t(4), t(5), t(9)], pa.timestamp("us", "UTC"))]))
    >>> version_at(pa.array(["a", "a", "a", "b"]), ts, v, "k").tolist()
    [0, 0, 1, -1]
    """
    n = len(keys)
    if n == 0 or versions.num_rows == 0:
        return np.full(n, -1, dtype=np.int64)
    starts = _micros(versions.column("valid_from"))
    ends = versions.column("valid_to")
    end_values = _micros(ends)
    open_ended = pc.is_null(ends).to_numpy(zero_copy_only=False)
    # Slots between consecutive boundaries; a version covers slots [rank(start), rank(end)).
    bounds = np.unique(np.concatenate([starts, end_values[~open_ended]]))
    first_slot = np.searchsorted(bounds, starts)
    end_slot = np.where(open_ended, len(bounds), np.searchsorted(bounds, end_values))
    dim_keys = versions.column(key).combine_chunks()
    distinct_keys = pc.unique(dim_keys)
    key_code = pc.index_in(dim_keys, distinct_keys).to_numpy(zero_copy_only=False)
    width = len(bounds) + 1
    lookup = np.full(len(distinct_keys) * width, -1, dtype=np.int64)
    for v in range(versions.num_rows):  # few versions: a plain loop over them
        base = key_code[v] * width
        lookup[base + first_slot[v] + 1 : base + end_slot[v] + 1] = v
    row_array = joined(keys)
    row_code = pc.fill_null(pc.index_in(row_array, distinct_keys), -1).to_numpy(
        zero_copy_only=False
    )
    slot = np.searchsorted(bounds, times, side="right")  # 0 = before every boundary
    found = lookup[np.maximum(row_code, 0) * width + slot]
    return np.where((row_code >= 0) & (times != _NO_TIME), found, -1)


_NO_TIME = np.iinfo(np.int64).min


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds; nulls become a value no version covers."""
    values = pc.cast(column, pa.timestamp("us")).cast(pa.int64())
    return pc.fill_null(values, _NO_TIME).to_numpy(zero_copy_only=False).astype(np.int64)


def _masked(index: np.ndarray) -> pa.Array:
    """Take-indices with -1 as null (take yields null there)."""
    return pa.array(index, pa.int64(), mask=index < 0)
