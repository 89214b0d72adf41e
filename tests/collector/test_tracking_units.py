"""The tracking endpoints' pure parts: strict parameters, signatures, click ids, redirect
targets, IP privacy, the records they land, and Firehose delivery framing."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from advertisex.collector.firehose_http import frame_delivery
from advertisex.collector.responses import ApiError
from advertisex.collector.tracking import records
from advertisex.collector.tracking.clickids import new_click_id, read_click_id
from advertisex.collector.tracking.links import click_url
from advertisex.collector.tracking.params import ParamError, parse_link, parse_query
from advertisex.collector.tracking.redirect import check_destination, host_allowed, with_parameter
from advertisex.collector.tracking.signing import Keys, canonical, sign_url, signature
from advertisex.collector.tracking.visitor import Hit, Visitor, Visitors, is_prefetch
from advertisex.config import Settings, load_settings
from advertisex.errors import ConfigError, UserInputError


def parse(raw: bytes, max_bytes: int = 200, max_parameters: int = 5) -> dict[str, str]:
    return parse_query(raw, max_bytes=max_bytes, max_parameters=max_parameters)


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"a=" + b"x" * 300, 414, "query_too_long"),
        (b"a=caf\xc3", 400, "query_invalid_utf8"),  # raw byte, truncated UTF-8
        (b"a=%ff", 400, "query_invalid_utf8"),  # percent-escaped byte that is not UTF-8
        (b"a=1&b=2&a=3", 400, "query_duplicate_parameter"),
        (b"a&b&c&d&e&f", 400, "query_too_many_parameters"),
    ],
)
def test_unreadable_queries_are_refused_with_stable_codes(
    raw: bytes, status: int, code: str
) -> None:
    with pytest.raises(ParamError) as caught:
        parse(raw)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_queries_decode_plus_and_percent_escapes_and_keep_blank_values() -> None:
    assert parse(b"a=caf%C3%A9+au+lait&b=&c=%E2%82%AC") == {"a": "café au lait", "b": "", "c": "€"}
    assert parse(b"flag&&x=1%2B1=2&y") == {"flag": "", "x": "1+1=2", "y": ""}
    from urllib.parse import parse_qsl

    query = "a=1&b=%20x+y&c&d=%3D%26&e=&&f=%F0%9F%99%82"
    assert parse(query.encode(), max_parameters=9) == dict(parse_qsl(query, keep_blank_values=True))


def test_a_signature_covers_every_parameter_whatever_their_order_or_escaping() -> None:
    params = {"campaign_id": "c 1", "to": "https://shop.example/p?a=1&b=é"}
    sig = signature(params, "k")
    assert signature(dict(reversed(params.items())), "k") == sig
    assert canonical({**params, "sig": sig}) == canonical(params)
    assert signature({**params, "to": "https://evil.example/"}, "k") != sig
    assert signature(params, "other key") != sig
    keys = Keys(SecretStr("k"), {"c2": SecretStr("k2")})
    keys.check({**params, "sig": sig}, "c 1")
    for changed, code in [
        ({**params, "sig": sig, "extra": "1"}, "signature_invalid"),
        ({**params, "sig": sig[:-1] + ("A" if sig[-1] != "A" else "B")}, "signature_invalid"),
        (params, "signature_missing"),
    ]:
        with pytest.raises(ParamError) as caught:
            keys.check(changed, "c 1")
        assert (caught.value.status, caught.value.code) == (403, code)
    with pytest.raises(ParamError, match="signature does not match"):
        keys.check({**params, "sig": sig}, "c2")  # c2 signs with its own key
    with pytest.raises(ParamError) as caught:
        Keys(None, {}).check({**params, "sig": sig}, "c 1")
    assert caught.value.code == "signing_not_configured"


def test_sign_url_round_trips_through_the_query_parser() -> None:
    url = sign_url("https://t.example/v1/c?placement=top", {"to": "https://s.example/?q=a b"}, "k")
    query = url.split("?", 1)[1].encode()
    params = parse(query)
    assert params["placement"] == "top" and params["to"] == "https://s.example/?q=a b"
    Keys(SecretStr("k"), {}).check(params, None)
    with pytest.raises(ValueError, match="twice"):
        sign_url("https://t.example/v1/c?to=x", {"to": "y"}, "k")


def test_a_link_that_verified_passes_again_without_its_hmac(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from advertisex.collector.tracking import signing

    url = sign_url("/v1/c", {"campaign_id": "c1", "to": "https://s.example/"}, "k")
    query = url.split("?", 1)[1].encode()
    tampered = query.replace(b"s.example", b"e.example")
    keys = Keys(SecretStr("k"), {})
    computed = []
    real = signing.signature
    monkeypatch.setattr(signing, "signature", lambda *a: computed.append(a) or real(*a))
    for _ in range(3):
        keys.check(parse(query), "c1", query=query)
    assert len(computed) == 1  # the same raw link: verified once
    for _ in range(2):  # a refusal is never remembered
        with pytest.raises(ParamError, match="signature does not match"):
            keys.check(parse(tampered), "c1", query=tampered)
    assert len(computed) == 3
    with pytest.raises(ParamError, match="no signing key"):
        Keys(None, {}).check(parse(query), "c1", query=query)  # remembered per key set
    monkeypatch.setattr(signing, "VERIFIED_LINKS", 2)  # bounded: the oldest goes first
    others = [
        sign_url("/v1/c", {"campaign_id": "c1", "to": f"https://s.example/{n}"}, "k")
        .split("?", 1)[1]
        .encode()
        for n in range(2)
    ]
    del computed[3:]  # signing them counted too
    for other in others:
        keys.check(parse(other), "c1", query=other)
    keys.check(parse(query), "c1", query=query)
    assert len(computed) == 6


def test_click_ids_name_campaign_and_user_and_are_unique() -> None:
    ids = {new_click_id("cmp-1", "user 7 ✓") for _ in range(100)}
    assert len(ids) == 100
    assert {read_click_id(i) for i in ids} == {("cmp-1", "user 7 ✓")}
    for foreign in ["abc", "c1.", "c1.!!!", "c1." + base64.urlsafe_b64encode(b"x" * 20).decode()]:
        assert read_click_id(foreign) is None


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "https://shop.example/\r\nSet-Cookie: x=1",
        "https://shop.example/%0d%0a",  # encoded: harmless text, but checked after decoding
        "//evil.example/",
        "/relative",
        "https://user@evil.example/",
        "https://shop.example:99999/",
        "https:\\\\evil.example",
        "https://shop.example/a b",
        "ftp://shop.example/",
        "https://bücher.example/",
    ],
)
def test_unsafe_destinations_are_refused(url: str) -> None:
    if "%0d" in url:  # the query parser decodes %0d%0a before the check sees it
        url = url.replace("%0d%0a", "\r\n")
    with pytest.raises(ParamError) as caught:
        check_destination(url)
    assert (caught.value.status, caught.value.code) == (403, "destination_invalid")


def test_allow_list_and_click_id_parameter() -> None:
    assert check_destination("https://Shop.Example:8443/p?x=1#top") == "shop.example"
    allowed = ("shop.example", "*.brand.example")
    assert [
        host_allowed(h, allowed) for h in ("shop.example", "a.b.brand.example", "brand.example")
    ] == [True, True, True]
    assert [
        host_allowed(h, allowed)
        for h in ("evilshop.example", "brand.example.evil", "x.shop.example")
    ] == [False, False, False]
    assert host_allowed("anything.example", ())
    assert with_parameter("https://s.example/p?x=1#top", "cid", "c1.a/b") == (
        "https://s.example/p?x=1&cid=c1.a%2Fb#top"
    )
    assert with_parameter("https://s.example", "cid", "v") == "https://s.example?cid=v"


def settings(**tracking: Any) -> Settings:
    base = load_settings()
    return base.model_copy(
        update={
            "collector": base.collector.model_copy(
                update={"tracking": base.collector.tracking.model_copy(update=tracking)}
            )
        }
    )


def hit_from(host: str, headers: dict[str, str]) -> Hit:
    """What the visitor reader looks at: the client and the raw headers."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Hit("GET", b"", raw, (host, 5000), "http")


