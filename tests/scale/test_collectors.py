"""Several collectors, one landing zone, one processor: every acknowledged event once.

Two ``advertisex serve`` processes (their own ports and collector ids, the same data
directory) take interleaved requests from concurrent senders while a ``process
--follow`` processor consumes the landing zone. After both collectors stop (sealing
their open segments) and the processor drains the rest, the curated impressions are
exactly the acknowledged ones: none lost, none twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from advertisex.util import jsonutil
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENDERS, REQUESTS, PER_REQUEST = 4, 25, 40


def _start(args: list[str], data: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "ADVERTISEX_DATA_DIR": str(data),
        "ADVERTISEX_CONFIG": str(data / "no-such-advertisex.toml"),
        **env,
    }
    data.mkdir(parents=True, exist_ok=True)
    Path(environment["ADVERTISEX_CONFIG"]).touch()  # empty: nothing from the working directory
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "advertisex.cli.app", *args],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready:\n{log.read_text()}")


def _body(sender: int, request: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    return b"".join(
        jsonutil.dumps(
            {
                "impression_id": f"s{sender}-r{request}-{i}",
                "timestamp": now,
                "ad_creative_id": f"cr-{i % 7}",
                "campaign_id": f"cmp-{i % 3}",
                "user_id": f"user-{i % 11}",
                "website": "news.example.com",
            }
        )
        + b"\n"
        for i in range(PER_REQUEST)
    )


def test_two_collectors_one_landing_zone_one_processor(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    collectors = []
    for name in ("east", "west"):
        port = free_port()
        log = tmp_path / f"collector-{name}.log"
        process = _start(
            ["serve", "--port", str(port)], data, log, ADVERTISEX_COLLECTOR__COLLECTOR_ID=name
        )
        collectors.append((f"http://127.0.0.1:{port}", process, log))
    for url, process, log in collectors:
        _ready(url, process, log)
    processor_log = tmp_path / "processor.log"
    processor = _start(["process", "--follow", "--interval", "0.2"], data, processor_log)

    acked: list[str] = []
    lock = threading.Lock()

    def send(sender: int) -> None:
        with httpx.Client(timeout=30) as client:
            for request in range(REQUESTS):
                url = collectors[(sender + request) % len(collectors)][0]
                body = _body(sender, request)
                response = client.post(
                    f"{url}/v1/impressions",
                    content=body,
                    headers={"content-type": "application/x-ndjson"},
                )
                if response.status_code == 200:
                    ids = [jsonutil.loads(line)["impression_id"] for line in body.splitlines()]
                    with lock:
                        acked.extend(ids)

    threads = [threading.Thread(target=send, args=(s,)) for s in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _, process, log in collectors:  # SIGTERM: finish requests, seal open segments
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    processor.send_signal(signal.SIGTERM)
    processor.wait(60)

    import advertisex

    ax = advertisex.open(data_dir=data)
    ax.process()  # whatever the follower had not reached yet
    assert len(acked) == SENDERS * REQUESTS * PER_REQUEST  # the collectors took everything
    rows = ax.query("select impression_id from curated.impressions").column(0).to_pylist()
    assert len(rows) == len(set(rows))  # nothing twice
    assert set(rows) == set(acked)  # nothing lost, nothing invented
    writers = {name for s in ax.landing.segments() for name in ("east", "west") if name in s.name}
    assert writers == {"east", "west"}  # both wrote into the one landing zone
    totals = ax.query(
        "select sum(records_in) n, sum(duplicates) d from ops.batches where source = 'impressions'"
    ).to_pylist()
    assert totals == [{"n": len(acked), "d": 0}]
