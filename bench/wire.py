"""Impression pixel and click redirect under wrk, beside a bare ASGI GIF responder.

Starts ``advertisex serve --workers N`` (fsync on, the default: every pixel and click is
durable before its answer; N defaults to the core count, as ``serve``'s does) on a fresh
data directory, and the reference ceiling (bench/wire_ceiling.py: the GIF or the 302 and
nothing else, on the same uvicorn + uvloop + httptools stack, ``uvicorn --workers N``),
then loads each endpoint of each server with wrk (Debian package ``wrk``; ``make
bench-wire`` installs it) in two ways:

* **paced** — ``--rate`` requests/s (default 10,000, the target) spread over
  ``--connections`` keep-alive connections with wrk's per-request ``delay()``: latency
  percentiles at that offered rate (the achieved rate is printed beside them). wrk is
  not wrk2 (Debian has no wrk2): a connection waits for its answer before its next
  delay, so a stall delays the requests behind it instead of queueing them, and the
  percentiles understate a stall's cost (coordinated omission) — read the achieved rate
  beside them;
* **max** — 16 connections as fast as the server answers: the throughput ceiling.

Every pixel carries a fresh ``impression_id`` (so none is answered from the reload
memory: each one lands), every click a valid signature. After the run the collector is
stopped and the landed records are counted against wrk's answered requests. Also with
``--no-fsync``: the collector with fsync off, to separate the HTTP path from the disk.

    python bench/wire.py [--seconds 10] [--rate 10000] [--workers N] [--no-fsync]

Prints one line per (server, endpoint, mode) with the server's CPU time per request
(all processes and threads; on a shared machine req/s and tails mostly measure the
neighbours, CPU per request does not), the ratios to the ceiling, the machine's load
average and the fsync latency of its disk alone — a durable answer waits for one
``fdatasync`` (and, at worst, for the one in progress before it), so the disk's own p99
bounds the p99 a durable collector can reach, whatever its CPU cost; the run with fsync
off (``--no-fsync``) shows what the HTTP path reaches without that floor.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from collector import free_port, wait_ready  # noqa: E402

from advertisex.util import jsonutil  # noqa: E402

SECRET = "bench-secret"
SERVE = [sys.executable, "-m", "advertisex.cli.app", "serve"]
_RUNS = itertools.count(1)
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
LUA = """
local counter = 0
local path = "%(path)s"
local unique = %(unique)s
wrk.headers["User-Agent"] = "%(agent)s"
wrk.headers["Cookie"] = "adx_uid=bench-user"
request = function()
  counter = counter + 1
  if unique then return wrk.format("GET", path .. counter) end
  return wrk.format("GET", path)
end
%(delay)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"errors":%%d,"bad_status":%%d,' ..
    '"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def paths() -> dict[str, tuple[str, bool]]:
    from advertisex.collector.tracking.signing import sign_url

    pixel = (
        "/v1/i?campaign_id=cmp-1&ad_creative_id=cr-1&website=news.example&cpm=2.5&impression_id=b-"
    )
    click = sign_url(
        "/v1/c",
        {"campaign_id": "cmp-1", "ad_creative_id": "cr-1", "to": "https://shop.example/"},
        SECRET,
    )
    return {"pixel": (pixel, True), "click": (click, False)}


def run_wrk(
    url: str, path: str, unique: bool, seconds: float, connections: int, delay_ms: int | None
) -> dict[str, Any]:
    delay = f"delay = function() return {delay_ms} end" if delay_ms else ""
    if unique:  # impression ids unique across runs too: none is answered from reload memory
        path += f"{next(_RUNS)}-"
    script = LUA % {
        "path": path,
        "unique": "true" if unique else "false",
        "agent": CHROME,
        "delay": delay,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", handle.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(handle.name)
    result = jsonutil.loads(next(line for line in out.splitlines() if line.startswith("{")))
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def start_collector(data: Path, fsync: bool, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    data.mkdir(parents=True)
    (data / "none.toml").touch()  # an empty config file: nothing from the working directory
    env = {
        **os.environ,
        "ADVERTISEX_DATA_DIR": str(data),
        "ADVERTISEX_CONFIG": str(data / "none.toml"),
        "ADVERTISEX_COLLECTOR__TRACKING__CLICK_SECRET": SECRET,
        "ADVERTISEX_COLLECTOR__FSYNC": "true" if fsync else "false",
    }
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, "/readyz")
    return process, url


def start_ceiling(workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "wire_ceiling:app", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
            "--no-access-log", "--workers", str(workers),
        ],
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, "/readyz")
    return process, url


def landed(data: Path) -> dict[str, int]:
    counts = {}
    for source in ("impressions", "clicks"):
        files = (data / "landing" / source).rglob("*.ndjson")
        counts[source] = sum(
            f.read_bytes().count(b"\n") for f in files if not f.name.startswith(".")
        )
    return counts


def fsync_latency_ms(directory: Path, rounds: int = 100) -> tuple[float, float]:
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    times = []
    try:
        for _ in range(rounds):
            os.write(fd, b"x" * 300)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