def test_ip_privacy_modes_and_the_ivt_range_checked_on_the_whole_address() -> None:
    request = hit_from("198.51.100.77", {"user-agent": "UA", "referer": "https://n.example/a"})
    truncated = Visitors(settings()).read(request)
    assert (truncated.ip, truncated.ivt_ip_range) == ("198.51.100.0/24", "198.51.100.0/24")
    v6 = Visitors(settings()).read(hit_from("2001:db8:1:2::5", {}))
    assert v6.ip == "2001:db8:1::/48"
    hashed = Visitors(settings(ip_privacy="hash", ip_hash_key=SecretStr("s"))).read(request)
    assert hashed.ip is not None and hashed.ip.startswith("h-") and "198" not in hashed.ip
    assert hashed.ivt_ip_range == "198.51.100.0/24"
    kept = Visitors(settings(ip_privacy="keep")).read(request)
    assert (kept.ip, kept.ivt_ip_range) == ("198.51.100.77", None)  # the processor checks it
    with pytest.raises(ConfigError, match="ip_hash_key"):
        Visitors(settings(ip_privacy="hash"))


def test_prefetch_headers_and_the_user_cookie() -> None:
    def prefetch(**headers: str) -> bool:
        return is_prefetch(hit_from("10.0.0.1", headers))

    assert prefetch(**{"Sec-Purpose": "prefetch;prerender"})
    assert prefetch(purpose="prefetch") and prefetch(**{"X-Moz": "prefetch"})
    assert prefetch(**{"X-Purpose": "preview"})
    assert not prefetch(**{"User-Agent": "Mozilla/5.0"})
    visitors = Visitors(settings())
    cookies = hit_from("10.0.0.1", {"Cookie": 'a=1; adx_uid="u-42"; adx_uidx=no'})
    assert visitors.read(cookies).cookie_user == "u-42"
    assert visitors.read(hit_from("10.0.0.1", {"Cookie": "adx_uidx=no"})).cookie_user is None


