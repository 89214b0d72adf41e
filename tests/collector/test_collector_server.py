"""A real ``advertisex serve`` process: every format and the Firehose API through real
clients into the curated tables, and every refusal the collector promises."""

from __future__ import annotations

import gzip
import http.client
import io
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import fastavro
import httpx
import orjson
import pytest
from botocore.exceptions import ClientError
from collector_helpers import PATIENT_SECONDS, ServerProcess, get, impressions, ndjson, post

import advertisex
from advertisex.collector.access import hash_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NDJSON = {"content-type": "application/x-ndjson"}
NOW = "2026-11-27T10:00:00Z"


def firehose(url: str, key: str = "testing"):  # type: ignore[no-untyped-def]
    return boto3.client(
        "firehose",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=key,
        aws_secret_access_key="unused",
    )


def bids_avro(ids: list[str]) -> bytes:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "BidRequest",
            "fields": [
                {"name": "auction_id", "type": "string"},
                {"name": "timestamp", "type": "string"},
                {"name": "user_id", "type": "string"},
                {"name": "exchange", "type": "string"},
                {"name": "ad_targeting", "type": {"type": "map", "values": "string"}},
            ],
        }
    )
    buffer = io.BytesIO()
    records = [
        {
            "auction_id": i,
            "timestamp": NOW,
            "user_id": "u1",
            "exchange": "adx",
            "ad_targeting": {"age": "25-34"},
        }
        for i in ids
    ]
    fastavro.writer(buffer, schema, records)
    return buffer.getvalue()


def landed_bytes(data_dir: Path) -> bytes:
    """Everything in the landing zone, sealed or still open."""
    return b"".join(
        p.read_bytes() for p in sorted((data_dir / "landing").rglob("*")) if p.is_file()
    )


def test_every_format_and_the_firehose_api_reach_the_curated_tables(
    server_factory, tmp_path
) -> None:
    server = server_factory()
    with httpx.Client(base_url=server.url, timeout=60) as http:  # patient on a loaded machine
        posts = [
            ("/v1/impressions", ndjson(impressions(30, "nd")), NDJSON),
            (
                "/v1/impressions",
                gzip.compress(ndjson(impressions(20, "gz"))),
                {**NDJSON, "content-encoding": "gzip"},
            ),
            (
                "/v1/impressions",
                orjson.dumps(impressions(10, "arr")),
                {"content-type": "application/json"},
            ),
            (
                "/v1/clicks",
                b"timestamp,user_id,campaign_id,event_type,event_id\n"
                + b"".join(b"%s,u1,cmp-1,click,csv-%d\n" % (NOW.encode(), i) for i in range(5))
                + b"%s,u1,cmp-1,conversion,csv-conv\n" % NOW.encode(),
                {"content-type": "text/csv"},
            ),
            (
                "/v1/clicks",
                ndjson(
                    [
                        {
                            "timestamp": NOW,
                            "user_id": "u2",
                            "campaign_id": "cmp-2",
                            "event_type": "click",
                            "event_id": "ndc-1",
                        }
                    ]
                ),
                NDJSON,
            ),
            (
                "/v1/bids",
                bids_avro([f"avro-{i}" for i in range(7)]),
                {"content-type": "application/avro"},
            ),
            (
                "/v1/bids",
                ndjson(
                    [{"auction_id": "jsb-1", "timestamp": NOW, "user_id": "u1", "exchange": "adx"}]
                ),
                NDJSON,
            ),
        ]
        for path, body, headers in posts:
            response = http.post(path, content=body, headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] > 0

    client = firehose(server.url)
    one = client.put_record(
        DeliveryStreamName="AdvertiseX-dev-impressions",
        Record={"Data": orjson.dumps(impressions(1, "fh-one")[0])},
    )
    assert one["RecordId"] and one["Encrypted"] is False
    concatenated = ndjson(impressions(2, "fh-cat")).replace(b"\n", b"")  # {..}{..}, no newline
    batch = client.put_record_batch(
        DeliveryStreamName="AdvertiseX-dev-impressions",
        Records=[{"Data": orjson.dumps(r)} for r in impressions(4, "fh-batch")]
        + [{"Data": concatenated}],
    )
    assert batch["FailedPutCount"] == 0 and all("RecordId" in r for r in batch["RequestResponses"])
    clicks = client.put_record_batch(
        DeliveryStreamName="AdvertiseX-dev-clicks",
        Records=[
            {
                "Data": orjson.dumps(
                    {
                        "timestamp": NOW,
                        "user_id": "u3",
                        "ad_campaign_id": "cmp-3",
                        "event_type": "click",
                        "click_id": f"fhc-{i}",
                    }
                )
            }
            for i in range(3)
        ]
        + [{"Data": b"not json"}],
    )
    assert clicks["FailedPutCount"] == 1
    assert clicks["RequestResponses"][3]["ErrorCode"] == "InvalidArgumentException"
    bids = client.put_record_batch(
        DeliveryStreamName="AdvertiseX-dev-bid_requests",
        Records=[
            {
                "Data": orjson.dumps(
                    {
                        "auction_id": f"fhb-{i}",
                        "timestamp": NOW,
                        "user_id": "u1",
                        "exchange": "adx",
                        "ad_targeting": {"gender": "f"},
                    }
                )
            }
            for i in range(2)
        ],
    )
    assert bids["FailedPutCount"] == 0

    assert server.stop() == 0  # SIGTERM: seals what is open
    ax = advertisex.open(data_dir=server.data_dir)
    report = ax.process()
    assert all(a.balanced for a in report.accounts.values())
    counts = ax.query(
        """select
          (select count(*) from curated.impressions where impression_id like 'nd-%') nd,
          (select count(*) from curated.impressions where impression_id like 'gz-%') gz,
          (select count(*) from curated.impressions where impression_id like 'arr-%') arr,
          (select count(*) from curated.impressions where impression_id like 'fh-%') fh,
          (select count(*) from curated.clicks) clicks,
          (select count(*) from curated.conversions) conversions,
          (select count(*) from curated.bid_requests where auction_id like 'avro-%') avro,
          (select count(*) from curated.bid_requests where auction_id not like 'avro-%') json_bids,
          (select count(*) from curated.quarantine) quarantined"""
    ).to_pylist()[0]
    assert counts == {
        "nd": 30,
        "gz": 20,
        "arr": 10,
        "fh": 1 + 4 + 2,
        "clicks": 5 + 1 + 3,
        "conversions": 1,
        "avro": 7,
        "json_bids": 1 + 2,
        "quarantined": 0,
    }


