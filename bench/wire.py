"""Impression pixel and click redirect under an open-loop constant rate, beside a bare ASGI
GIF responder loaded the same way in the same run.

Starts ``advertisex serve`` (fsync on, the default: every pixel and click is durable
before its answer) on a fresh data directory, and the reference ceiling
(bench/wire_ceiling.py: the GIF or the 302 and nothing else, on the same uvicorn + uvloop +
httptools stack), then loads each endpoint of each server with wrk (Debian package ``wrk``;
``make bench-wire`` installs it) in two ways:

* **paced**, at each of ``--rates`` (default 2, 4, 6, 8 and 10 thousand requests/s) — an
  open loop on a fixed schedule (bench/wire_paced.lua): request n goes at t0 + n / rate
  over ``--connections`` keep-alive connections (default 100), one per wrk thread, and its
  latency runs from its *intended* send time, so a request that waits for a busy
  connection counts the wait (no coordinated omission: wrk's own ``delay()`` pacing timed
  each request from when it was written, and a stall hid the requests behind it). wrk's uncorrected p99 is
  printed beside the corrected one;
* **max** — 16 connections as fast as the server answers (a closed loop): the ceiling.

Placements (``--placements``): ``split`` pins wrk to CPU 0 and the server, one worker, to
CPU 1 (``taskset``), so the generator does not take the server's core; ``shared`` leaves
both unpinned on every core with ``--workers`` processes per server (default the core
count, as ``serve``'s). Every pixel carries a fresh ``impression_id`` (so none is answered
from the reload memory: each one lands), every click a valid signature. After the run the
collector is stopped and the landed records are counted against the answered requests.
``--no-fsync`` adds the collector with fsync off, to separate the HTTP path from the disk.

    python bench/wire.py [--seconds 5] [--rates 2000,4000,6000,8000,10000]
                         [--placements split,shared] [--connections 100] [--no-fsync]

Prints one line per (placement, server, endpoint, rate) with the server's CPU time per
request (all its processes and threads; on a shared machine req/s and tails mostly measure
the neighbours, CPU per request does not) and the generator's own CPU share, then per
placement and endpoint a table of rate → p99 of each server and their ratio, with the
highest rate at which each kept p99 ≤ 5 ms (the issue's target at 10,000/s), the machine's
load average and the fsync latency of its disk alone — a durable answer waits for one
``fdatasync`` (and, at worst, for the one in progress before it), so the disk's own p99
bounds the p99 a durable collector can reach, whatever its CPU cost.

Each table ends with what limited the run: a rate at which wrk used ≥ 90 % of the CPUs it
may run on is marked ``wrk-bound`` (the generator, not only the server, may be the limit),
and when the bare responder itself misses the target at the highest rate the verdict says
so — then the ratio to it, in p99 and in CPU per request, is the run's figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _args import positive, positive_seconds  # noqa: E402
from collector import free_port, wait_ready  # noqa: E402
from fsync_floor import describe, probe, summary  # noqa: E402

from advertisex.util import jsonutil  # noqa: E402

SECRET = "bench-secret"
SERVE = [sys.executable, "-m", "advertisex.cli.app", "serve"]
TARGET_P99_US = 5000
# wrk using this share of the CPUs it may run on is itself near its limit: a paced run's
# tails then say as much about the generator as about the server.
GENERATOR_BUSY = 0.9
# Paced connections (one wrk thread each): with 50, a connection had to be answered within
# 5 ms on average at 10 k/s or its next requests went late — the generator's own bound.
DEFAULT_CONNECTIONS = 100
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
FLAT_OUT = """
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
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"duration_us":%%d,"errors":%%d,"bad_status":%%d,' ..
    '"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""
PLACEMENTS = {
    # name: (CPUs of the generator, CPUs of the server, workers per server or None = --workers)
    "split": ("0", "1", 1),
    "shared": (None, None, None),
}


class Ids:
    """Impression ids unique across every run of the script (none hits the reload memory)."""

    def __init__(self) -> None:
        self.runs = 0

    def path(self, path: str, unique: bool) -> str:
        self.runs += 1
        return f"{path}{self.runs}-" if unique else path


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


