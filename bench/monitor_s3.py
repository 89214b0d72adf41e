"""Bench: what the monitor's observation costs with the landing zone in a bucket.

    .venv/bin/python bench/monitor_s3.py [--days 8] [--per-hour 2]

Starts moto's S3 server (its own process on 127.0.0.1, as the tests do) and a platform
whose landing zone is ``s3://…/landing`` (tables stay local). Lands ``--per-hour``
segments per source in every hour of the monitor's look-back (``--days``, the default
eight, and the current hour), marks all but the last few committed in the ledger (as a
processor would), then counts the ``ListObjectsV2`` requests the server received (its
request log) and times, at a fixed moment 50 minutes into the current hour:

- the **first** observation of a fresh monitor (``Gatherer.observe()``, with a state
  store): every hour of the look-back is listed;
- a **second** one a minute later (same gatherer): what every later minute costs;
- a **restarted** monitor's first one (a new gatherer, the same state store): what a
  restart, ``advertisex status`` or the console's first page costs.

``--unprocessed`` commits nothing: a processor down for days, every hour still pending.

Wall times are moto's on a shared machine; the request counts are exact. Asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from _args import positive

SOURCES = ("impressions", "clicks", "bids")
BUCKET = "bench"


class Moto:
    """moto's S3 server in its own process, its request log in a file."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = folder / "moto.log"
        with open(self.log, "wb") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=log,
            )
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port)).close()
                break
            except OSError:
                time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port}"
        self._marks = 0

    def lists(self) -> int:
        """``ListObjectsV2`` requests received so far: a marker request is sent and waited
        for in the log, so every request made before it is counted."""
        self._marks += 1
        marker = f"bench-marker-{self._marks}"
        try:
            urllib.request.urlopen(f"{self.url}/{BUCKET}/{marker}", timeout=10).close()
        except OSError:
            pass  # a 404 is expected: only its log line matters
        deadline = time.monotonic() + 30
        while marker not in self.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)  # a request answered just before the marker logs just after it
        return self.log.read_text().count("list-type=2")

    def stop(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=positive, default=8, help="the monitor's look-back")
    parser.add_argument("--per-hour", type=positive, default=2, help="segments per source")
    parser.add_argument(
        "--unprocessed", action="store_true", help="commit nothing (a processor down for days)"
    )
    args = parser.parse_args()

    import boto3

    import advertisex
    from advertisex.lake.marks import SegmentDone
    from advertisex.monitor.gather import Gatherer
    from advertisex.monitor.model import HOUR, floor_hour
    from advertisex.monitor.state import StateStore
    from advertisex.util.timeutil import utcnow

    with tempfile.TemporaryDirectory(prefix="adx-monitor-s3-") as tmp:
        moto = Moto(Path(tmp))
        try:
            boto3.client(
                "s3",
                endpoint_url=moto.url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ).create_bucket(Bucket=BUCKET)
            keys = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing"}
            ax = advertisex.open(
                data_dir=Path(tmp) / "data",
                scale={
                    "landing": f"s3://{BUCKET}/landing",
                    "s3_endpoint": moto.url,
                    "s3_region": "us-east-1",
                    **keys,
                },
                monitor={"lookback_days": args.days},
            )
            now = floor_hour(utcnow()) + timedelta(minutes=50)
            since = floor_hour(now) - timedelta(days=args.days)
            moments = []
            hour = since
            while hour <= now:
                for n in range(args.per_hour):
                    at = hour + (now - floor_hour(now)) * n / args.per_hour
                    moments += [(source, at, f"s{len(moments):06d}") for source in SOURCES]
                hour += HOUR

            def land(moment: tuple[str, datetime, str]) -> SegmentDone:
                source, at, label = moment
                segment = ax.landing.write_segment(source, b'{"a":1}\n', label=label, at=at)
                done = (at + timedelta(seconds=5)).isoformat()
                return SegmentDone(segment.name, source, label, 1, segment.size, done)

            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                marks = list(pool.map(land, moments))
            # The current hour's last segment of each source is not processed yet.
            pending = len(marks) if args.unprocessed else len(SOURCES)
            with ax.lake.catalog.atomic(marks[:-pending]):
                pass
            print(
                f"{len(marks):,} segments in {args.days} days and an hour of 3 sources "
                f"({pending} pending), landed in {time.perf_counter() - started:.0f} s; "
                f"load {os.getloadavg()[0]:.2f}"
            )
            clock = [now]
            store = StateStore(Path(tmp) / "state.db")
            gatherer = Gatherer(ax.settings, ax.lake, lambda: clock[0], store)

            def measured(label: str, gatherer: Gatherer) -> None:
                before = moto.lists()
                started = time.perf_counter()
                gatherer.observe()
                seconds = time.perf_counter() - started
                print(f"  {label:42} {moto.lists() - before:9,} {seconds:9.2f}")

            Gatherer(ax.settings, ax.lake, lambda: clock[0]).observe()  # imports, not counted
            print("\nGatherer.observe() on s3:// (moto)      ListObjectsV2   seconds")
            measured("first (fresh monitor, whole look-back)", gatherer)
            clock[0] = now + timedelta(minutes=1)
            measured("second (a minute later)", gatherer)
            restarted = Gatherer(ax.settings, ax.lake, lambda: clock[0], store)
            measured("restarted (state store kept)", restarted)
            print(f"load {os.getloadavg()[0]:.2f}")
        finally:
            moto.stop()


if __name__ == "__main__":
    main()