VISITOR = Visitor(
    "2026-11-20T10:00:00+00:00", "UA", "10.0.0.0/24", None, "https://news.example/a?b", None
)


def test_an_impression_record_takes_contract_fields_and_the_request_facts_win() -> None:
    params = {
        "ad_creative_id": "cr",
        "cpm": "2.5",
        "ip": "1.2.3.4",
        "user_agent": "fake",
        "cb": "9",
        "sig": "x",
    }
    record = records.impression(params, VISITOR, "u1")
    assert record == {
        "timestamp": "2026-11-20T10:00:00+00:00",
        "ad_creative_id": "cr",
        "cb": "9",
        "user_agent": "UA",
        "ip": "10.0.0.0/24",
        "referrer": "https://news.example/a?b",
        "user_id": "u1",
        "cost": 0.0025,
        "website": "news.example",
        "intake": "pixel",
    }
    # built without None values (no field, as the line leaves them out), in the same order
    assert records.impression({"user_id": " "}, VISITOR, None) == {
        "timestamp": "2026-11-20T10:00:00+00:00",
        "user_agent": "UA",
        "ip": "10.0.0.0/24",
        "referrer": "https://news.example/a?b",
        "website": "news.example",
        "intake": "pixel",
    }
    assert records.impression({"cpm": "inf"}, VISITOR, None)["cost"] == "inf"  # quarantined later
    assert orjson.loads(records.line(record))["website"] == "news.example"
    assert b"ivt_ip_range" not in records.line(record)


def test_click_url_refuses_what_the_collector_would_refuse() -> None:
    s = settings(
        click_secret=SecretStr("k"),
        redirect_allow=("shop.example",),
        public_url="https://t.example/",
    )
    url = click_url(s, "https://shop.example/x", "c1", {"ad_creative_id": "cr"})
    assert url.startswith("https://t.example/v1/c?campaign_id=c1&ad_creative_id=cr&to=https%3A")
    with pytest.raises(UserInputError, match="redirect_allow"):
        click_url(s, "https://other.example/", "c1")
    with pytest.raises(UserInputError, match="javascript"):
        click_url(s, "javascript:alert(1)", "c1")
    with pytest.raises(ConfigError, match="no key"):
        click_url(settings(), "https://shop.example/x", "c1")


def firehose_body(datas: list[bytes]) -> bytes:
    """The request body AWS documents for HTTP endpoint delivery."""
    return orjson.dumps(
        {
            "requestId": "ed4acda5-034f-9f42-bba1-f29aea6d7d8f",
            "timestamp": 1578090901599,
            "records": [{"data": base64.b64encode(d).decode()} for d in datas],
        }
    )


def test_firehose_delivery_frames_objects_and_keeps_unreadable_records_for_quarantine() -> None:
    lines, count, request_id = frame_delivery(
        firehose_body([b'{"a":1}\n', b'{"b":2}{"c":3}', b"", b"hello"]), None, 1 << 20
    )
    assert request_id == "ed4acda5-034f-9f42-bba1-f29aea6d7d8f" and count == 4
    landed = [orjson.loads(line) for line in lines.splitlines()]
    assert landed[:3] == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert landed[3]["_intake_error"].startswith("json_invalid: record 3")
    assert landed[3]["data"] == "hello"
    for body, code in [
        (b"[]", "records_missing"),
        (b"{", "json_invalid"),
        (orjson.dumps({"records": [{"data": "%%%"}]}), "record_invalid"),
        (orjson.dumps({"records": [{}]}), "record_invalid"),
    ]:
        with pytest.raises(ApiError) as caught:
            frame_delivery(body, None, 1 << 20)
        assert (caught.value.status, caught.value.code) == (400, code)


