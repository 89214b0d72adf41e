"""The tracking endpoints and Firehose HTTP delivery over real HTTP against ``advertisex serve``.

One server takes a whole day of traffic — a publisher page with a pixel and two links,
an advertiser's postbacks, a Firehose stream's deliveries, bots, prefetches and every
malformed request the endpoints promise to refuse — then is stopped and processed once;
the tests check the answers and what reached the tables.
"""

from __future__ import annotations

import base64
import gzip
import html.parser
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import orjson
import pytest
from collector_helpers import PATIENT_SECONDS, ServerProcess, impressions

import advertisex
from advertisex.collector.access import hash_key
from advertisex.collector.tracking.signing import sign_url, signature

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "link-secret"
PARTNER_KEY = "adx_partner_key"
AWS_KEY = "adx_firehose_key"
POSTBACK_SECRET = "postback-secret"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
STREAM_ARN = "arn:aws:firehose:us-east-1:123456789012:deliverystream/AdvertiseX-dev-impressions"
# The example request of AWS's HTTP endpoint delivery specification, as documented.
AWS_EXAMPLE = {
    "requestId": "ed4acda5-034f-9f42-bba1-f29aea6d7d8f",
    "timestamp": 1578090901599,
    "records": [{"data": "aGVsbG8="}, {"data": "aGVsbG8gd29ybGQ="}],
}


class Page(html.parser.HTMLParser):
    """The pixel and the links of a publisher page, as a browser would find them."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img" and found.get("src"):
            self.images.append(found["src"] or "")
        if tag == "a" and found.get("href"):
            self.links.append(found["href"] or "")


def publisher_page(base: str) -> str:
    link = {"campaign_id": "cmp-1", "ad_creative_id": "cr-1", "impression_id": "page-imp-1"}
    first = sign_url(f"{base}/v1/c", {**link, "to": "https://shop.example/sale?src=ad"}, SECRET)
    second = sign_url(f"{base}/v1/c", {**link, "to": "https://www.brand.example/"}, SECRET)
    pixel = f"{base}/v1/i?campaign_id=cmp-1&ad_creative_id=cr-1&impression_id=page-imp-1&cpm=2.5"
    return f"""<!doctype html><html><body><article>News of the day.</article>
      <div class="ad"><a href="{html_escape(first)}">Sale!</a>
        <noscript><img src="{html_escape(pixel)}" width="1" height="1" alt=""></noscript>
        <a href="{html_escape(second)}">Brand</a></div></body></html>"""


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def firehose_delivery(
    http: httpx.Client, body: dict[str, Any], request_id: str, key: str = AWS_KEY
) -> httpx.Response:
    return http.post(
        "/v1/firehose",
        # mtime=0: a retry sends the very bytes (gzip's header would carry the second it was
        # compressed in, and the idempotency fingerprint is of the body as sent)
        content=gzip.compress(orjson.dumps(body), mtime=0),
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-Amz-Firehose-Protocol-Version": "1.0",
            "X-Amz-Firehose-Request-Id": request_id,
            "X-Amz-Firehose-Source-Arn": STREAM_ARN,
            "X-Amz-Firehose-Access-Key": key,
            "X-Amz-Firehose-Common-Attributes": '{"commonAttributes":{}}',
        },
    )


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run the traffic, stop the server, process the landing zone; yield the answers."""
    data_dir = tmp_path_factory.mktemp("tracking") / "data"
    keys = [
        {"name": "partner", "sha256": hash_key(PARTNER_KEY), "sources": ["postback"]},
        {"name": "aws", "sha256": hash_key(AWS_KEY), "sources": ["impressions"]},
    ]
    server = ServerProcess(
        data_dir,
        ADVERTISEX_COLLECTOR__API_KEYS=orjson.dumps(keys).decode(),
        ADVERTISEX_COLLECTOR__TRACKING__CLICK_SECRET=SECRET,
        ADVERTISEX_COLLECTOR__TRACKING__REDIRECT_ALLOW='["shop.example", "*.brand.example"]',
        ADVERTISEX_COLLECTOR__TRACKING__MAX_QUERY_BYTES="1024",
        ADVERTISEX_COLLECTOR__TRACKING__POSTBACK_SECRET=POSTBACK_SECRET,
    ).start()
    got: dict[str, Any] = {"server": server}
    try:
        # Patient clients (httpx's default of 5 s was once too short for a collector's
        # first upload on a loaded machine, see collector_helpers)
        with httpx.Client(
            base_url=server.url, timeout=PATIENT_SECONDS, headers={"User-Agent": CHROME}
        ) as browser:
            _browse(browser, server.url, got)
        with httpx.Client(base_url=server.url, timeout=PATIENT_SECONDS) as http:
            _partners(http, got)
            _hostile(http, server.url, got)
            got["metrics"] = http.get("/metrics").text
            got["openapi"] = http.get("/openapi.json").json()
    finally:
        assert server.stop() == 0, server.log()
    ax = advertisex.open(data_dir=data_dir)
    report = ax.process()
    assert all(account.balanced for account in report.accounts.values())
    got["ax"] = ax
    yield got