# ---------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("limited") / "data",
        ADVERTISEX_COLLECTOR__MAX_BODY_BYTES=str(64 * 1024),
        ADVERTISEX_COLLECTOR__MAX_RECORDS="100",
        ADVERTISEX_COLLECTOR__MAX_FIREHOSE_RECORDS="5",
    ).start()
    yield server
    server.stop(signal.SIGKILL)


FRAMING_CASES = [
    ("/v1/impressions", b'{"id":"BAD-1"}\n{"id": BAD-1b\n', NDJSON, "json_invalid", "line 2"),
    ("/v1/impressions", b'{"id":"BAD-2"}\n[1]\n', NDJSON, "json_not_object", "line 2"),
    (
        "/v1/impressions",
        b'[{"id":"BAD-3"}, {"id":',
        {"content-type": "application/json"},
        "json_invalid",
        "byte",
    ),
    (
        "/v1/clicks",
        b"2026-11-27T10:00:00Z,BAD-4,c1,click\n",
        {"content-type": "text/csv"},
        "csv_header_missing",
        "line 1",
    ),
    (
        "/v1/bids",
        b'{"auction_id":"BAD-5"}',
        {"content-type": "application/avro"},
        "avro_invalid",
        "byte 0",
    ),
    (
        "/v1/impressions",
        gzip.compress(b'{"id":"BAD-6"}\n' * 50, mtime=0)[:40],  # same test id in every worker
        {**NDJSON, "content-encoding": "gzip"},
        "gzip_invalid",
        "truncated",
    ),
]


@pytest.mark.parametrize(("path", "body", "headers", "code", "where"), FRAMING_CASES)
def test_unframeable_bodies_are_refused_whole(limited, path, body, headers, code, where) -> None:
    response = post(limited.url + path, content=body, headers=headers)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == code and where in error["message"]


def test_refused_bodies_leave_nothing_behind(limited) -> None:
    for path, body, headers, _, _ in FRAMING_CASES:
        post(limited.url + path, content=body, headers=headers)
    assert b"BAD-" not in landed_bytes(limited.data_dir)


