"""Bench: console pages over 30 days of marts (100 M impressions' worth), quiet and under load.

    .venv/bin/python bench/console.py                        # 100 M impressions, 30 days
    .venv/bin/python bench/console.py --impressions 10000000 --load-seconds 0

The marts are synthesized as ``bench/report.py`` makes them (same generator, same
shapes). ``advertisex up`` then serves the console over that lake; each page is fetched
``--repeat`` times and timed by the server itself (its ``Server-Timing`` header: the
whole request inside the app) and by the client. The reference is the bare report call
the campaigns page is made of (``report campaigns`` in-process, as bench/report.py
times it). Then ``advertisex generate --to`` sends ``--rate`` events/s for
``--load-seconds`` and the same pages are timed again while ``up`` takes them in and
processes them. Target: overview and the 30-day campaigns page ≤ 200 ms server time.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _args import positive
from report import START, daily_rows, hourly_day


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_marts(data_dir: Path, impressions: int, days: int) -> None:
    import advertisex

    ax = advertisex.open(data_dir=data_dir)
    rng = np.random.default_rng(7)
    hourly_table = ax.lake.table("marts.campaign_hourly")
    daily_table = ax.lake.table("marts.campaign_daily")
    for i in range(days):
        part = hourly_day(rng, START + timedelta(days=i), impressions // days)
        hourly_table.append(part)
        daily_table.append(daily_rows(rng, part))
    ax.lake.ensure_all()


def time_page(client: object, url: str, repeat: int) -> tuple[float, float, float]:
    """(median server ms, p95 server ms, median client ms) of ``repeat`` GETs."""
    server, wall = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)  # type: ignore[attr-defined]
        wall.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        timing = re.search(r"dur=([\d.]+)", response.headers["server-timing"])
        assert timing is not None
        server.append(float(timing.group(1)))
    p95 = float(np.percentile(server, 95))
    return statistics.median(server), p95, statistics.median(wall)


def report_reference(data_dir: Path, days: int, repeat: int) -> float:
    import advertisex
    from advertisex.reports.campaigns import report
    from advertisex.reports.common import ReportOptions

    ax = advertisex.open(data_dir=data_dir)
    options = ReportOptions(START, START + timedelta(days=days - 1))
    report(ax, options)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        report(ax, options)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--impressions", type=positive, default=100_000_000)
    parser.add_argument("--days", type=positive, default=30)
    parser.add_argument("--repeat", type=positive, default=20)
    parser.add_argument("--rate", type=positive, default=10_000)
    parser.add_argument("--load-seconds", type=positive, default=40)
    args = parser.parse_args()

    import httpx

    last = START + timedelta(days=args.days - 1)
    pages = {
        "overview": "/",
        f"campaigns, {args.days} days": f"/campaigns?from={START}&to={last}",
        f"one campaign, {args.days} days hourly": f"/campaigns/cmp-007?from={START}&to={last}",
        "quarantine": "/quarantine",
        "lake": "/lake",
        "api report campaigns": f"/api/v1/reports/campaigns?from={START}&to={last}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        build_marts(data_dir, args.impressions, args.days)
        print(
            f"marts for {args.impressions:,} impressions over {args.days} days written in "
            f"{time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.2f}"
        )
        reference = report_reference(data_dir, args.days, 5)
        print(f"reference: report campaigns in-process {reference:.0f} ms (median of 5)")

        port = free_port()
        config = Path(tmp) / "advertisex.toml"  # empty: nothing from the working directory
        config.touch()
        env = dict(os.environ, ADVERTISEX_DATA_DIR=str(data_dir), ADVERTISEX_CONFIG=str(config))
        log = open(Path(tmp) / "up.log", "wb")  # noqa: SIM115 (closed with the process)
        up = subprocess.Popen(
            [sys.executable, "-m", "advertisex.cli.app", "up", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            client = httpx.Client(base_url=url, timeout=60)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and up.poll() is None:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise SystemExit("up did not start:\n" + (Path(tmp) / "up.log").read_text())
            for path in pages.values():  # warm: first visits open the lake, plan scans
                client.get(path).raise_for_status()

            def measure(label: str) -> None:
                print(f"\n{label} (load {os.getloadavg()[0]:.2f})")
                print(f"  {'page':40s} {'server p50':>11s} {'server p95':>11s} {'client p50':>11s}")
                for name, path in pages.items():
                    median, p95, wall = time_page(client, path, args.repeat)
                    ratio = (
                        f"  ({median / reference:.1f}× the bare report)"
                        if "campaigns" in name
                        else ""
                    )
                    print(f"  {name:40s} {median:9.0f} ms {p95:9.0f} ms {wall:9.0f} ms{ratio}")

            measure("quiet")
            if args.load_seconds:
                load = subprocess.Popen(
                    [
                        sys.executable, "-m", "advertisex.cli.app", "generate", "--to", url,
                        "--rate", str(args.rate), "--duration", str(args.load_seconds),
                        "--format", "json",
                    ],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )  # fmt: skip
                time.sleep(min(10, args.load_seconds / 3))  # let intake and processing settle
                measure(f"while up takes {args.rate:,} events/s")
                out, _ = load.communicate()
                print(f"  traffic sent: {out.strip()}")
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(120)
            log.close()


if __name__ == "__main__":
    main()
