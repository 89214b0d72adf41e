"""Garbage through the tracking endpoints and Firehose delivery, in process: never a 5xx,
a pixel is always its GIF, a refused redirect never has a Location."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import quote_from_bytes

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_collector_app import InProcess

NAMES = ["campaign_id", "ad_creative_id", "impression_id", "user_id", "to", "sig", "txn",
         "click_id", "cost", "cpm", "timestamp", "key", "_intake_error", ""]  # fmt: skip
escaped = st.binary(max_size=40).map(lambda b: quote_from_bytes(b, safe=""))
destinations = st.sampled_from(
    ["https://shop.example/", "javascript:alert(1)", "//evil.example", "https://a@b.example",
     "https://xn--bcher-kva.example/ü", "http://[::1]:99999/", "https://shop.example/\r\n"]
).map(lambda u: quote_from_bytes(u.encode(), safe=""))  # fmt: skip
pairs = st.lists(st.tuples(st.sampled_from(NAMES) | escaped, escaped | destinations), max_size=12)
headers = st.fixed_dictionaries(
    {},
    optional={
        "cookie": st.text(max_size=40).filter(str.isascii),
        "referer": st.text(max_size=40).filter(str.isascii),
        "x-forwarded-for": st.sampled_from(["198.51.100.9", "::1", "garbage", "1.2.3.4, 5.6.7.8"]),
        "sec-purpose": st.sampled_from(["prefetch", "prerender"]),
        "authorization": st.text(max_size=20).filter(str.isascii),
    },
).map(lambda h: {k: v.replace("\r", "").replace("\n", "") for k, v in h.items()})


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(
        tmp_path_factory.mktemp("tracking-app") / "data",
        segment_max_age_seconds=0.2,
        tracking={"click_secret": "k", "max_query_bytes": 512},
    )
    yield running
    running.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/v1/i", "/v1/c", "/v1/postback"]),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    query=pairs,
    sent=headers,
)
def test_tracking_garbage_never_yields_a_server_error(
    app: InProcess, path: str, method: str, query: list[tuple[str, str]], sent: dict[str, str]
) -> None:
    url = path + "?" + "&".join(f"{k}={v}" for k, v in query)
    response = app.request(method, url, sent)
    assert response.status_code < 500, response.text
    if path == "/v1/i" and method != "POST":
        assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    if response.status_code >= 400 and method != "HEAD":
        assert response.json()["code"]
        assert "location" not in response.headers


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(st.binary(max_size=64) | st.just(b'{"a": 1}'), max_size=5),
    shape=st.sampled_from(["ok", "no-records", "not-base64", "not-json"]),
    arn=st.sampled_from(["arn:aws:firehose:r:1:deliverystream/AdvertiseX-dev-clicks", "", "x"]),
)
def test_firehose_delivery_garbage_is_answered_in_firehose_shape(
    app: InProcess, records: list[bytes], shape: str, arn: str
) -> None:
    body = {
        "ok": {
            "requestId": "r",
            "records": [{"data": base64.b64encode(r).decode()} for r in records],
        },
        "no-records": {"requestId": "r"},
        "not-base64": {"records": [{"data": "%%%"}]},
        "not-json": None,
    }[shape]
    content = orjson.dumps(body) if body is not None else b"{nope"
    response = app.post(
        "/v1/firehose",
        content,
        {"content-type": "application/json", "x-amz-firehose-source-arn": arn},
    )
    assert response.status_code < 500, response.text
    answer = response.json()
    assert {"requestId", "timestamp"} <= set(answer)
    assert ("errorMessage" in answer) == (response.status_code != 200)


def test_a_bug_behind_the_fast_path_still_answers_in_the_endpoints_shape(
    app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.collector.tracking import pixel, redirect

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pixel.records, "impression", broken)
    monkeypatch.setattr(redirect, "new_click_id", broken)
    gif = app.request("GET", "/v1/i?ad_creative_id=x", {})
    assert (gif.status_code, gif.content[:6]) == (200, b"GIF89a")
    from advertisex.collector.tracking.signing import sign_url

    link = sign_url("/v1/c", {"campaign_id": "c", "to": "https://shop.example/"}, "k")
    click = app.request("GET", link, {})
    assert (click.status_code, click.json()["code"]) == (500, "internal")
    assert "location" not in click.headers
    assert app.request("POST", "/v1/i", {}).json()["code"] == "method_not_allowed"