def line(server: str, endpoint: str, mode: str, r: dict[str, Any]) -> str:
    return (
        f"{server:<24} {endpoint:<6} {mode:<12} {r['rate']:>7,.0f} req/s  "
        f"p50 {r['p50'] / 1000:6.2f} ms  p90 {r['p90'] / 1000:6.2f} ms  "
        f"p99 {r['p99'] / 1000:7.2f} ms  max {r['max'] / 1000:6.1f} ms  "
        f"server CPU {r['cpu_us']:5.0f} µs/req ({r['share']:.0%} of a core)  "
        f"errors {r['errors'] + r['bad_status']}"
    )


def measure(
    name: str, url: str, pid: int, seconds: float, rate: int, connections: int
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each endpoint paced and flat out; with the server's own CPU time per request (all its
    threads), which — unlike req/s on a shared machine — does not depend on what else runs."""
    import psutil

    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]  # the workers (and what they started)

    def cpu_seconds() -> float:
        total = 0.0
        for process in processes:
            try:
                total += sum(process.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total

    results = {}
    delay_ms = max(1, round(connections * 1000 / rate) - 1)  # -1: about a request's own time
    for endpoint, (path, unique) in paths().items():
        warm = run_wrk(url, path, unique, 2, 16, None)
        results[(endpoint, "warm-up")] = warm
        for mode, conns, delay in (
            (f"paced {rate // 1000}k/s", connections, delay_ms),
            ("max c16", 16, None),
        ):
            before = cpu_seconds()
            result = run_wrk(url, path, unique, seconds, conns, delay)
            cpu = cpu_seconds() - before
            result["cpu_us"] = cpu / max(result["requests"], 1) * 1e6
            result["share"] = cpu / (result["duration_us"] / 1e6)
            results[(endpoint, mode)] = result
            print(line(name, endpoint, mode, result), flush=True)
    return results


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=10_000, help="paced offered rate, req/s")
    parser.add_argument("--connections", type=int, default=100, help="for the paced runs")
    parser.add_argument("--no-fsync", action="store_true", help="also the collector, fsync off")
    parser.add_argument(
        "--workers", type=int, default=len(os.sched_getaffinity(0)), help="processes per server"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit(
            "wrk is not installed: `make bench-wire` installs it (apt-get install wrk)"
        )

    print(f"load average before: {os.getloadavg()[0]:.2f} (2-core machine: {os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="adx-wire-") as work:
        root = Path(work)
        p50, p99 = fsync_latency_ms(root, rounds=300)
        print(
            f"disk fdatasync of 300 bytes here, alone: p50 {p50:.2f} ms, p99 {p99:.2f} ms — "
            f"the floor under a durable answer's p99 (target 5 ms: "
            f"{'within' if p99 <= 5 else 'the disk alone is over it'})"
        )
        print(f"{args.workers} worker process(es) per server")
        ceiling, ceiling_url = start_ceiling(args.workers)
        try:
            bare = measure(
                "bare ASGI responder",
                ceiling_url,
                ceiling.pid,
                args.seconds,
                args.rate,
                args.connections,
            )
        finally:
            stop(ceiling)
        runs = [("advertisex serve", True)] + (
            [("advertisex, fsync off", False)] if args.no_fsync else []
        )
        for name, fsync in runs:
            data = root / ("fsync" if fsync else "nofsync")
            process, url = start_collector(data, fsync, args.workers)
            try:
                ours = measure(name, url, process.pid, args.seconds, args.rate, args.connections)
            finally:
                stop(process)
            answered = {
                "impressions": sum(r["requests"] for (e, _), r in ours.items() if e == "pixel"),
                "clicks": sum(r["requests"] for (e, _), r in ours.items() if e == "click"),
            }
            found = landed(data)
            print(
                f"  landed {found['impressions']:,} impressions and {found['clicks']:,} clicks "
                f"for {answered['impressions']:,} and {answered['clicks']:,} answered by wrk "
                "(more can land: requests in flight when wrk stops are not counted by it)"
            )
            for key, result in ours.items():
                if key[1] == "warm-up":
                    continue
                base = bare[key]
                if key[1].startswith("paced"):
                    met = result["p99"] <= 5000 and result["rate"] >= 0.95 * args.rate
                    print(
                        f"  {key[0]:<6} {key[1]:<12} target p99 ≤ 5 ms at {args.rate:,}/s: "
                        f"{'MET' if met else 'not met'} (p99 {result['p99'] / 1000:.2f} ms at "
                        f"{result['rate']:,.0f}/s; bare responder {base['p99'] / 1000:.2f} ms; "
                        f"disk fdatasync p99 alone {p99:.2f} ms)"
                    )
                print(
                    f"  {key[0]:<6} {key[1]:<12} against the bare responder: "
                    f"{result['rate'] / base['rate']:.2f}× the req/s, "
                    f"{result['p99'] / max(base['p99'], 1):.1f}× the p99, "
                    f"{result['cpu_us'] / max(base['cpu_us'], 1):.1f}× the CPU per request "
                    f"(one core: ≈{1e6 / result['cpu_us']:,.0f} req/s against "
                    f"≈{1e6 / base['cpu_us']:,.0f})"
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