def test_bulk_histogram_updates_equal_one_observe_per_value() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from advertisex.collector.metrics import observe_all

    values = [0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.2, 5.0]
    one, bulk = (
        Histogram("h", "h", buckets=(0.0005, 0.001, 0.01, 1.0), registry=CollectorRegistry())
        for _ in range(2)
    )
    for value in values:
        one.observe(value)
    observe_all(bulk, values)

    def samples(histogram: Histogram) -> list[tuple[str, dict[str, str], float]]:
        family = next(iter(histogram.collect()))
        return [(s.name, s.labels, s.value) for s in family.samples if s.name != "h_created"]

    assert samples(bulk) == samples(one)
    assert ("h_bucket", {"le": "0.0005"}, 2.0) in samples(bulk)  # a bound is inclusive


def test_commit_groups_reach_their_histograms_by_a_scrape_or_the_bound(monkeypatch) -> None:
    from advertisex.collector import metrics as metrics_module
    from advertisex.collector.metrics import CollectorMetrics

    def count(metrics: CollectorMetrics, name: str) -> float:
        family = next(iter(getattr(metrics, name).collect()))
        found = [s.value for s in family.samples if s.name.endswith("_count")]
        return sum(found)

    metrics = CollectorMetrics()
    for seconds, requests in ((0.0004, 3), (0.002, 9), (0.03, 1)):
        metrics.observe_commit("clicks", seconds, requests)
    assert count(metrics, "fsync") == 0  # queued on the writer's side, not yet added
    text = metrics.render().decode()
    assert 'advertisex_collector_fsync_seconds_count{source="clicks"} 3.0' in text
    assert 'advertisex_collector_commit_group_requests_sum{source="clicks"} 13.0' in text
    assert 'advertisex_collector_fsync_seconds_bucket{le="0.0005",source="clicks"} 1.0' in text

    monkeypatch.setattr(metrics_module, "_MAX_QUEUED_COMMITS", 2)
    for _ in range(3):  # with nobody flushing, the queue adds itself once over its bound
        metrics.observe_commit("impressions", 0.001, 2)
    assert count(metrics, "group_size") == 3 + 3


def test_a_remembered_link_reads_the_same_and_each_click_gets_its_own_parameters() -> None:
    raw = b"campaign_id=c%201&to=https%3A%2F%2Fshop.example%2F&sig=s"
    first = parse_link(raw, max_bytes=999, max_parameters=9)
    assert first == parse_query(raw, max_bytes=999, max_parameters=9)
    first["to"] = "https://evil.example/"  # a caller's change never reaches the next click
    again = parse_link(raw, max_bytes=999, max_parameters=9)
    assert again is not first and again["to"] == "https://shop.example/"
    # the limits are part of what is remembered: a link read under looser limits is not
    # let through under stricter ones
    with pytest.raises(ParamError) as too_many:
        parse_link(raw, max_bytes=999, max_parameters=2)
    assert too_many.value.code == "query_too_many_parameters"
    with pytest.raises(ParamError) as too_long:
        parse_link(raw, max_bytes=10, max_parameters=9)
    assert too_long.value.code == "query_too_long"


def test_a_refused_link_is_refused_every_time() -> None:
    raw = b"campaign_id=c&campaign_id=d&to=https%3A%2F%2Fshop.example%2F"
    for _ in range(3):
        with pytest.raises(ParamError) as refused:
            parse_link(raw, max_bytes=999, max_parameters=9)
        assert refused.value.code == "query_duplicate_parameter"


def test_the_redirects_head_is_its_headers_checked_as_uvicorn_checks_them() -> None:
    from advertisex.collector.tracking.redirect import Redirect
    from advertisex.collector.whole import header_lines

    for cookie in (None, "adx_uid=u1; Max-Age=9; Path=/; HttpOnly; SameSite=Lax"):
        answer = Redirect("https://shop.example/a?b=1&adx_click_id=c1.x", cookie)
        assert answer.head == header_lines(answer.raw_headers)
    for location, cookie in (
        ("https://shop.example/\r\nx: y", None),
        ("https://a/", "u=1\r\nx: y"),
    ):
        with pytest.raises(ValueError, match="invalid response header"):
            Redirect(location, cookie)
