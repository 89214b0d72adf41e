"""Hostile input against a real collector and processor: what it costs them.

Prints, with the machine's load:

1. the collector given decompression bombs — a ~1 MB Avro request whose deflate block
   inflates to ``--bomb-gib`` GiB, and a gzip'd NDJSON request as big inflated: the answer,
   how long it took, the collector's own peak memory and its decoder workers', and the
   slowest ``/healthz`` answer while the bomb was being read;
2. the processor given the same bombs as landed files beside good ones: the peak memory of
   the processor and of its decoder workers, and what became of the bombs;
3. the time a poison segment (the Avro block with a stray byte that makes polars-avro spin)
   costs the batch around it: ``--segments`` good segments processed alone, then with the
   poison among them.

    python bench/hostile.py [--bomb-gib 1] [--segments 20] [--events 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _args import positive

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.hostile import (  # noqa: E402
    BID_SCHEMA,
    avro_deflate_bomb,
    avro_file,
    bid,
    gzip_bomb,
    poison_avro,
)

# The good bids' writer schema: a plain double price, as producers write it (polars-avro's
# fast path reads it; the corpus schema's three-way union it cannot).
PLAIN = {
    **BID_SCHEMA,
    "fields": [
        *BID_SCHEMA["fields"][:3],
        {"name": "floor_price", "type": ["null", "double"], "default": None},
    ],
}
FIRST_ID = 1_000_000  # good bids' ids start here, clear of the corpus's own


class TreePeak:
    """Peak resident memory of a process and, separately, of all its descendants (polled)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.own = 0
        self.children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                self.own = max(self.own, self.root.memory_info().rss)
                kids = 0
                for child in self.root.children(recursive=True):
                    try:
                        kids = max(kids, child.memory_info().rss)
                    except psutil.Error:
                        pass
                self.children = max(self.children, kids)
            except psutil.Error:
                return
            time.sleep(0.02)

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join()
        return self.own, self.children


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def collector_bombs(scratch: Path, gib: int) -> None:
    import httpx

    env = _env(scratch / "collector")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "advertisex.cli.app", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/healthz")
        bombs = [
            ("Avro, one deflate block", "/v1/bids", avro_deflate_bomb(gib << 30), {
                "content-type": "application/avro"}),
            ("NDJSON, gzip", "/v1/impressions", gzip_bomb(gib << 30), {
                "content-type": "application/x-ndjson", "content-encoding": "gzip"}),
        ]  # fmt: skip
        print(f"1. collector, {gib} GiB decompression bombs")
        for what, path, body, headers in bombs:
            peak = TreePeak(server.pid)
            slowest = [0.0]
            done = threading.Event()

            def probe(slowest: list[float] = slowest, done: threading.Event = done) -> None:
                with httpx.Client(base_url=url, timeout=60) as client:
                    while not done.is_set():
                        started = time.perf_counter()
                        client.get("/healthz")
                        slowest[0] = max(slowest[0], time.perf_counter() - started)
                        time.sleep(0.01)

            prober = threading.Thread(target=probe)
            prober.start()
            started = time.perf_counter()
            answer = httpx.post(f"{url}{path}", content=body, headers=headers, timeout=120)
            seconds = time.perf_counter() - started
            done.set()
            prober.join()
            own, workers = peak.stop()
            code = answer.json().get("code")
            print(
                f"   {what:<24} {len(body):>10,} bytes → {answer.status_code} {code} in "
                f"{seconds:.2f} s; collector peak {mib(own)}, decoder worker peak "
                f"{mib(workers)}; slowest /healthz meanwhile {slowest[0] * 1000:.0f} ms"
            )
    finally:
        server.terminate()
        server.wait(60)


