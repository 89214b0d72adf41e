"""Freshness: how long from an acknowledged POST until the event is visible to queries.

Runs ``advertisex up`` (collector + continuous processor) on a fresh data directory.
A sender in a separate process posts 10,000 impressions/s (20 requests of 500 a
second) for ~20 s; one impression in each request is a marker whose acknowledgement
time it reports. This process polls the tables every 0.25 s through the Python API
(what ``advertisex query`` runs, without paying a process start per poll) and notes
when each marker becomes visible. Prints median / p99 / max ack→queryable latency.

    python bench/freshness.py [--rate 10000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _args import positive, positive_seconds

from advertisex.util import jsonutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from collector import free_port, impression_bodies, wait_ready  # noqa: E402

POLL = 0.25


def send(url: str, rate: int, seconds: float) -> None:
    """Child process: post at ``rate`` events/s; print one JSON line per acknowledged marker."""
    import httpx

    per_second = max(1, rate // 500)
    interval = 1.0 / per_second
    pool = impression_bodies(8, seed=7)
    now_ms = int(time.time() * 1000)
    with httpx.Client(base_url=url, timeout=30) as http:
        started = time.perf_counter()
        for n in range(int(seconds * per_second)):
            due = started + n * interval
            time.sleep(max(0.0, due - time.perf_counter()))
            marker = jsonutil.dumps(
                {
                    "impression_id": f"marker-{n:06d}",
                    "ad_creative_id": "cr-1",
                    "campaign_id": "cmp-1",
                    "user_id": "u-marker",
                    "timestamp": now_ms + n,
                    "website": "marker.example.com",
                }
            )
            body = pool[n % len(pool)].replace(
                b'"imp-', b'"imp-%06d-' % n
            )  # unique ids per request
            body = marker + b"\n" + body.split(b"\n", 1)[1]  # 1 marker + 499 others
            answer = http.post(
                "/v1/impressions", content=body, headers={"content-type": "application/x-ndjson"}
            )
            if answer.status_code == 200:
                sys.stdout.write(
                    jsonutil.dumps({"marker": f"marker-{n:06d}", "acked": time.time()}).decode()
                    + "\n"
                )
                sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=positive, default=10_000)
    parser.add_argument("--seconds", type=positive_seconds, default=20.0)
    parser.add_argument("--send", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        send(args.send, args.rate, args.seconds)
        return

    import advertisex

    with tempfile.TemporaryDirectory(prefix="adx-fresh-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {**os.environ, "ADVERTISEX_DATA_DIR": str(data)}
        log = open(Path(tmp) / "up.log", "wb")  # noqa: SIM115 - closed below, after up stops
        up = subprocess.Popen(
            [sys.executable, "-m", "advertisex.cli.app", "up", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, "/readyz")
            sender = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--send",
                    url,
                    "--rate",
                    str(args.rate),
                    "--seconds",
                    str(args.seconds),
                ],
                stdout=subprocess.PIPE,
            )
            acked: dict[str, float] = {}
            seen: dict[str, float] = {}
            ax = advertisex.open(data_dir=data)
            os.set_blocking(sender.stdout.fileno(), False)  # type: ignore[union-attr]
            buffered = b""
            deadline = None
            while True:
                chunk = sender.stdout.read() or b""  # type: ignore[union-attr]
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for raw in lines:
                    record = jsonutil.loads(raw)
                    acked[record["marker"]] = record["acked"]
                if sender.poll() is not None and deadline is None:
                    deadline = time.time() + 60  # then wait for the stragglers
                try:
                    ax.lake.refresh()
                    rows = (
                        ax.query(
                            "select impression_id from curated.impressions where website = 'marker.example.com'"
                        )
                        .column("impression_id")
                        .to_pylist()
                    )
                except Exception:  # tables being created by the processor right now
                    rows = []
                now = time.time()
                for marker in rows:
                    seen.setdefault(marker, now)
                if deadline and (set(acked) <= set(seen) or now > deadline):
                    break
                time.sleep(POLL)
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(60)
            log.close()
        lags = sorted(seen[m] - acked[m] for m in acked if m in seen)
        batches = [
            line for line in (Path(tmp) / "up.log").read_text().splitlines() if " batch " in line
        ]
        missing = len(set(acked) - set(seen))
    if not lags:
        raise SystemExit("no marker became visible")
    n = len(lags)
    print(
        f"{args.rate:,} events/s for {args.seconds:g} s through `advertisex up` (2 cores, fsync on, "
        f"segments seal after 1 s, processor polls every 0.5 s, query polled every {POLL} s)"
    )
    print(f"markers acknowledged {len(acked)}, visible {n}, missing {missing}")
    print(
        f"ack → queryable: median {lags[n // 2]:.2f} s, p99 {lags[min(n - 1, int(n * 0.99))]:.2f} s, "
        f"max {lags[-1]:.2f} s, min {lags[0]:.2f} s"
    )
    print(f"processor batches: {len(batches)}; last: {batches[-1] if batches else '-'}")


if __name__ == "__main__":
    main()