def test_limits_and_content_types(limited) -> None:
    big = post(limited.url + "/v1/impressions", content=b"x" * (64 * 1024 + 1), headers=NDJSON)
    assert (big.status_code, big.json()["code"]) == (413, "body_too_large")
    many = post(
        limited.url + "/v1/impressions", content=ndjson(impressions(101, "many")), headers=NDJSON
    )
    assert (many.status_code, many.json()["code"]) == (413, "too_many_records")
    for path, content_type in [
        ("/v1/impressions", "text/plain"),
        ("/v1/impressions", "text/csv"),
        ("/v1/bids", ""),
    ]:
        wrong = post(limited.url + path, content=b'{"a":1}', headers={"content-type": content_type})
        assert (wrong.status_code, wrong.json()["code"]) == (415, "unsupported_media_type")
    lost = get(limited.url + "/v1/nothing")
    assert (lost.status_code, lost.json()["code"]) == (404, "not_found")
    assert b"many-" not in landed_bytes(limited.data_dir)


def test_firehose_errors_come_in_the_aws_shape(limited) -> None:
    client = firehose(limited.url)
    with pytest.raises(ClientError) as unknown:
        client.put_record(DeliveryStreamName="no-such-stream", Record={"Data": b"{}"})
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "no-such-stream" in unknown.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as too_many:
        client.put_record_batch(
            DeliveryStreamName="AdvertiseX-dev-impressions", Records=[{"Data": b"{}"}] * 6
        )
    assert too_many.value.response["Error"]["Code"] == "ValidationException"
    assert too_many.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(ClientError) as bad_record:
        client.put_record(
            DeliveryStreamName="AdvertiseX-dev-impressions", Record={"Data": b"[1,2]"}
        )
    assert bad_record.value.response["Error"]["Code"] == "InvalidArgumentException"


def test_idempotency_key_answers_a_retry_without_storing_twice(limited) -> None:
    body = ndjson(impressions(3, "idem-once"))
    headers = {**NDJSON, "idempotency-key": "batch-0001"}
    first = post(limited.url + "/v1/impressions", content=body, headers=headers)
    retry = post(limited.url + "/v1/impressions", content=body, headers=headers)
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = post(
        limited.url + "/v1/impressions", content=ndjson(impressions(1, "idem-x")), headers=headers
    )
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert landed_bytes(limited.data_dir).count(b'"idem-once-0"') == 1
    assert b"idem-x" not in landed_bytes(limited.data_dir)


def test_metrics_are_prometheus_text(limited) -> None:
    post(limited.url + "/v1/impressions", content=ndjson(impressions(2, "metric")), headers=NDJSON)
    text = get(limited.url + "/metrics").text
    assert 'advertisex_collector_requests_total{outcome="accepted",source="impressions"}' in text
    assert 'advertisex_collector_events_total{outcome="accepted",source="impressions"}' in text
    assert "advertisex_collector_ack_latency_seconds_bucket" in text
    assert "advertisex_collector_fsync_seconds_count" in text
    assert "advertisex_collector_backlog_bytes" in text