def pinned(cpus: str | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


def run_wrk(command: list[str], seconds: float) -> tuple[dict[str, Any], float]:
    """wrk's JSON line and the CPU seconds the generator itself used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return jsonutil.loads(next(line for line in out.splitlines() if line.startswith("{"))), cpu


def flat_out(url: str, path: str, unique: bool, seconds: float, cpus: str | None) -> dict[str, Any]:
    script = FLAT_OUT % {"path": path, "unique": "true" if unique else "false", "agent": CHROME}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        command = ["wrk", "-t1", "-c16", f"-d{int(seconds)}s", "-s", handle.name, url]
        result, cpu = run_wrk(pinned(cpus, command), seconds)
    finally:
        os.unlink(handle.name)
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    result["gen_cpu"] = cpu
    return result


def paced(
    url: str, path: str, unique: bool, seconds: float, rate: int, connections: int,
    cpus: str | None, log: Path | None = None,
):  # fmt: skip
    """One paced run; with ``log``, every answer's times go there (bench/wire_paced.lua)."""
    command = [
        "wrk", f"-t{connections}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s",
        "-s", str(HERE / "wire_paced.lua"), url, "--",
        str(rate), path, "true" if unique else "false", CHROME, str(connections),
        *([str(log)] if log else []),
    ]  # fmt: skip
    result, cpu = run_wrk(pinned(cpus, command), seconds)
    window = result["window_us"] / 1e6
    result["rate"] = result["requests"] / window
    result["offered"] = rate
    result["gen_cpu"] = cpu
    return result


def start_collector(
    data: Path, fsync: bool, workers: int, cpus: str | None, serve: list[str] = SERVE
) -> tuple[subprocess.Popen[bytes], str]:
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
        pinned(cpus, [*serve, "--port", str(port), "--workers", str(workers)]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, "/readyz")
    return process, url


def start_ceiling(workers: int, cpus: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        pinned(cpus, [
            sys.executable, "-m", "uvicorn", "wire_ceiling:app", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
            "--no-access-log", "--workers", str(workers),
        ]),
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


def line(server: str, endpoint: str, mode: str, r: dict[str, Any]) -> str:
    corrected = (
        f"p99.9 {r['p999'] / 1000:6.2f} ms  wrk's own p99 {r['uncorrected_p99'] / 1000:6.2f} ms  "
        f"sent late {r['late_sends']:,}  "
        if "p999" in r
        else ""
    )
    return (
        f"{server:<22} {endpoint:<6} {mode:<11} {r['rate']:>7,.0f} req/s  "
        f"p50 {r['p50'] / 1000:6.2f} ms  p90 {r['p90'] / 1000:6.2f} ms  "
        f"p99 {r['p99'] / 1000:7.2f} ms  {corrected}"
        f"server CPU {r['cpu_us']:5.0f} µs/req ({r['share']:.0%} of a core; the event loops' "
        f"threads {r['loop_us']:.0f}, the others {r['cpu_us'] - r['loop_us']:.0f})  "
        f"wrk {r['gen_share']:.0%} of a core  errors {r['errors'] + r['bad_status']}"
    )


class Server:
    """A started server's processes, for their CPU time (all workers and threads), and the
    part of it that their main threads — the event loops — used: the rest is the writer
    and keeper threads (write, ``fdatasync``, hand-offs), the capacity probe, the
    supervisor's own threads."""

    def __init__(self, pid: int) -> None:
        import psutil

        root = psutil.Process(pid)
        self.processes = [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> tuple[float, float]:
        """(CPU seconds of every process and thread, of the processes' main threads)."""
        import psutil

        total = loops = 0.0
        for process in self.processes:
            try:
                total += sum(process.cpu_times()[:2])
                loops += sum(
                    thread.user_time + thread.system_time
                    for thread in process.threads()
                    if thread.id == process.pid
                )
            except psutil.NoSuchProcess:
                pass
        return total, loops


def measure(
    name: str, url: str, pid: int, args: argparse.Namespace, cpus: str | None, ids: Ids
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each endpoint at each paced rate and flat out, with the server's own CPU per request."""
    server = Server(pid)
    results = {}
    for endpoint, (path, unique) in paths().items():
        warm = flat_out(url, ids.path(path, unique), unique, 2, cpus)
        results[(endpoint, "warm-up")] = warm
        runs = [(f"{rate // 1000}k/s", rate) for rate in args.rates] + [("max c16", None)]
        for mode, rate in runs:
            before, loops_before = server.cpu_seconds()
            if rate is None:
                result = flat_out(url, ids.path(path, unique), unique, args.seconds, cpus)
            else:
                result = paced(
                    url, ids.path(path, unique), unique, args.seconds, rate, args.connections, cpus
                )
            after, loops_after = server.cpu_seconds()
            cpu = after - before
            seconds = result["duration_us"] / 1e6
            result["cpu_us"] = cpu / max(result["requests"], 1) * 1e6
            result["loop_us"] = (loops_after - loops_before) / max(result["requests"], 1) * 1e6
            result["share"] = cpu / seconds
            result["gen_share"] = result["gen_cpu"] / seconds
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


def meets(result: dict[str, Any]) -> bool:
    """p99 within the target and the offered rate answered (≥ 95 %)."""
    return result["p99"] <= TARGET_P99_US and result["rate"] >= 0.95 * result["offered"]


def generator_busy(result: dict[str, Any], cores: int) -> bool:
    """wrk used ≥ 90 % of the ``cores`` it may run on during this run."""
    return result["gen_share"] >= GENERATOR_BUSY * cores


def verdict(
    bare: dict[str, Any], ours: dict[str, Any], busy: list[int], rate: int
) -> str:  # fmt: skip
    """What the run at the highest paced ``rate`` shows, given the rates at which the
    generator was busy: the target met or not, and when the bare responder itself misses
    it, that the ratio to the bare responder is the figure.

    >>> run = {"p99": 3000, "rate": 9990, "offered": 10000, "cpu_us": 40}
    >>> verdict(run, {**run, "p99": 4000, "cpu_us": 60}, [], 10000)
    'at 10,000/s: target MET (p99 4.0 ms; the bare responder 3.0 ms)'
    >>> print(verdict({**run, "p99": 9000}, {**run, "p99": 12000, "cpu_us": 60}, [10000], 10000))
    at 10,000/s: the bare responder itself misses the target (p99 9.0 ms): the figure is the ratio to it, p99 1.33×, CPU per request 1.50× (advertisex p99 12.0 ms); wrk-bound at 10,000/s: the generator may be the limit
    """
    if meets(bare) or meets(ours):
        met = "MET" if meets(ours) else "not met"
        said = (
            f"at {rate:,}/s: target {met} (p99 {ours['p99'] / 1000:.1f} ms; the bare responder "
            f"{bare['p99'] / 1000:.1f} ms)"
        )
    else:
        said = (
            f"at {rate:,}/s: the bare responder itself misses the target (p99 "
            f"{bare['p99'] / 1000:.1f} ms): the figure is the ratio to it, p99 "
            f"{ours['p99'] / max(bare['p99'], 1):.2f}×, CPU per request "
            f"{ours['cpu_us'] / max(bare['cpu_us'], 1e-9):.2f}× (advertisex p99 "
            f"{ours['p99'] / 1000:.1f} ms)"
        )
    if busy:
        said += (
            f"; wrk-bound at {', '.join(f'{r:,}/s' for r in busy)}: the generator may be the limit"
        )
    return said


def table(
    placement: str,
    bare: dict[tuple[str, str], dict[str, Any]],
    ours: dict[tuple[str, str], dict[str, Any]],
    rates: list[int],
    floor: float,
    gen_cores: int,
) -> None:
    """Rate → p99 of each server and their ratio; the highest rate each keeps p99 ≤ 5 ms;
    the disk's own ``fdatasync`` p99 (``floor``, ms) under them."""
    for endpoint in ("pixel", "click"):
        print(f"\n{placement}, {endpoint}: offered | bare: answered, p99 | ours: answered, p99, "
              "CPU | p99 ratio | answered ratio")  # fmt: skip
        print("|---:|---|---|---:|---:|")
        best = {"bare": 0, "ours": 0}
        busy = []
        for rate in rates:
            b, o = bare[(endpoint, f"{rate // 1000}k/s")], ours[(endpoint, f"{rate // 1000}k/s")]
            for who, result in (("bare", b), ("ours", o)):
                if meets(result):
                    best[who] = max(best[who], rate)
            mark = {True: " ✓", False: ""}
            if generator_busy(b, gen_cores) or generator_busy(o, gen_cores):
                busy.append(rate)
            print(
                f"| {rate:,}/s{' wrk-bound' if rate in busy else ''} "
                f"| {b['rate']:,.0f}/s, {b['p99'] / 1000:.1f} ms{mark[meets(b)]} "
                f"| {o['rate']:,.0f}/s, {o['p99'] / 1000:.1f} ms{mark[meets(o)]}, "
                f"{o['cpu_us']:.0f} µs (bare {b['cpu_us']:.0f}) "
                f"| {o['p99'] / max(b['p99'], 1):.1f}× | {o['rate'] / max(b['rate'], 1):.2f}× |"
            )
        b, o = bare[(endpoint, "max c16")], ours[(endpoint, "max c16")]
        print(
            f"| flat out (16 connections) | {b['rate']:,.0f}/s, {b['p99'] / 1000:.1f} ms "
            f"| {o['rate']:,.0f}/s, {o['p99'] / 1000:.1f} ms, {o['cpu_us']:.0f} µs "
            f"(bare {b['cpu_us']:.0f}) | {o['p99'] / max(b['p99'], 1):.1f}× "
            f"| {o['rate'] / max(b['rate'], 1):.2f}× |"
        )
        print(
            f"  highest rate with p99 ≤ 5 ms (✓, ≥ 95 % answered): bare responder "
            f"{best['bare'] or 'none'}, advertisex {best['ours'] or 'none'}; target 10,000/s: "
            f"{'MET' if best['ours'] >= 10_000 else 'not met'}; the disk's own fdatasync p99 in "
            f"this run {floor:.2f} ms (a durable answer's p99 cannot be below it)"
        )
        top = f"{max(rates) // 1000}k/s"
        print("  " + verdict(bare[(endpoint, top)], ours[(endpoint, top)], busy, max(rates)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=positive_seconds, default=5.0)
    parser.add_argument(
        "--rates",
        type=lambda text: [int(rate) for rate in text.split(",")],
        default=[2000, 4000, 6000, 8000, 10_000],
        help="paced offered rates, req/s, comma-separated",
    )
    parser.add_argument(
        "--connections", type=positive, default=DEFAULT_CONNECTIONS,
        help="for the paced runs (one wrk thread each); 100-200 keep the generator off the limit",
    )  # fmt: skip
    parser.add_argument(
        "--placements",
        type=lambda text: text.split(","),
        default=list(PLACEMENTS),
        help="split (wrk on CPU 0, server on CPU 1) and/or shared (no pinning)",
    )
    parser.add_argument("--no-fsync", action="store_true", help="also the collector, fsync off")
    parser.add_argument(
        "--floor-seconds",
        type=positive_seconds,
        default=10.0,
        help="the disk's fsync floor, before and after",
    )
    parser.add_argument(
        "--workers", type=positive, default=len(os.sched_getaffinity(0)), help="shared placement"
    )
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed: `make bench-wire` installs wrk")

    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    ids = Ids()
    with tempfile.TemporaryDirectory(prefix="adx-wire-") as work:
        root = Path(work)
        floors = [disk_floor(root, args.floor_seconds, "before")]
        for placement in args.placements:
            gen_cpus, server_cpus, workers = PLACEMENTS[placement]
            workers = workers or args.workers
            print(
                f"\n== {placement}: wrk on CPU {gen_cpus or 'any'}, each server on CPU "
                f"{server_cpus or 'any'} with {workers} worker(s); load "
                f"{os.getloadavg()[0]:.2f}"
            )
            ceiling, ceiling_url = start_ceiling(workers, server_cpus)
            try:
                bare = measure("bare ASGI responder", ceiling_url, ceiling.pid, args, gen_cpus, ids)
            finally:
                stop(ceiling)
            runs = [("advertisex serve", True)] + (
                [("advertisex, fsync off", False)] if args.no_fsync else []
            )
            for name, fsync in runs:
                data = root / f"{placement}-{'fsync' if fsync else 'nofsync'}"
                process, url = start_collector(data, fsync, workers, server_cpus)
                try:
                    ours = measure(name, url, process.pid, args, gen_cpus, ids)
                finally:
                    stop(process)
                answered = {
                    source: sum(r["requests"] for (e, _), r in ours.items() if e == endpoint)
                    for source, endpoint in (("impressions", "pixel"), ("clicks", "click"))
                }
                found = landed(data)
                print(
                    f"  landed {found['impressions']:,} impressions and {found['clicks']:,} "
                    f"clicks for {answered['impressions']:,} and {answered['clicks']:,} answered "
                    "(more can land: requests in flight when wrk stops are not counted)"
                )
                print(f"\n{name} ({placement}) against the bare responder, load "
                      f"{os.getloadavg()[0]:.2f}:")  # fmt: skip
                gen_cores = 1 if gen_cpus else len(os.sched_getaffinity(0))
                table(placement, bare, ours, args.rates, floors[0], gen_cores)
        floors.append(disk_floor(root, args.floor_seconds, "after"))
    print(
        f"\ndisk fdatasync floor p99 (one every 2 ms, alone): {floors[0]:.2f} ms before the "
        f"servers, {floors[1]:.2f} ms after — no durable answer's p99 can be below it "
        f"(target 5 ms: {'within' if max(floors) <= 5 else 'the disk alone is over it'})"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def disk_floor(directory: Path, seconds: float, when: str) -> float:
    """The disk's own ``fdatasync`` p99 (ms), paced as the group commit (bench/fsync_floor.py)."""
    found = summary(probe(directory, seconds))
    print(f"disk alone {when}, 300 bytes + fdatasync every 2 ms: {describe(found)}", flush=True)
    return float(found["p99"])


if __name__ == "__main__":
    main()