def processor_bombs(scratch: Path, gib: int, events: int) -> None:
    data = scratch / "processor"
    drop = scratch / "drop"
    drop.mkdir()
    (drop / "bomb.avro").write_bytes(avro_deflate_bomb(gib << 30))
    (drop / "bomb.ndjson.gz").write_bytes(gzip_bomb(gib << 30))
    good = [bid(FIRST_ID + i) for i in range(events)]
    (drop / "good.avro").write_bytes(avro_file(good, schema=PLAIN))
    env = _env(data)
    for name, source in [
        ("bomb.avro", "bids"),
        ("bomb.ndjson.gz", "impressions"),
        ("good.avro", "bids"),
    ]:
        _run(env, "ingest", str(drop / name), "--source", source)
    process = subprocess.Popen(
        [sys.executable, "-m", "advertisex.cli.app", "process", "--format", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak = TreePeak(process.pid)
    started = time.perf_counter()
    out, _ = process.communicate(timeout=1800)
    seconds = time.perf_counter() - started
    own, workers = peak.stop()
    from advertisex.util import jsonutil

    report = jsonutil.loads(out)
    print(f"2. processor, the same {gib} GiB bombs landed beside {events:,} good bids")
    print(
        f"   processed in {seconds:.1f} s; processor peak {mib(own)}, decoder worker peak "
        f"{mib(workers)}"
    )
    for item in report["unreadable"]:
        print(f"   set aside: {item['segment'].rsplit('/', 1)[-1]}: {item['reason'][:110]}")
    accepted = sum(s["accepted"] for s in report["sources"])
    print(f"   accepted {accepted:,} of the good records")


def poison_cost(scratch: Path, segments: int, events: int) -> None:
    print(f"3. the poison Avro among {segments} good bid segments of {events:,} records")
    timings = {}
    for with_poison in (False, True):
        data = scratch / f"poison-{with_poison}"
        import advertisex

        ax = advertisex.open(data_dir=data, correlation={"update_marts": False})
        for s in range(segments):
            rows = [bid(FIRST_ID + s * events + i) for i in range(events)]
            ax.landing.write_segment("bids", avro_file(rows, schema=PLAIN), fsync=False)
        if with_poison:
            ax.landing.write_segment("bids", poison_avro(), fsync=False)
        env = _env(data)
        env["ADVERTISEX_CORRELATION__UPDATE_MARTS"] = "false"
        started = time.perf_counter()
        _run(env, "process")
        timings[with_poison] = time.perf_counter() - started
        found = ax.query("select count(*) n from curated.bid_requests").column("n")[0].as_py()
        timings[f"found-{with_poison}"] = found
    cost = timings[True] - timings[False]
    from advertisex.config import ProcessorSettings
    from advertisex.formats.bounded import _FAST_SHARE, DecodeLimits

    limits = DecodeLimits.of(ProcessorSettings())
    share = limits.budget(len(poison_avro()), _FAST_SHARE).seconds
    print(
        f"   without the poison {timings[False]:.1f} s ({timings['found-False']:,} bids); "
        f"with it {timings[True]:.1f} s ({timings['found-True']:,} bids, the poison's one "
        f"record salvaged): the poison costs its batch {cost:+.1f} s — at most its "
        f"fast-path share of the decode budget ({share:.0f} s), spent on one of the two "
        "decoder workers while the other decodes the rest, then the record-by-record path"
    )


def _env(data: Path) -> dict[str, str]:
    data.mkdir(parents=True, exist_ok=True)
    config = data.parent / "advertisex.toml"
    config.touch()
    return dict(os.environ, ADVERTISEX_DATA_DIR=str(data), ADVERTISEX_CONFIG=str(config))


def _run(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit(f"nothing answers at {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-gib", type=positive, default=1, help="inflated size of each bomb")
    parser.add_argument("--segments", type=positive, default=20, help="good segments (poison test)")
    parser.add_argument("--events", type=positive, default=2000, help="records per good segment")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="adx-hostile-"))
    try:
        collector_bombs(scratch, args.bomb_gib)
        processor_bombs(scratch, args.bomb_gib, args.events)
        poison_cost(scratch, args.segments, args.events)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()
    print(f"machine load (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
