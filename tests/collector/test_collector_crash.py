"""Kill the collector with SIGKILL mid-stream: every acknowledged event survives, once."""

from __future__ import annotations

import collections
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from collector_helpers import impressions, ndjson

import advertisex

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NDJSON = {"content-type": "application/x-ndjson"}
SENDERS = 4
PER_REQUEST = 50


def landed_ids(data_dir: Path) -> collections.Counter[str]:
    """How often each crash-test impression id occurs in the landing zone's files."""
    counts: collections.Counter[str] = collections.Counter()
    for path in (data_dir / "landing" / "impressions").rglob("*"):
        if path.is_file():
            counts.update(
                m.decode()
                for m in re.findall(rb'"impression_id":"(crash-[0-9-]+)"', path.read_bytes())
            )
    return counts


def test_sigkill_loses_no_acknowledged_event_and_stores_none_twice(server_factory) -> None:
    # Segments seal by size only, so some are sealed and one is surely open at the kill.
    server = server_factory(
        ADVERTISEX_COLLECTOR__SEGMENT_MAX_AGE_SECONDS="3600",
        ADVERTISEX_COLLECTOR__SEGMENT_MAX_BYTES=str(256 * 1024),
    )
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    refused = [0] * SENDERS

    def send(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for batch in range(1_000_000):
                if stop.is_set():
                    return
                records = impressions(PER_REQUEST, f"crash-{worker}-{batch}")
                try:
                    response = http.post("/v1/impressions", content=ndjson(records), headers=NDJSON)
                except httpx.TransportError:
                    refused[worker] += 1  # the collector is gone: no answer, no promise
                    time.sleep(0.01)
                    continue
                if response.status_code == 200:
                    with lock:
                        acked.extend(r["impression_id"] for r in records)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(SENDERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 * PER_REQUEST and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop(signal.SIGKILL)  # while every sender has a request in flight
    while min(refused) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # every sender has now seen the collector die
    stop.set()
    for thread in threads:
        thread.join(30)
    with lock:
        acknowledged = list(acked)
    assert len(acknowledged) >= 40 * PER_REQUEST
    assert list((server.data_dir / "landing").rglob("*.tmp")), "no segment was open at the kill"

    # Restart on the same port (same collector id): recovery seals what was left open.
    restarted = server_factory(data_dir=server.data_dir, port=server.port)
    assert restarted.stop() == 0
    assert not list((server.data_dir / "landing").rglob("*.tmp"))
    landed = landed_ids(server.data_dir)
    assert all(landed[i] == 1 for i in acknowledged), "an acknowledged event was lost"
    assert max(landed.values()) == 1, "the collector stored an event twice"

    ax = advertisex.open(data_dir=server.data_dir)
    report = ax.process()
    assert all(a.balanced for a in report.accounts.values())
    rows = ax.query(
        "select impression_id, count(*) n from curated.impressions "
        "where impression_id like 'crash-%' group by impression_id"
    ).to_pylist()
    in_table = {r["impression_id"]: r["n"] for r in rows}
    assert not set(acknowledged) - set(in_table), "an acknowledged event is missing from the table"
    assert max(in_table.values()) == 1
