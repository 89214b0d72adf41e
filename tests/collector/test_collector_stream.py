"""``advertisex generate --to``: live traffic into a real collector, retried when refused."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import orjson
import pytest

import advertisex
from advertisex.synth.stream import HttpSender, LiveTraffic, StreamStats, Tick, stream
from tests.ports import free_port


def test_live_traffic_is_stamped_now_and_consistent() -> None:
    tick = LiveTraffic(seed=3).tick(2000)
    assert len(tick.impressions) == 2000
    ids = {i["impression_id"] for i in tick.impressions}
    assert len(ids) == 2000
    auctions = {i["auction_id"] for i in tick.impressions if "auction_id" in i}
    won = {b["auction_id"] for b in tick.bids if b["bid_price"] is not None}
    assert auctions == won and len(tick.bids) > len(won)  # every win has its bid, plus lost ones
    assert all(c["impression_id"] in ids for c in tick.clicks)
    assert {c["event_type"] for c in tick.clicks} <= {"click", "conversion"}


def test_refusals_are_retried_with_the_same_idempotency_key(monkeypatch) -> None:
    seen: list[tuple[int, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((len(seen), request.headers["idempotency-key"]))
        if len(seen) <= 2:
            return httpx.Response(503, headers={"retry-after": "0"}, json={"code": "backlog_full"})
        return httpx.Response(200, json={"accepted": 3})

    monkeypatch.setattr("advertisex.synth.stream.WAIT", lambda state: 0.0)
    stats = StreamStats()
    sender = HttpSender("http://collector", stats, None)
    sender.client = httpx.Client(
        base_url="http://collector", transport=httpx.MockTransport(handler)
    )
    (job,) = sender.jobs(Tick(impressions=[{"impression_id": str(i)} for i in range(3)]))
    job()
    assert (stats.events, stats.requests, stats.retries, stats.failed) == (3, 1, 2, 0)
    assert len({key for _, key in seen}) == 1  # a retry is the same batch to the collector


def test_client_errors_are_not_retried(monkeypatch) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, json={"code": "json_invalid", "message": "line 1"})

    stats = StreamStats()
    sender = HttpSender("http://collector", stats, None)
    sender.client = httpx.Client(
        base_url="http://collector", transport=httpx.MockTransport(handler)
    )
    (job,) = sender.jobs(Tick(impressions=[{"a": 1}]))
    job()
    assert len(calls) == 1 and stats.failed == 1 and "json_invalid" in (stats.last_error or "")


@pytest.mark.integration
@pytest.mark.slow  # a real collector process
def test_streamed_traffic_lands_in_the_tables(server_factory) -> None:
    server = server_factory()
    http = stream(server.url, rate=3000, duration=1, via="http", seed=5)
    firehose = stream(server.url, rate=2000, duration=1, via="firehose", seed=6)
    assert http.failed == firehose.failed == 0
    assert http.events > 500 and firehose.events > 500
    cli = subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", "generate", "--to", server.url,
         "--rate", "1000", "--duration", "1", "--format", "json"],
        capture_output=True, text=True, timeout=120, env=server.env,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    summary = orjson.loads(cli.stdout.strip().splitlines()[-1])
    assert summary["events"] > 0 and summary["failed"] == 0

    assert server.stop() == 0
    report = advertisex.open(data_dir=server.data_dir).process()
    assert report.records_in == http.events + firehose.events + summary["events"]
    assert all(a.balanced and a.quarantined == 0 for a in report.accounts.values())


def test_streaming_to_a_dead_port_fails_at_once_with_the_hint(
    tmp_path, monkeypatch, capsys
) -> None:
    from advertisex.cli.app import main

    port = free_port()  # nothing listens on it yet

    def never(*args, **kwargs):
        raise AssertionError("streamed to a dead port (each request retried for seconds)")

    monkeypatch.setattr("advertisex.synth.stream.stream", never)
    monkeypatch.setenv("ADVERTISEX_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(
        sys,
        "argv",
        ["advertisex", "generate", "--to", f"http://127.0.0.1:{port}", "--duration", "3"],
    )
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert f"cannot reach a collector at http://127.0.0.1:{port}" in err
    assert "is `advertisex serve` running there?" in err


def test_the_duration_counts_from_a_ready_sender(monkeypatch) -> None:
    from advertisex.synth import stream as streaming

    class SlowToStart:
        """A sender whose set-up outlasts the whole stream (boto3's client under load)."""

        def __init__(self, to: str, stats: StreamStats, api_key: str | None) -> None:
            self.stats = stats
            time.sleep(0.3)

        def jobs(self, tick: Tick) -> list:
            return [lambda: self.stats.add(events=tick.events, requests=1)]

        def close(self) -> None:
            pass

    monkeypatch.setattr(streaming, "HttpSender", SlowToStart)
    sent = stream("http://collector", rate=2000, duration=0.2, via="http", seed=1)
    assert sent.events > 0
