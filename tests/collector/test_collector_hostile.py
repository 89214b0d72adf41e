"""The regression corpus against the collector: garbage is refused before it is acknowledged,
bombs cost neither memory nor the event loop, and what is acknowledged the processor reads."""

from __future__ import annotations

import base64
import gzip
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from collector_helpers import InProcess

from tests.hostile import (
    avro_deflate_bomb,
    bad_typed_avro,
    deep_avro,
    gzip_bomb,
    not_a_record_avro,
    poison_avro,
)

AVRO = {"content-type": "application/avro"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(tmp_path_factory.mktemp("hostile") / "data", segment_max_age_seconds=0.2)
    yield running
    running.close()


def _landed(app: InProcess) -> list[Path]:
    return [p for p in app.settings.landing_dir.rglob("bids/**/*") if p.is_file()]


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        (poison_avro(), 400, "avro_invalid", "left after the block's 1 records"),
        (not_a_record_avro(), 400, "avro_invalid", "not a record"),
        (avro_deflate_bomb(64 << 20), 413, "body_too_large", "inflate to more than"),
        (b"Obj\x01" + b"\x00" * 64, 400, "avro_invalid", "byte 0"),
        (deep_avro(), 400, "avro_invalid", "RecursionError"),  # was a 500
    ],
    ids=["poison", "not-a-record", "deflate-bomb", "garbage", "nested-too-deep"],
)
def test_hostile_avro_is_refused_before_it_is_acknowledged(
    app: InProcess, body: bytes, status: int, code: str, words: str
) -> None:
    before = _landed(app)
    response = app.post("/v1/bids", body, AVRO)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert words in response.json()["message"]
    assert _landed(app) == before  # nothing stored, no temporary file left behind


def test_a_gzip_bomb_is_refused_at_the_decoded_size_limit(app: InProcess) -> None:
    bomb = gzip_bomb(256 << 20)
    for path, headers in [
        ("/v1/impressions", {"content-type": "application/x-ndjson"}),
        ("/v1/bids", AVRO),
    ]:
        response = app.post(path, bomb, {**headers, "content-encoding": "gzip"})
        assert (response.status_code, response.json()["code"]) == (413, "body_too_large")


