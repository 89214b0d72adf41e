"""``serve --workers 2``: two worker processes on one port, behaving as one collector.

The kernel spreads connections over the workers (SO_REUSEPORT); ``/readyz`` says which
worker answered, so a test can reach each one on purpose: a keep-alive connection stays
with the worker that accepted it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from collector_helpers import ServerProcess, impressions, ndjson

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NDJSON = {"content-type": "application/x-ndjson"}


@contextmanager
def on_worker(server: ServerProcess, index: int) -> Iterator[httpx.Client]:
    """A client whose one keep-alive connection was accepted by worker ``index``."""
    for _ in range(200):
        client = httpx.Client(
            base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=1)
        )
        if client.get("/readyz").json()["worker"] == index:
            try:
                yield client
            finally:
                client.close()
            return
        client.close()
    raise AssertionError(f"no connection reached worker {index} in 200 tries")


def workers_of(server: ServerProcess) -> list[psutil.Process]:
    assert server.process is not None
    return psutil.Process(server.process.pid).children()


def landed_lines(server: ServerProcess, source: str) -> list[bytes]:
    files = (server.data_dir / "landing" / source).rglob("*.ndjson")
    return [line for f in files for line in f.read_bytes().splitlines()]


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)]
    assert values, f"{prefix!r} not in /metrics"
    return sum(values)


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def scrape_until(client: httpx.Client, name: str, wanted: float, **labels: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        text = client.get("/metrics").text
        if metric(text, name, **labels) == wanted or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_two_workers_are_one_collector(server_factory: Any, tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"  # the server's temporary directory, to see what it leaves
    temporary.mkdir()
    server = server_factory(ADVERTISEX_COLLECTOR__WORKERS="2", TMPDIR=str(temporary))
    assert len(workers_of(server)) == 2
    body = ndjson(impressions(3, "w"))
    key = {**NDJSON, "idempotency-key": "batch-1"}
    # The same batch, with the same Idempotency-Key, to each worker: stored once.
    with on_worker(server, 0) as first:
        answer = first.post("/v1/impressions", content=body, headers=key)
        assert answer.status_code == 200 and "idempotent-replayed" not in answer.headers
        assert (
            first.get("/v1/i?campaign_id=c&ad_creative_id=cr&impression_id=p0").status_code == 200
        )
    with on_worker(server, 1) as second:
        again = second.post("/v1/impressions", content=body, headers=key)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.content == answer.content
        reused = second.post("/v1/impressions", content=ndjson(impressions(1, "x")), headers=key)
        assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
        assert (
            second.get("/v1/i?campaign_id=c&ad_creative_id=cr&impression_id=p1").status_code == 200
        )
        # Either worker's /metrics counts both workers' requests (the other's within a second).
        # Each worker adds its counts to the shared series once a second, so every series is
        # waited for: the pixels' worker may have added its counts before the batch's has.
        scrape_until(second, "advertisex_collector_endpoint_requests_total", 2,
                     endpoint="pixel", outcome="accepted")  # fmt: skip
        accepted = {"source": "impressions", "outcome": "accepted"}
        text = scrape_until(second, "advertisex_collector_requests_total", 3, **accepted)
        assert metric(text, "advertisex_collector_requests_total", **accepted) == 3  # 1 batch, 2 px
        text = scrape_until(second, "advertisex_collector_idempotent_replays_total", 1)
        assert metric(text, "advertisex_collector_idempotent_replays_total") == 1
        assert metric(text, "advertisex_collector_endpoint_requests_total",
                      endpoint="pixel", outcome="accepted") == 2  # fmt: skip
        # The backlog behind the 503 back-pressure counts both workers' sealed segments.
        wait_for(lambda: not open_segments(server))
        sealed = sum(f.stat().st_size for f in (server.data_dir / "landing").rglob("*.ndjson"))
        scrape_until(second, "advertisex_collector_backlog_bytes", sealed)
        assert metric(second.get("/metrics").text, "advertisex_collector_backlog_bytes") == sealed

    pids = [w.pid for w in workers_of(server)]
    assert server.stop(signal.SIGTERM) == 0  # the supervisor stops both workers first
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)  # fmt: skip
    assert not list((server.data_dir / "landing").rglob(".*.tmp")), "a segment was left open"
    lines = landed_lines(server, "impressions")
    assert len(lines) == 3 + 2  # the batch once, each pixel once
    names = {f.name.split(".")[1] for f in (server.data_dir / "landing").rglob("*.ndjson")}
    assert len(names) == 2, "each worker writes segments of its own"
    assert not list((server.data_dir / "landing" / "_collectors").glob("*.workers"))
    # Each worker's decoders' forkserver kept its socket in a pymp-* folder there, which a
    # worker ending by os._exit alone left behind: one more at every start, for months.
    assert not list(temporary.glob("pymp-*"))


def open_segments(server: Any) -> list[Path]:
    """Segments being written, with data (a writer also keeps its next one ready, empty).
    One sealed between the listing and its size is not open any more."""
    found = []
    for path in (server.data_dir / "landing").rglob(".*.tmp"):
        try:
            if path.stat().st_size:
                found.append(path)
        except FileNotFoundError:
            continue
    return found


def test_a_dead_worker_is_replaced_and_its_segment_sealed(server_factory: Any) -> None:
    server = server_factory(
        ADVERTISEX_COLLECTOR__WORKERS="2", ADVERTISEX_COLLECTOR__SEGMENT_MAX_AGE_SECONDS="3600"
    )
    with on_worker(server, 1) as client:
        pixel = "/v1/i?campaign_id=c&ad_creative_id=cr&impression_id=dead-1"
        assert client.get(pixel).status_code == 200  # durable, in an open segment
    open_before = open_segments(server)
    assert len(open_before) == 1
    boot = open_before[0].name.split(".")[2]
    victim = next(w for w in workers_of(server) if _writes(w, boot))
    victim.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = [w for w in workers_of(server) if w.pid != victim.pid and w.status() != "zombie"]
        if len(alive) == 2 and not list((server.data_dir / "landing").rglob(".*.tmp")):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the worker was not replaced:\n{server.log()}")
    assert [line for line in landed_lines(server, "impressions") if b"dead-1" in line]
    with on_worker(server, 1) as client:  # the replacement serves the same socket
        assert client.get("/readyz").status_code == 200
    assert "exited unexpectedly (killed by SIGKILL)" in server.log()
    assert server.stop(signal.SIGTERM) == 0


def _writes(worker: psutil.Process, boot: str) -> bool:
    return any(boot in f.path for f in worker.open_files())


def test_a_worker_dying_while_another_starts_stops_with_the_reason(tmp_path: Path) -> None:
    """One worker is listening, the other dies before it is: ``serve`` stops with
    ``workers_failed`` and its hint, the listening one stopped — not a ChildProcessError
    from waiting twice for the dead one."""
    import os

    from advertisex.collector.workers import WorkersFailed, supervise
    from advertisex.config import load_settings

    settings = load_settings(data_dir=tmp_path / "data", collector={"port": 0})

    def run_worker(slot: Any, sock: Any, ready: Any) -> None:
        if slot.index == 1:
            os._exit(3)  # dies while starting
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        ready()
        time.sleep(60)

    with pytest.raises(WorkersFailed, match="exited while starting") as failed:
        supervise(settings, 2, run_worker)
    assert failed.value.code == "workers_failed" and "--workers 1" in (failed.value.hint or "")
