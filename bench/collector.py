"""Collector intake throughput and ack latency, beside the bare-ASGI reference ceiling.

Starts ``advertisex serve`` (fsync on, the default) on a fresh data directory, then a
load generator in a separate process posts batches of 500 impressions (NDJSON, about
250 bytes each) over keep-alive connections for a fixed time and reports sustained
events/s, MB/s and client-side p50/p99 ack latency. The same load then hits the
reference ceiling (../shared/reference-bench/asgi_ceiling.py on uvicorn + uvloop +
httptools, which frames with orjson and fsyncs per request), in this same session,
and the ratio is printed. Then the Firehose API's rate through boto3 PutRecordBatch.

    python bench/collector.py [--seconds 10] [--connections 16] [--wrk]

The load generator speaks HTTP/1.1 through h11 over asyncio streams: about 60 µs of
CPU a request, so it is not the bottleneck at 500 events a request. ``--wrk`` also
measures both servers with wrk (Debian package) for a C-client comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _args import positive, positive_seconds

from advertisex.util import jsonutil

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parent.parent / "shared" / "reference-bench"
BATCH = 500


def impression_bodies(count: int, seed: int = 1) -> list[bytes]:
    """``count`` NDJSON bodies of 500 impressions each (the reference generator's shape)."""
    rnd = random.Random(seed)
    t0 = int(time.time() * 1000)
    bodies = []
    for b in range(count):
        lines = [
            jsonutil.dumps(
                {
                    "impression_id": f"imp-{b:05d}-{i:04d}-{rnd.getrandbits(32):08x}",
                    "ad_creative_id": f"cr-{rnd.randrange(5000)}",
                    "campaign_id": f"cmp-{rnd.randrange(500)}",
                    "user_id": f"u-{rnd.randrange(2_000_000)}",
                    "timestamp": t0 + i * 3,
                    "website": f"site{rnd.randrange(10000)}.example.com",
                    "placement": "banner_top",
                    "device_type": rnd.choice(["mobile", "desktop", "tablet"]),
                    "country": rnd.choice(["US", "DE", "IN", "BR", "FR"]),
                    "cost": round(rnd.random() * 0.005, 6),
                }
            )
            for i in range(BATCH)
        ]
        bodies.append(b"\n".join(lines) + b"\n")
    return bodies


# ---------------------------------------------------------------------- load generator (child)
async def _connection(
    host: str,
    port: int,
    path: str,
    bodies: list[bytes],
    until: float,
    latencies: list[float],
    bad: list[int],
) -> None:
    import h11

    reader, writer = await asyncio.open_connection(host, port)
    conn = h11.Connection(h11.CLIENT)
    i = random.randrange(len(bodies))
    while time.perf_counter() < until:
        body = bodies[i % len(bodies)]
        i += 1
        request = h11.Request(
            method="POST",
            target=path,
            headers=[
                ("Host", host),
                ("Content-Type", "application/x-ndjson"),
                ("Content-Length", str(len(body))),
            ],
        )
        started = time.perf_counter()
        writer.write(
            conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        )
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            if isinstance(event, h11.EndOfMessage):
                break
        latencies.append(time.perf_counter() - started)
        if status != 200:
            bad.append(status)
        conn.start_next_cycle()
    writer.close()


async def _load(
    url: str, path: str, seconds: float, connections: int, warmup: float
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    bodies = impression_bodies(20)
    size = sum(map(len, bodies)) / len(bodies)
    warm: list[float] = []
    await asyncio.gather(
        *(
            _connection(host, int(port), path, bodies, time.perf_counter() + warmup, warm, [])
            for _ in range(connections)
        )
    )
    latencies: list[float] = []
    bad: list[int] = []
    cpu0, wall0 = os.times(), time.perf_counter()
    await asyncio.gather(
        *(
            _connection(host, int(port), path, bodies, wall0 + seconds, latencies, bad)
            for _ in range(connections)
        )
    )
    wall = time.perf_counter() - wall0
    cpu1 = os.times()
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": len(bad),
        "seconds": wall,
        "events_per_s": n * BATCH / wall,
        "mb_per_s": n * size / wall / 1e6,
        "p50_ms": latencies[n // 2] * 1e3 if n else None,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
        "client_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
    }


# ---------------------------------------------------------------------- orchestration (parent)
def measure(url: str, path: str, pid: int, seconds: float, connections: int) -> dict[str, Any]:
    """Run the load generator in its own process; add the server's CPU use meanwhile."""
    import psutil

    server = psutil.Process(pid)
    children = server.children(recursive=True)
    before = sum(sum(p.cpu_times()[:2]) for p in [server, *children])
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            url,
            "--path",
            path,
            "--seconds",
            str(seconds),
            "--connections",
            str(connections),
        ],
        capture_output=True,
        check=True,
    )
    after = sum(sum(p.cpu_times()[:2]) for p in [server, *children])
    figures: dict[str, Any] = jsonutil.loads(result.stdout.splitlines()[-1])
    # Server CPU over warm-up plus measurement, against the same span of wall time.
    figures["server_cores"] = (after - before) / (figures["seconds"] + 2.0)
    figures["events_per_core_s"] = figures["events_per_s"] / max(figures["server_cores"], 1e-9)
    return figures


