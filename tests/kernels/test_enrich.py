"""The enrichment kernel: user agents, hosts, day and hour, dimensions as of event time."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.dims.model import Dimensions
from advertisex.dims.scd import BEGINNING
from advertisex.kernels.enrich import COLUMNS, describe_user_agent, enrich, site_host
from advertisex.model.dims import CAMPAIGNS, CREATIVES
from advertisex.synth import catalog

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CHANGE = datetime(2026, 11, 21, tzinfo=UTC)


def test_every_synthetic_user_agent_gets_its_device_class():
    for device, agents in zip(catalog.DEVICE_TYPES, catalog.USER_AGENTS, strict=True):
        for agent in agents:
            assert describe_user_agent(agent)[0] == device, agent


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
            ("desktop", "Windows", "Edge"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
            ("mobile", "iOS", "Mobile Safari"),
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            (None, None, "Googlebot"),
        ),
        (
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            (None, None, "bingbot"),
        ),
        (
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            (None, None, "AhrefsBot"),
        ),
        ("python-requests/2.31.0", (None, None, "Python Requests")),
        ("curl/8.4.0", (None, None, "curl")),
        ("", (None, None, None)),
        ("complete nonsense", (None, None, None)),
    ],
)
def test_user_agent_samples_including_crawlers(agent, expected):
    assert describe_user_agent(agent) == expected


@pytest.mark.parametrize(
    ("website", "host"),
    [
        ("https://www.news-site-3.com/article/36374", "news-site-3.com"),
        ("HTTP://WWW.Example.COM:8080/a?b=c", "example.com"),
        ("https://user:pw@shop.example.org./cart#top", "shop.example.org"),
        ("https://example.com?q=1", "example.com"),
        ("//cdn.example.net/x.js", "cdn.example.net"),
        ("www.bare-domain.io/path", "bare-domain.io"),
        ("localhost:8080/x", "localhost"),
        ("http://[2001:db8::1]:443/x", "[2001:db8::1]"),
        ("website_6", "website_6"),
        ("Website_6", "website_6"),
        ("", None),
        (None, None),
    ],
)
def test_site_host(website, host):
    assert site_host(pa.chunked_array([pa.array([website], pa.string())])).to_pylist() == [host]


def _impressions(n: int = 0, **columns) -> pa.Table:
    base = {
        "event_time": pa.array([T0] * n, TS),
        "ad_creative_id": ["cr-1"] * n,
        "campaign_id": pa.nulls(n, pa.string()),
        "website": ["https://www.a.com/x"] * n,
        "device_type": pa.nulls(n, pa.string()),
        "user_agent": pa.nulls(n, pa.string()),
    }
    base.update(columns)
    return pa.table(base)


def test_device_type_from_the_record_wins_and_missing_ones_are_filled():
    agent = "Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
    rows = _impressions(
        3,
        device_type=pa.array(["ctv", None, None]),
        user_agent=pa.array([agent, agent, None]),
    )
    out = enrich("impressions", rows)
    assert out.column("device_type").to_pylist() == ["ctv", "tablet", None]
    assert out.column("os").to_pylist() == ["iOS", "iOS", None]
    assert out.column("browser").to_pylist() == ["Mobile Safari", "Mobile Safari", None]


def test_event_date_and_hour_are_utc():
    times = [
        datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 11, 21, 0, 0, tzinfo=UTC),
    ]
    out = enrich("bids", pa.table({"event_time": pa.array(times, TS)}))
    assert out.column("event_date").to_pylist() == [date(2026, 11, 20), date(2026, 11, 21)]
    assert out.column("event_hour").to_pylist() == [23, 0]
    assert out.schema.field("event_hour").type == pa.int8()


def _versions(spec, rows: list[dict]) -> pa.Table:
    filled = [
        {"row_hash": "h", "loaded_at": T0, "source_file": "f", "valid_to": None, **row}
        for row in rows
    ]
    return pa.Table.from_pylist(filled, schema=spec.schema)


DIMS = Dimensions(
    campaigns=_versions(
        CAMPAIGNS,
        [
            {
                "campaign_id": "cmp-1",
                "advertiser": "Acme",
                "valid_from": BEGINNING,
                "valid_to": CHANGE,
            },
            {"campaign_id": "cmp-1", "advertiser": "Acme Group", "valid_from": CHANGE},
            {"campaign_id": "cmp-2", "advertiser": "Zed", "valid_from": BEGINNING},
        ],
    ),
    creatives=_versions(
        CREATIVES,
        [
            # cr-1 moved from cmp-1 to cmp-2 at CHANGE.
            {
                "ad_creative_id": "cr-1",
                "campaign_id": "cmp-1",
                "valid_from": BEGINNING,
                "valid_to": CHANGE,
            },
            {"ad_creative_id": "cr-1", "campaign_id": "cmp-2", "valid_from": CHANGE},
        ],
    ),
)


def test_campaign_and_advertiser_come_from_the_version_true_at_event_time():
    times = [CHANGE - timedelta(microseconds=1), CHANGE, CHANGE + timedelta(days=3), None]
    rows = _impressions(4, event_time=pa.array(times, TS))
    out = enrich("impressions", rows, DIMS)
    assert out.column("campaign_id").to_pylist() == ["cmp-1", "cmp-2", "cmp-2", None]
    assert out.column("advertiser").to_pylist() == ["Acme", "Zed", "Zed", None]


def test_a_given_campaign_is_kept_and_unknown_creatives_stay_null():
    rows = _impressions(
        3,
        ad_creative_id=pa.array(["cr-1", "cr-404", None]),
        campaign_id=pa.array(["cmp-1", None, None]),
        event_time=pa.array([CHANGE + timedelta(hours=1)] * 3, TS),
    )
    out = enrich("impressions", rows, DIMS)
    assert out.column("campaign_id").to_pylist() == ["cmp-1", None, None]
    assert out.column("advertiser").to_pylist() == ["Acme Group", None, None]


def test_clicks_get_the_advertiser_as_of_their_time():
    rows = pa.table(
        {
            "event_time": pa.array([T0, CHANGE], TS),
            "campaign_id": ["cmp-1", "cmp-1"],
        }
    )
    out = enrich("clicks", rows, DIMS)
    assert out.column("advertiser").to_pylist() == ["Acme", "Acme Group"]


def test_without_dimensions_campaigns_stay_as_they_are():
    out = enrich("impressions", _impressions(2, campaign_id=pa.array(["c", None])), None)
    assert out.column("campaign_id").to_pylist() == ["c", None]
    assert out.column("advertiser").null_count == 2


def test_row_count_and_order_are_kept_and_enrich_is_idempotent():
    agents = [a for pool in catalog.USER_AGENTS for a in pool] + catalog.BOT_USER_AGENTS
    n = 500
    rows = _impressions(
        n,
        user_agent=pa.array([agents[i % len(agents)] for i in range(n)]),
        website=pa.array([f"https://www.s{i % 7}.com/p/{i}" for i in range(n)]),
        event_time=pa.array([T0 + timedelta(hours=i) for i in range(n)], TS),
        marker=pa.array(range(n)),
    )
    once = enrich("impressions", rows, DIMS)
    assert once.num_rows == n
    assert once.column("marker").to_pylist() == list(range(n))
    assert enrich("impressions", once, DIMS).equals(once)
    assert set(COLUMNS["impressions"]) <= set(once.column_names)


def test_few_valued_columns_come_as_codes_of_their_texts():
    # The agents, their OS and browser, the hosts: moved and written as codes, each text
    # hashed once (enrich.parse_user_agents) — the same texts as before, as dictionaries
    # holding each distinct value once (what the Parquet writer takes as they are).
    agents = [a for pool in catalog.USER_AGENTS for a in pool][:5]
    n = 40
    texts = [agents[i % 5] if i % 7 else None for i in range(n)]
    rows = _impressions(
        n,
        user_agent=pa.chunked_array([texts[:15], texts[15:]]),
        website=pa.array(
            [None if i % 9 == 0 else f"https://www.s{i % 3}.com/{i}" for i in range(n)]
        ),
    )
    out = enrich("impressions", rows, DIMS)
    for name in ("user_agent", "os", "browser", "site_host"):
        column = out.column(name).combine_chunks()
        assert pa.types.is_dictionary(column.type), name
        values = column.dictionary.to_pylist()
        assert None not in values and len(values) == len(set(values)), name
    assert out.column("user_agent").to_pylist() == texts
    assert out.column("os").to_pylist() == [
        None if t is None else describe_user_agent(t)[1] for t in texts
    ]
    assert out.column("site_host").to_pylist() == [
        None if i % 9 == 0 else f"s{i % 3}.com" for i in range(n)
    ]


def test_empty_input():
    out = enrich("impressions", _impressions(0), DIMS)
    assert out.num_rows == 0
    assert set(COLUMNS["impressions"]) <= set(out.column_names)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=30))
def test_site_host_takes_any_text_and_keeps_the_row_count(websites):
    hosts = site_host(pa.chunked_array([pa.array(websites, pa.string())])).to_pylist()
    assert len(hosts) == len(websites)
    for website, host in zip(websites, hosts, strict=True):
        if website is None:
            assert host is None
        elif host is not None:
            assert host == host.lower() and not host.startswith("www.")


@settings(max_examples=40, deadline=None)
@given(
    agents=st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(
                [group[0] for group in catalog.USER_AGENTS] + catalog.BOT_USER_AGENTS[:2]
            ),
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(0, 12), max_size=3),
)
def test_user_agents_in_chunks_are_described_as_in_one_array(agents, cuts) -> None:
    """A piece's agents come in the chunks of its segments: they are encoded chunk by chunk
    into one dictionary (not joined into a copy first), to the same device, OS, browser
    and codes as one array of them gives."""
    from advertisex.kernels.enrich import parse_user_agents

    whole = pa.array(agents, pa.string())
    bounds = sorted({0, len(agents), *(min(c, len(agents)) for c in cuts)})
    chunked = pa.chunked_array(
        [whole.slice(a, b - a) for a, b in itertools.pairwise(bounds)], pa.string()
    )
    expected = [part.to_pylist() for part in parse_user_agents(whole)]
    assert [part.to_pylist() for part in parse_user_agents(chunked)] == expected