def test_gzip_members_one_after_another_are_all_landed(app: InProcess) -> None:
    # ``cat a.gz b.gz`` was refused (gzip_invalid) though ingest and process read all its
    # members from a file; each format now lands every member's records.
    def members(data: bytes) -> bytes:
        half = len(data) // 2
        return gzip.compress(data[:half]) + gzip.compress(data[half:])

    clicks = b"timestamp,user_id,campaign_id,event_type\n" + b"2026-01-01T00:00:00Z,u,c,click\n" * 4
    for path, body, media, accepted in [
        ("/v1/impressions", b'{"user_id":"multi-member"}\n' * 6, "application/x-ndjson", 6),
        ("/v1/clicks", clicks, "text/csv", 4),
        ("/v1/bids", bad_typed_avro(), "application/avro", 10),
    ]:
        headers = {"content-type": media, "content-encoding": "gzip"}
        response = app.post(path, members(body), headers)
        assert (response.status_code, response.json().get("accepted")) == (200, accepted), path
    over = members(b'{"user_id":"x"}\n' * ((app.settings.collector.max_decoded_bytes // 16) + 1))
    response = app.post(
        "/v1/impressions",
        over,
        {"content-type": "application/x-ndjson", "content-encoding": "gzip"},
    )
    assert (response.status_code, response.json()["code"]) == (413, "body_too_large")


def test_a_bad_typed_record_is_valid_avro_and_is_acknowledged(app: InProcess) -> None:
    response = app.post("/v1/bids", bad_typed_avro(), AVRO)
    assert response.status_code == 200 and response.json()["accepted"] == 10


@pytest.mark.parametrize(
    "data",
    ["é", "\u00e9\u00e9==", "{}\u2028", "e30=\u00a0"],
    ids=["e-acute", "padded", "line-separator", "nbsp"],
)
def test_non_ascii_firehose_data_is_an_aws_error_not_a_500(app: InProcess, data: str) -> None:
    for operation, payload in [
        ("PutRecordBatch", {"Records": [{"Data": data}]}),
        ("PutRecord", {"Record": {"Data": data}}),
    ]:
        body = orjson.dumps({"DeliveryStreamName": "AdvertiseX-dev-impressions", **payload})
        response = app.post(
            "/",
            body,
            {
                "x-amz-target": f"Firehose_20150804.{operation}",
                "content-type": "application/x-amz-json-1.1",
            },
        )
        assert response.status_code == 400, response.text
        assert response.json()["__type"] == "SerializationException"
        assert set(response.json()) == {"__type", "message"}


def test_non_ascii_data_to_the_http_endpoint_delivery_is_a_400(app: InProcess) -> None:
    body = orjson.dumps({"requestId": "r-1", "timestamp": 1, "records": [{"data": "é"}]})
    response = app.post(
        "/v1/firehose?source=impressions",
        body,
        {"content-type": "application/json", "x-amz-firehose-request-id": "r-1"},
    )
    assert response.status_code == 400, response.text


def test_concatenated_firehose_objects_with_non_ascii_text_are_split(app: InProcess) -> None:
    objects = '{"user_id":"é","timestamp":1}{"user_id":"ü","timestamp":2}'
    body = orjson.dumps(
        {
            "DeliveryStreamName": "AdvertiseX-dev-impressions",
            "Records": [{"Data": base64.b64encode(objects.encode()).decode()}],
        }
    )
    response = app.post(
        "/",
        body,
        {
            "x-amz-target": "Firehose_20150804.PutRecordBatch",
            "content-type": "application/x-amz-json-1.1",
        },
    )
    assert response.status_code == 200 and response.json()["FailedPutCount"] == 0


def test_a_small_gzip_delivery_of_a_million_records_is_framed_off_the_event_loop(
    app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 31 KB of gzip inflate to a million records: framed on the event loop (the wire body
    # is small), they held every other request, /healthz too, for 4 s.
    from advertisex.collector import firehose_http

    framed_in: list[int] = []
    frame = firehose_http.frame_delivery

    def watched(*args: Any) -> Any:
        framed_in.append(threading.get_ident())
        return frame(*args)

    monkeypatch.setattr(firehose_http, "frame_delivery", watched)
    records = b",".join([b'{"data":"e30="}'] * 300_000)
    body = gzip.compress(b'{"requestId":"r","timestamp":1,"records":[' + records + b"]}")
    assert len(body) < 64 << 10
    response = app.post(
        "/v1/firehose?source=impressions",
        body,
        {"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert framed_in and framed_in[0] != threading.get_ident()  # the loop runs on this thread


@pytest.mark.parametrize("blank", [b"\n", b",,,\r\n"], ids=["empty", "delimiters"])
def test_a_csv_of_megabytes_of_blank_rows_is_framed_off_the_event_loop(
    app: InProcess, monkeypatch: pytest.MonkeyPatch, blank: bytes
) -> None:
    # Blank rows are not records, so max_records does not stop them: 4 MiB of them framed
    # on the event loop held every other request, /healthz too, for 1.25 s.
    from advertisex.collector import app as app_module

    framed_in: list[int] = []
    frame = app_module.frame_csv_clicks

    def watched(*args: Any, **options: Any) -> Any:
        framed_in.append(threading.get_ident())
        return frame(*args, **options)

    monkeypatch.setattr(app_module, "frame_csv_clicks", watched)
    header = b"timestamp,user_id,campaign_id,event_type\n"
    rows = blank * (((4 << 20) - 4096) // len(blank))  # just under max_body_bytes
    body = header + rows + b"2026-01-01T00:00:00Z,u,c,click\n"
    response = app.post("/v1/clicks", body, {"content-type": "text/csv"})
    assert (response.status_code, response.json()["accepted"]) == (200, 1), response.text
    assert framed_in and framed_in[0] != threading.get_ident()  # the loop runs on this thread


def test_a_firehose_request_of_too_many_objects_is_refused_at_once(app: InProcess) -> None:
    # 4 MiB of base64 holds 1.4 million ``{}``: framed on the event loop, they held every
    # request for hours (the split was quadratic); now the count stops at max_records.
    objects = base64.b64encode(b"{}" * 1_400_000).decode()
    body = orjson.dumps(
        {"DeliveryStreamName": "AdvertiseX-dev-impressions", "Records": [{"Data": objects}]}
    )
    started = time.perf_counter()
    response = app.post(
        "/",
        body,
        {
            "x-amz-target": "Firehose_20150804.PutRecordBatch",
            "content-type": "application/x-amz-json-1.1",
        },
    )
    assert time.perf_counter() - started < 5
    assert response.status_code == 413, response.text
    assert response.json()["__type"] == "ValidationException"
    assert "more than 10000 JSON objects" in response.json()["message"]


@pytest.mark.integration
@pytest.mark.slow  # a real collector process and a 1 GiB bomb
def test_a_bomb_costs_the_collector_no_memory_and_health_stays_answered(
    server_factory: Any, tmp_path: Path
) -> None:
    """A 1 MB request that inflates to 1 GiB: refused, while /healthz keeps answering, and
    the collector process itself never holds more than a fraction of the bomb."""
    server = server_factory()
    bomb = avro_deflate_bomb(1 << 30)
    assert len(bomb) < 2 << 20
    answers: list[int] = []

    def probe() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(20):
                answers.append(client.get("/healthz").status_code)

    prober = threading.Thread(target=probe)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        prober.start()
        response = client.post("/v1/bids", content=bomb, headers=AVRO)
        prober.join(60)
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"
    assert answers == [200] * 20
    peak = _peak_rss(server.process.pid)
    assert peak < 512 << 20, f"collector peaked at {peak >> 20} MiB"
    assert not [p for p in (tmp_path / "data" / "landing").rglob("*.tmp")]


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.mark.parametrize("path", ["/metrics", "/readyz"])
def test_operations_endpoints_need_a_key_off_loopback(tmp_path: Path, path: str) -> None:
    import asyncio

    from advertisex.collector.access import hash_key
    from advertisex.collector.app import create_app
    from advertisex.collector.service import Collector
    from advertisex.config import load_settings

    keys = [{"name": "scraper", "sha256": hash_key("ops-key"), "sources": ["impressions"]}]
    settings = load_settings(
        data_dir=tmp_path / "data", collector={"host": "0.0.0.0", "api_keys": keys}
    )
    collector = Collector(settings)
    collector.start()
    app = create_app(settings, collector)

    async def get(client_host: str, **headers: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
            return await client.get(path, headers=headers)

    try:
        outside = asyncio.run(get("203.0.113.9"))
        assert (outside.status_code, outside.json()["code"]) == (401, "api_key_missing")
        assert asyncio.run(get("203.0.113.9", authorization="Bearer nope")).status_code == 401
        assert asyncio.run(get("203.0.113.9", authorization="Bearer ops-key")).status_code == 200
        assert asyncio.run(get("127.0.0.1")).status_code == 200  # a local probe needs none
        health = asyncio.run(_get(app, "/healthz"))
        assert health.status_code == 200  # liveness says nothing, so it stays open
    finally:
        collector.stop()


async def _get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        return await client.get(path)