def wait_ready(url: str, probe: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.request("GET" if probe == "/readyz" else "POST", url + probe, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_collector(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "ADVERTISEX_DATA_DIR": str(data)}
    process = subprocess.Popen(
        [sys.executable, "-m", "advertisex.cli.app", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, "/readyz")
    return process, url


def start_reference(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    shutil.copy(REFERENCE / "asgi_ceiling.py", workdir / "asgi_ceiling.py")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "asgi_ceiling:app",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
        ],
        cwd=workdir,
        env={**os.environ, "TMPDIR": str(workdir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, "/")
    return process, url


def wrk(url: str, workdir: Path, seconds: float, connections: int) -> str:
    (workdir / "body500.ndjson").write_bytes(impression_bodies(1)[0])
    shutil.copy(REFERENCE / "post.lua", workdir / "post.lua")
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            "post.lua",
            url,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
    ).stdout
    keep = [
        line.strip()
        for line in out.splitlines()
        if line.strip().startswith(("50%", "99%", "Requests/sec"))
    ]
    rate = next((float(x.split()[-1]) for x in keep if x.startswith("Requests/sec")), 0.0)
    return f"{rate * BATCH:,.0f} events/s ({' | '.join(keep)})"


def firehose_rate(url: str, seconds: float, threads: int = 4) -> str:
    import concurrent.futures

    import boto3

    client = boto3.client(
        "firehose",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    records = [{"Data": line} for line in impression_bodies(1)[0].splitlines()]
    sent = [0] * threads
    until = time.perf_counter() + seconds

    def run(worker: int) -> None:
        while time.perf_counter() < until:
            answer = client.put_record_batch(
                DeliveryStreamName="AdvertiseX-dev-impressions", Records=records
            )
            sent[worker] += len(records) - answer["FailedPutCount"]

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    wall = time.perf_counter() - started
    return f"{sum(sent) / wall:,.0f} events/s through boto3 PutRecordBatch (500 records, {threads} threads)"


def line(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name:<26} {r['events_per_s']:>10,.0f} ev/s {r['mb_per_s']:>6.1f} MB/s  "
        f"p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  server {r['server_cores']:.2f} cores "
        f"→ {r['events_per_core_s']:>9,.0f} ev/s/core  (errors {r['errors']}, client CPU {r['client_cpu_s']:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=positive_seconds, default=10.0)
    parser.add_argument("--connections", type=positive, default=16)
    parser.add_argument("--wrk", action="store_true", help="also measure both servers with wrk")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="/v1/impressions", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:  # child: the load generator
        figures = asyncio.run(_load(args.load, args.path, args.seconds, args.connections, 2.0))
        sys.stdout.write(jsonutil.dumps(figures).decode() + "\n")
        return

    print(
        f"{os.cpu_count()} cores; {args.connections} keep-alive connections; {BATCH} impressions a request; "
        f"{args.seconds:g} s per run after 2 s warm-up; fsync on"
    )
    with tempfile.TemporaryDirectory(prefix="adx-bench-") as tmp:
        work = Path(tmp)
        collector, url = start_collector(work / "data")
        try:
            ours = measure(url, "/v1/impressions", collector.pid, args.seconds, args.connections)
            print(line("advertisex serve", ours), flush=True)
            if args.wrk and shutil.which("wrk"):
                print(
                    f"{'  same, wrk -t1':<26} {wrk(url + '/v1/impressions', work, args.seconds, args.connections)}"
                )
            print(f"{'firehose API':<26} {firehose_rate(url, args.seconds)}", flush=True)
        finally:
            collector.send_signal(signal.SIGTERM)
            collector.wait(60)
        reference, ref_url = start_reference(work)
        try:
            ceiling = measure(ref_url, "/", reference.pid, args.seconds, args.connections)
            print(line("reference asgi_ceiling", ceiling))
            if args.wrk and shutil.which("wrk"):
                print(
                    f"{'  same, wrk -t1':<26} {wrk(ref_url + '/', work, args.seconds, args.connections)}"
                )
        finally:
            reference.terminate()
            reference.wait(30)
        print(
            f"ratio advertisex / ceiling: {ours['events_per_s'] / ceiling['events_per_s']:.2f} (events/s), "
            f"p99 {ours['p99_ms'] / ceiling['p99_ms']:.2f}×"
        )


if __name__ == "__main__":
    main()