# ---------------------------------------------------------------------- access and back-pressure
def test_api_keys_401_403(server_factory) -> None:
    keys = [
        {"name": "adserver", "sha256": hash_key("imp-key"), "sources": ["impressions"]},
        {"name": "tracker", "sha256": hash_key("click-key"), "sources": ["clicks"]},
    ]
    server = server_factory(ADVERTISEX_COLLECTOR__API_KEYS=orjson.dumps(keys).decode())
    body = ndjson(impressions(1, "keyed"))
    url = server.url + "/v1/impressions"
    missing = post(url, content=body, headers=NDJSON)
    assert (missing.status_code, missing.json()["code"]) == (401, "api_key_missing")
    wrong = post(url, content=body, headers={**NDJSON, "authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "api_key_invalid")
    forbidden = post(url, content=body, headers={**NDJSON, "x-api-key": "click-key"})
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "source_forbidden")
    assert (
        post(url, content=body, headers={**NDJSON, "authorization": "Bearer imp-key"}).status_code
        == 200
    )
    record = {"Data": orjson.dumps(impressions(1, "keyed-fh")[0])}
    assert firehose(server.url, "imp-key").put_record(
        DeliveryStreamName="AdvertiseX-dev-impressions", Record=record
    )
    with pytest.raises(ClientError) as denied:
        firehose(server.url, "click-key").put_record(
            DeliveryStreamName="AdvertiseX-dev-impressions", Record=record
        )
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_refuses_to_listen_beyond_loopback_without_keys(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "advertisex.cli.app",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(server.port),
        ],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr
    assert "Traceback" not in result.stderr


def test_backlog_over_its_bound_answers_503_until_processed(server_factory) -> None:
    server = server_factory(
        ADVERTISEX_COLLECTOR__MAX_BACKLOG_BYTES="1",
        ADVERTISEX_COLLECTOR__SEGMENT_MAX_AGE_SECONDS="0.1",
    )
    url = server.url + "/v1/impressions"
    assert post(url, content=ndjson(impressions(2, "backlog")), headers=NDJSON).status_code == 200
    wait_until(lambda: get(server.url + "/readyz").status_code == 503)  # sealed: backlog > 1 byte
    refused = post(url, content=ndjson(impressions(2, "refused")), headers=NDJSON)
    assert (refused.status_code, refused.json()["code"]) == (503, "backlog_full")
    assert int(refused.headers["retry-after"]) >= 1
    advertisex.open(data_dir=server.data_dir).process()
    wait_until(lambda: get(server.url + "/readyz").status_code == 200)  # the processor caught up
    assert post(url, content=ndjson(impressions(2, "later")), headers=NDJSON).status_code == 200


def wait_until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


# ---------------------------------------------------------------------- shutdown
def test_sigterm_finishes_in_flight_requests_and_seals(server_factory) -> None:
    server = server_factory(ADVERTISEX_COLLECTOR__SEGMENT_MAX_AGE_SECONDS="3600")
    first = ndjson(impressions(3, "before-term"))
    assert post(server.url + "/v1/impressions", content=first, headers=NDJSON).status_code == 200
    zone = advertisex.open(data_dir=server.data_dir).landing
    assert zone.segments() == []  # open, not sealed: the age bound is an hour

    in_flight = ndjson(impressions(3, "in-flight"))
    # A connection the server has accepted and answered on, kept alive: the request below
    # is in its buffer when SIGTERM comes, and read before the shutdown. (A fixed 0.2 s
    # sleep, the server starved of CPU meanwhile, left the connection unaccepted at SIGTERM:
    # it was reset.)
    kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=PATIENT_SECONDS)
    kept.request("GET", "/readyz")
    ready = kept.getresponse()
    assert ready.status == 200 and not ready.will_close
    ready.read()
    sock = kept.sock
    head = (
        f"POST /v1/impressions HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
        f"Content-Length: {len(in_flight)}\r\n\r\n"
    ).encode()
    sock.sendall(head + in_flight[:10])
    server.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    wait_until(lambda: not _accepts_connections(server.port))
    sock.sendall(in_flight[10:])
    answer = sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer

    assert server.process.wait(60) == 0  # type: ignore[union-attr]
    segments = zone.segments()
    assert len(segments) == 1 and zone.read(segments[0]) == first + in_flight
    assert not list((server.data_dir / "landing").rglob("*.tmp"))


def _accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_avro_bids_with_timestamp_millis_and_firehose_bids_process_together(server_factory) -> None:
    import datetime as dt

    from advertisex.synth.avro_out import writer_schema

    server = server_factory()
    buffer = io.BytesIO()
    now = dt.datetime.now(dt.UTC)
    fastavro.writer(
        buffer,
        fastavro.parse_schema(writer_schema()),
        [{"auction_id": "millis-1", "timestamp": now, "user_id": "u1", "exchange": "adx"}],
    )
    answer = post(
        server.url + "/v1/bids",
        content=buffer.getvalue(),
        headers={"content-type": "application/avro"},
    )
    assert answer.status_code == 200
    firehose(server.url).put_record(
        DeliveryStreamName="AdvertiseX-dev-bid_requests",
        Record={"Data": orjson.dumps({"auction_id": "json-1", "timestamp": NOW, "user_id": "u1"})},
    )
    assert server.stop() == 0
    ax = advertisex.open(data_dir=server.data_dir)
    ax.process()
    assert ax.query("select count(*) n from curated.bid_requests").column("n")[0].as_py() == 2
