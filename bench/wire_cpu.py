"""CPU per pixel and per click redirect through the collector's whole Python stack, in process.

bench/wire.py measures a served collector under wrk, where the machine's load moves every
figure; this drives the very protocol ``advertisex serve`` runs (uvicorn's httptools
protocol with the collector's guards, uvicorn's proxy-headers middleware, the console
wrapper, the app, the segment writers with their group commit) over in-memory transports
on one uvloop loop, and divides the process's CPU time (``time.process_time``: the event
loop, the writer threads, the kernel's share of their writes and flushes) and its context
switches (``getrusage``: voluntary — a thread waiting for the GIL, a lock or the disk — and
involuntary, over all threads) by the requests answered. The sockets' own kernel work (two
loopback TCP endpoints) is left out: the same for every request whatever the collector
does, except that a response written in one piece is one segment instead of two.

    python bench/wire_cpu.py [--requests 20000] [--connections 50] [--fsync] [--rounds 3]
                             [--ways protocol,asgi,bare]

``--connections`` keep-alive connections each send their next request as soon as the
answer to the previous one is complete (a closed loop, like wrk flat out). Pixels carry a
fresh ``impression_id`` each (every one lands), clicks a valid signature. Prints the best
of ``--rounds`` for each endpoint (the least disturbed by the machine's other tenants);
with several ``--ways`` they take turns round by round, so an A/B sees the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _args import positive, whole

SECRET = "bench-secret"
AGENT = (
    b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/126.0 Safari/537.36"
)


def requests(endpoint: str, count: int) -> list[bytes]:
    """``count`` raw HTTP/1.1 requests as wrk sends them (bench/wire.py's paths)."""
    from advertisex.collector.tracking.signing import sign_url

    if endpoint == "pixel":
        base = "/v1/i?campaign_id=cmp-1&ad_creative_id=cr-1&website=news.example&cpm=2.5"
        run = f"{base}&impression_id=c-{os.getpid()}-{time.time_ns()}-"
        targets = [f"{run}{i}" for i in range(count)]
    else:
        link = sign_url(
            "/v1/c",
            {"campaign_id": "cmp-1", "ad_creative_id": "cr-1", "to": "https://shop.example/"},
            SECRET,
        )
        targets = [link] * count
    head = b"Host: 127.0.0.1\r\nUser-Agent: " + AGENT + b"\r\nCookie: adx_uid=bench-user\r\n\r\n"
    return [b"GET " + t.encode() + b" HTTP/1.1\r\n" + head for t in targets]


class Client:
    """One keep-alive connection: sends its next request once the answer to the last one
    (headers and ``content-length`` bytes of body) is complete."""

    def __init__(self, config: Any, state: Any, run: Run) -> None:
        from advertisex.collector.inprocess import connect

        self.loop, self.run, self.consumed = asyncio.get_running_loop(), run, 0
        self.protocol, self.transport = connect(config, state, self.written)

    def send_next(self) -> None:
        request = self.run.next_request()
        if request is not None:
            self.protocol.data_received(request)

    def written(self, transport: Any) -> None:
        data = transport.data
        end = data.find(b"\r\n\r\n", self.consumed)
        if end < 0:
            return
        head = bytes(data[self.consumed : end + 2]).lower()
        at = head.find(b"content-length: ")
        length = int(head[at + 16 : head.index(b"\r\n", at)]) if at >= 0 else 0
        if len(data) >= end + 4 + length:
            self.run.answered(bytes(data[self.consumed : end + 4 + length]))
            self.consumed = end + 4 + length
            self.loop.call_soon(self.send_next)


class Run:
    def __init__(self, batch: list[bytes]) -> None:
        self.batch, self.sent, self.done = batch, 0, 0
        self.statuses: dict[bytes, int] = {}
        self.finished = asyncio.get_running_loop().create_future()

    def next_request(self) -> bytes | None:
        if self.sent == len(self.batch):
            return None
        self.sent += 1
        return self.batch[self.sent - 1]

    def answered(self, response: bytes) -> None:
        self.done += 1
        status = response[9:12]
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if self.done == len(self.batch) and not self.finished.done():
            self.finished.set_result(None)


def switches() -> tuple[int, int]:
    """The process's context switches so far (all threads): (voluntary, involuntary)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw, usage.ru_nivcsw


Measured = tuple[float, float, Run, int, tuple[int, int]]


async def measure(config: Any, batch: list[bytes], connections: int) -> Measured:
    from advertisex.collector.inprocess import server_state

    state = server_state(config)
    run = Run(batch)
    clients = [Client(config, state, run) for _ in range(connections)]
    started, loop_started, switched = time.process_time(), time.thread_time(), switches()
    for client in clients:
        client.send_next()
    await run.finished
    cpu, loop_cpu = time.process_time() - started, time.thread_time() - loop_started
    voluntary, involuntary = (now - then for now, then in zip(switches(), switched, strict=True))
    writes = sum(c.transport.writes for c in clients)
    for client in clients:
        client.protocol.connection_lost(None)
    assert run.done == len(batch)
    return cpu, loop_cpu, run, writes, (voluntary, involuntary)


async def main_async(args: argparse.Namespace, data: Path) -> None:
    from uvicorn.lifespan.on import LifespanOn

    from advertisex.cli.console import beside_collector
    from advertisex.collector.app import create_app
    from advertisex.collector.server import uvicorn_config
    from advertisex.config import load_settings

    settings = load_settings(
        data_dir=data,
        collector={"fsync": args.fsync, "tracking": {"click_secret": SECRET}},
    )
    ways = args.ways.split(",")
    configs: dict[str, Any] = {}
    app = create_app(settings)
    wrap = beside_collector(settings)
    wrapped = wrap(app) if wrap is not None else app
    for way in ways:
        if way == "bare":  # bench/wire_ceiling.py on uvicorn's own httptools protocol
            import uvicorn
            from wire_ceiling import app as bare

            configs[way] = uvicorn.Config(
                bare, loop="uvloop", http="httptools", lifespan="off", access_log=False,
                log_level="warning",
            )  # fmt: skip
        else:  # serve's: the protocol answers the pixel and the redirect, or (asgi) not
            extra = (app.state.tracking,) if way == "protocol" else ()  # (main had no such path)
            configs[way] = uvicorn_config(settings, wrapped, *extra)
        configs[way].load()
    lifespan = (
        LifespanOn(configs[next(w for w in ways if w != "bare")]) if ways != ["bare"] else None
    )
    if lifespan is not None:
        await lifespan.startup()
    sys.setswitchinterval(0.001)  # as serve() sets it
    try:
        for endpoint in args.endpoints.split(","):
            best: dict[str, Measured] = {}
            fewest = dict.fromkeys(ways, float("inf"))  # the event loop thread's least CPU
            for way in ways:
                await measure(configs[way], requests(endpoint, args.warm_up), args.connections)
            for _ in range(args.rounds):  # the ways alternate round by round: same load
                for way in ways:
                    batch = requests(endpoint, args.requests)
                    callgrind("-i", "on", when=args.callgrind)
                    result = await measure(configs[way], batch, args.connections)
                    callgrind("-d", f"{endpoint}-{way}", "-i", "off", when=args.callgrind)
                    if way not in best or result[0] < best[way][0]:
                        best[way] = result
                    fewest[way] = min(fewest[way], result[1])
            for way in ways:
                cpu, _, run, writes, (voluntary, involuntary) = best[way]
                if args.profile:
                    import cProfile
                    import pstats

                    profiler = cProfile.Profile()
                    profiler.enable()
                    await measure(configs[way], requests(endpoint, args.requests), args.connections)
                    profiler.disable()
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
                statuses = ", ".join(
                    f"{s.decode()}: {n:,}" for s, n in sorted(run.statuses.items())
                )
                print(
                    f"{endpoint:<6} {WAYS[way]:<16} {cpu / run.done * 1e6:6.1f} µs CPU per request, "
                    f"{fewest[way] / run.done * 1e6:5.1f} µs the event loop's thread (each the "
                    f"best of {args.rounds}; {run.done:,} requests, {args.connections} "
                    f"connections, fsync {'on' if args.fsync else 'off'}; "
                    f"{writes / run.done:.1f} writes per response; {statuses}); "
                    f"{(voluntary + involuntary) / run.done:.3f} context switches per request "
                    f"({voluntary / run.done:.3f} voluntary, {involuntary / run.done:.3f} "
                    "involuntary, the best round's)",
                    flush=True,
                )
    finally:
        if lifespan is not None:
            await lifespan.shutdown()


def callgrind(*command: str, when: bool) -> None:
    """Tell the valgrind this runs under (``--callgrind``): counters zeroed, instrumentation
    on or off, a dump named after what was measured."""
    if when:
        import subprocess

        pid = str(os.getpid())
        for at in range(0, len(command), 2):
            subprocess.run(["callgrind_control", *command[at : at + 2], pid], check=True,
                           capture_output=True)  # fmt: skip


WAYS = {"protocol": "serve's protocol", "asgi": "the ASGI way", "bare": "bare responder"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=positive, default=20_000)
    parser.add_argument("--connections", type=positive, default=50)
    parser.add_argument("--rounds", type=positive, default=3)
    parser.add_argument("--warm-up", type=positive, default=2000, help="requests before the rounds")
    parser.add_argument("--endpoints", default="pixel,click")
    parser.add_argument(
        "--ways", default="protocol",
        help="comma-separated, measured round by round in turn: protocol (serve's: the "
        "protocol answers the pixel and the redirect), asgi (serve's protocol answering "
        "them the ASGI way), bare (the bare ASGI GIF/302 responder: the floor)",
    )  # fmt: skip
    parser.add_argument("--bare", action="store_true", help="= --ways bare")
    parser.add_argument(
        "--callgrind", action="store_true",
        help="under `valgrind --tool=callgrind --instr-atstart=no`: instructions counted for "
        "the measured rounds only, one dump per endpoint and way (CPU time is meaningless then)",
    )  # fmt: skip
    parser.add_argument("--fsync", action="store_true", help="fsync each group (serve's default)")
    parser.add_argument(
        "--profile", type=whole, default=0, metavar="N",
        help="then one more round under cProfile (the event loop's thread): its N costliest functions",
    )  # fmt: skip
    args = parser.parse_args()
    if args.bare:
        args.ways = "bare"
    print(f"load average: {os.getloadavg()[0]:.2f}")
    import uvloop

    with tempfile.TemporaryDirectory(prefix="adx-wire-cpu-") as work:
        uvloop.run(main_async(args, Path(work) / "data"))


if __name__ == "__main__":
    main()