def _browse(browser: httpx.Client, base: str, got: dict[str, Any]) -> None:
    page = Page()
    page.feed(publisher_page(base))
    got["page"] = page
    referer = {"Referer": "https://news.example/today"}
    got["pixel"] = browser.get(page.images[0], headers=referer)
    got["reload"] = browser.get(page.images[0], headers=referer)
    got["clicks"] = [browser.get(link, headers=referer) for link in page.links]
    got["head"] = browser.head(f"{base}/v1/i?ad_creative_id=cr-1&impression_id=head-1")
    got["prefetch"] = browser.get(
        f"{base}/v1/i?ad_creative_id=cr-1&impression_id=prefetch-1",
        headers={"Sec-Purpose": "prefetch"},
    )
    got["bot"] = browser.get(
        f"{base}/v1/i?ad_creative_id=cr-1&impression_id=bot-1&user_id=crawler&website=n.example",
        headers={"User-Agent": GOOGLEBOT},
    )
    got["datacenter"] = browser.get(
        f"{base}/v1/i?ad_creative_id=cr-1&impression_id=dc-1&user_id=dc-user&website=n.example",
        headers={"X-Forwarded-For": "198.51.100.9"},  # uvicorn trusts it from 127.0.0.1
    )


def _partners(http: httpx.Client, got: dict[str, Any]) -> None:
    first, second = (
        parse_qs(urlsplit(r.headers["location"]).query)["adx_click_id"][0] for r in got["clicks"]
    )
    got["click_ids"] = (first, second)
    postback = {"click_id": first, "type": "purchase", "value": "49.90", "currency": "EUR"}
    got["postback"] = http.get(
        "/v1/postback", params={**postback, "txn": "order-1", "key": PARTNER_KEY}
    )
    got["postback_retry"] = http.post(
        "/v1/postback",
        data={**postback, "txn": "order-1"},
        headers={"Authorization": f"Bearer {PARTNER_KEY}"},
    )
    got["postback_unauthenticated"] = http.get("/v1/postback", params={**postback, "txn": "o-2"})
    signed = {"click_id": second, "type": "signup", "txn": "signup-7"}
    got["postback_signed"] = http.get(
        "/v1/postback", params={**signed, "sig": signature(signed, POSTBACK_SECRET)}
    )
    got["postback_forged"] = http.get(
        "/v1/postback", params={**signed, "txn": "signup-8", "sig": signature(signed, "guess")}
    )
    got["postback_foreign_click"] = http.get(
        "/v1/postback", params={"click_id": "their-click-9", "txn": "o-3", "key": PARTNER_KEY}
    )
    got["firehose_example"] = firehose_delivery(http, AWS_EXAMPLE, AWS_EXAMPLE["requestId"])
    records = [{"data": base64.b64encode(orjson.dumps(r)).decode()} for r in impressions(3, "fh")]
    body = {"requestId": "req-2", "timestamp": 1578090901599, "records": records}
    got["firehose"] = firehose_delivery(http, body, "req-2")
    got["firehose_retry"] = firehose_delivery(http, body, "req-2")
    got["firehose_bad_key"] = firehose_delivery(http, body, "req-3", key="wrong")


def _hostile(http: httpx.Client, base: str, got: dict[str, Any]) -> None:
    link = {"campaign_id": "cmp-1", "to": "https://shop.example/"}
    signed = sign_url("/v1/c", link, SECRET)
    long_value = "x" * 2000

    def click(query: str) -> httpx.Response:
        return http.get(f"/v1/c?{query}")

    def unsigned(to: str) -> str:
        return f"campaign_id=cmp-1&to={quote(to, safe='')}&sig=AAAA"

    def signed_to(to: str) -> str:
        return sign_url("/v1/c", {"campaign_id": "cmp-1", "to": to}, SECRET).split("?", 1)[1]

    got["refused"] = {
        "tampered": click(signed.split("?", 1)[1].replace("shop.example", "evil.example")),
        "unsigned": click("campaign_id=cmp-1&to=https%3A%2F%2Fshop.example%2F"),
        "not_allowed": click(signed_to("https://evil.example/")),
        "javascript": click(signed_to("javascript:alert(document.cookie)")),
        "data": click(signed_to("data:text/html,<script>alert(1)</script>")),
        "header_injection": click(unsigned("https://shop.example/\r\nSet-Cookie: a=b")),
        "long": click(f"campaign_id=cmp-1&to=https%3A%2F%2Fshop.example%2F&pad={long_value}"),
        "utf8": click("campaign_id=cmp-%ff&to=https%3A%2F%2Fshop.example%2F"),
        "duplicate": click("campaign_id=a&campaign_id=b&to=https%3A%2F%2Fshop.example%2F"),
    }
    got["broken_pixels"] = {
        "long": http.get(f"/v1/i?ad_creative_id=cr&pad={long_value}"),
        "utf8": http.get("/v1/i?ad_creative_id=%C3%28"),
        "duplicate": http.get("/v1/i?impression_id=a&impression_id=b"),
    }


def rows(ax: Any, sql: str) -> list[dict[str, Any]]:
    return ax.query(sql).to_pylist()


# ----------------------------------------------------------------------------- the page


def test_the_page_lands_exactly_one_impression_and_one_click_per_link(day) -> None:
    pixel = day["pixel"]
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
    assert len(pixel.content) == 43 and pixel.content.startswith(b"GIF89a")
    assert "no-store" in pixel.headers["cache-control"]
    assert "adx_uid=" in pixel.headers["set-cookie"]
    assert day["reload"].status_code == 200 and day["reload"].content == pixel.content

    ax = day["ax"]
    [imp] = rows(ax, "select * from curated.impressions where impression_id = 'page-imp-1'")
    user = re.search(r"adx_uid=([^;]+)", pixel.headers["set-cookie"]).group(1)  # type: ignore[union-attr]
    assert (imp["user_id"], imp["campaign_id"], imp["website"]) == (user, "cmp-1", "news.example")
    assert imp["cost"] == pytest.approx(0.0025) and imp["ip"] == "127.0.0.0/24"
    assert imp["user_agent"] == CHROME and imp["browser"] == "Chrome"

    clicks = rows(ax, f"select * from curated.clicks where user_id = '{user}' order by event_time")
    assert [c["event_id"] for c in clicks] == list(day["click_ids"])
    assert {c["impression_id"] for c in clicks} == {"page-imp-1"}
    matched = rows(ax, "select match, impression_id from marts.attributed_clicks")
    assert {(m["match"], m["impression_id"]) for m in matched} == {("exact", "page-imp-1")}


def test_a_signed_link_redirects_with_the_click_id_and_a_tampered_one_does_not(day) -> None:
    first, second = day["clicks"]
    assert first.status_code == second.status_code == 302
    target = urlsplit(first.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "shop.example", "/sale")
    assert parse_qs(target.query)["src"] == ["ad"]
    assert urlsplit(second.headers["location"]).netloc == "www.brand.example"
    refused = day["refused"]
    for name, code in [
        ("tampered", "signature_invalid"),
        ("unsigned", "signature_missing"),
        ("not_allowed", "destination_not_allowed"),
        ("javascript", "destination_invalid"),
        ("data", "destination_invalid"),
        ("header_injection", "destination_invalid"),
    ]:
        answer = refused[name]
        assert (answer.status_code, answer.json()["code"]) == (403, code), name
        assert "location" not in answer.headers and "set-cookie" not in answer.headers
    for name, status, code in [
        ("long", 414, "query_too_long"),
        ("utf8", 400, "query_invalid_utf8"),
        ("duplicate", 400, "query_duplicate_parameter"),
    ]:
        assert (refused[name].status_code, refused[name].json()["code"]) == (status, code), name


# ----------------------------------------------------------------------------- postbacks


def test_a_postback_attributes_to_its_click_even_where_the_window_rule_would_pick_another(
    day,
) -> None:
    assert day["postback"].json() == {"accepted": 1, "source": "clicks", "event_id": "order-1"}
    retry = day["postback_retry"]
    assert retry.status_code == 200 and retry.headers["idempotent-replayed"] == "true"
    assert day["postback_unauthenticated"].json()["code"] == "api_key_missing"
    assert day["postback_signed"].json()["event_id"] == "signup-7"
    forged = day["postback_forged"]
    assert (forged.status_code, forged.json()["code"]) == (403, "signature_invalid")
    foreign = day["postback_foreign_click"]
    assert (foreign.status_code, foreign.json()["code"]) == (400, "click_id_unknown")

    ax = day["ax"]
    first, second = day["click_ids"]
    conversion, signup = rows(ax, "select * from curated.conversions order by event_id")
    assert (conversion["event_id"], conversion["click_ref"]) == ("order-1", first)
    assert (conversion["conversion_value"], conversion["currency"]) == (49.9, "EUR")
    assert (signup["event_id"], signup["click_ref"]) == ("signup-7", second)
    attributed = {r["event_id"]: r for r in rows(ax, "select * from marts.attributed_conversions")}
    # Last touch by the window rule would be the later click (second); the id decides.
    assert (attributed["order-1"]["attribution"], attributed["order-1"]["last_touch_id"]) == (
        "click_id",
        first,
    )
    assert attributed["signup-7"]["last_touch_id"] == second != first


# ----------------------------------------------------------------------------- Firehose


def test_firehose_deliveries_are_answered_in_firehose_shape_and_land(day) -> None:
    example = day["firehose_example"]
    assert example.status_code == 200
    assert example.headers["content-type"] == "application/json"
    assert "content-encoding" not in example.headers
    body = example.json()
    assert body["requestId"] == AWS_EXAMPLE["requestId"] and isinstance(body["timestamp"], int)
    assert day["firehose"].json()["requestId"] == "req-2"
    assert day["firehose_retry"].status_code == 200
    refused = day["firehose_bad_key"]
    assert refused.status_code == 401
    assert refused.json()["requestId"] == "req-3"
    assert refused.json()["errorMessage"].startswith("api_key_invalid")

    ax = day["ax"]
    landed = rows(ax, "select count(*) n from curated.impressions where impression_id like 'fh-%'")
    assert landed == [{"n": 3}]  # the retry of req-2 was not stored again
    texts = rows(ax, "select raw, reasons from curated.quarantine where raw like '%hello%'")
    assert sorted(orjson.loads(t["raw"])["data"] for t in texts) == ["hello", "hello world"]
    assert all(t["reasons"][0] == "json_invalid" for t in texts)


# ----------------------------------------------------------------------------- hostile


def test_broken_pixels_still_answer_a_gif_and_are_quarantined_with_their_reason(day) -> None:
    for name, answer in day["broken_pixels"].items():
        assert (answer.status_code, len(answer.content)) == (200, 43), name
    reasons = [r["reasons"][0] for r in rows(day["ax"], "select reasons from curated.quarantine")]
    assert reasons.count("query_too_long") == 1
    assert reasons.count("query_invalid_utf8") == 1
    assert reasons.count("query_duplicate_parameter") == 1


def test_bots_meet_the_ivt_rules_and_head_or_prefetch_count_nothing(day) -> None:
    for name in ("head", "prefetch", "bot", "datacenter"):
        assert day[name].status_code == 200, name
    ax = day["ax"]
    filtered = rows(ax, "select event_id, rules from curated.filtered order by event_id")
    assert [(f["event_id"], f["rules"]) for f in filtered] == [
        ("bot-1", ["known_crawler_ua"]),
        ("dc-1", ["ip_range:198.51.100.0/24"]),
    ]
    ids = {r["impression_id"] for r in rows(ax, "select impression_id from curated.impressions")}
    assert not ids & {"head-1", "prefetch-1", "bot-1", "dc-1"}


def test_metrics_per_endpoint_openapi_and_status(day) -> None:
    metrics = day["metrics"]
    for endpoint, outcome in [
        ("pixel", "accepted"),
        ("pixel", "replayed"),
        ("pixel", "head"),
        ("pixel", "prefetch"),
        ("pixel", "query_too_long"),
        ("click", "accepted"),
        ("click", "signature_invalid"),
        ("postback", "accepted"),
        ("postback", "replayed"),
        ("firehose_http", "accepted"),
        ("firehose_http", "replayed"),  # the retry of req-2: stored once
        ("firehose_http", "api_key_invalid"),
    ]:
        line = f'advertisex_collector_endpoint_requests_total{{endpoint="{endpoint}",outcome="{outcome}"}}'
        assert line in metrics, line
    assert 'advertisex_collector_endpoint_latency_seconds_count{endpoint="pixel"}' in metrics
    paths = day["openapi"]["paths"]
    assert {"/v1/i", "/v1/c", "/v1/postback", "/v1/firehose"} <= set(paths)
    assert set(paths["/v1/postback"]) == {"get", "post"}

    from advertisex.monitor.gather import Gatherer
    from advertisex.monitor.status import source_rows

    ax = day["ax"]
    sources = {r["source"]: r for r in source_rows(Gatherer(ax.settings, ax.lake).observe())}
    assert sources["impressions"]["last_landed"] and sources["clicks"]["last_landed"]
