"""Events acknowledged vs found, across SIGKILLs of the collector and the processor.

Senders post impressions (NDJSON) and bid requests (Avro), each with a unique id, to a real
``advertisex serve`` while ``advertisex process --follow`` keeps the tables (and marts)
current; meanwhile the collector and the follower are each SIGKILLed ``--kills`` times,
alternately, and restarted. At the end the landing zone is drained and every acknowledged
id is looked for in the curated tables. Prints the events acknowledged, found, lost and
doubled, the kills, and whether the marts equal a rebuild from the curated tables.

    python bench/kills.py [--seconds 60] [--kills 3] [--senders 4]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from _args import positive, positive_seconds

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests" / "collector")]

from collector_helpers import ServerProcess, impressions, ndjson  # noqa: E402

from tests.hostile import avro_file, bid  # noqa: E402

PER_REQUEST = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=positive_seconds, default=60.0, help="how long senders send"
    )
    parser.add_argument("--kills", type=positive, default=3, help="SIGKILLs of each process")
    parser.add_argument("--senders", type=positive, default=4)
    args = parser.parse_args()

    import httpx

    import advertisex

    scratch = Path(tempfile.mkdtemp(prefix="adx-kills-"))
    data = scratch / "data"
    config = scratch / "empty-advertisex.toml"  # the file ServerProcess makes for itself too
    config.touch()
    env = dict(
        os.environ,
        ADVERTISEX_DATA_DIR=str(data),
        ADVERTISEX_CONFIG=str(config),
        ADVERTISEX_CORRELATION__FOLLOW_MARTS_EVERY_SECONDS="2",
    )
    collector = ServerProcess(data, ADVERTISEX_COLLECTOR__SEGMENT_MAX_AGE_SECONDS="0.5").start()
    follower = _follow(env)
    acked: dict[str, list[str]] = {"impressions": [], "bids": []}
    lock = threading.Lock()
    stop = threading.Event()

    def send(worker: int) -> None:
        source = "bids" if worker == 0 else "impressions"
        with httpx.Client(base_url=collector.url, timeout=30) as http:
            for n in range(10**9):
                if stop.is_set():
                    return
                if source == "bids":
                    rows = [bid(0, auction_id=f"k-{worker}-{n}-{i}") for i in range(PER_REQUEST)]
                    ids = [str(r["auction_id"]) for r in rows]
                    body, kind = avro_file(rows), "application/avro"
                else:
                    records = impressions(PER_REQUEST, f"k-{worker}-{n}")
                    ids = [r["impression_id"] for r in records]
                    body, kind = ndjson(records), "application/x-ndjson"
                try:
                    answer = http.post(
                        f"/v1/{source}", content=body, headers={"content-type": kind}
                    )
                except httpx.TransportError:
                    time.sleep(0.05)  # the collector is gone: no answer, no promise
                    continue
                if answer.status_code == 200:
                    with lock:
                        acked[source].extend(ids)

    senders = [threading.Thread(target=send, args=(w,)) for w in range(args.senders)]
    for thread in senders:
        thread.start()
    kills = {"collector": 0, "processor": 0}
    pause = args.seconds / (2 * args.kills + 1)
    for k in range(2 * args.kills):
        time.sleep(pause)
        if k % 2 == 0:
            collector.stop(signal.SIGKILL)
            collector = ServerProcess(data, port=collector.port).start()  # recovers its files
            kills["collector"] += 1
        else:
            follower.kill()
            follower.wait()
            follower = _follow(env)
            kills["processor"] += 1
    time.sleep(pause)
    stop.set()
    for thread in senders:
        thread.join(60)
    collector.stop()
    follower.send_signal(signal.SIGTERM)
    follower.wait(120)
    drained = subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", "process"], env=env, capture_output=True
    )
    assert drained.returncode == 0, drained.stderr

    ax = advertisex.open(data_dir=data)
    found = {
        "impressions": Counter(
            ax.query("select impression_id from curated.impressions").column(0).to_pylist()
        ),
        "bids": Counter(
            ax.query("select auction_id from curated.bid_requests").column(0).to_pylist()
        ),
    }
    from tests.table_snapshots import snapshot

    marts = sorted(_mart_tables())
    kept = snapshot(ax, marts)
    ax.refresh_marts(rebuild=True)
    rebuilt = snapshot(advertisex.open(data_dir=data), marts)

    total_acked = total_found = lost = doubled = 0
    for source, ids in acked.items():
        total_acked += len(ids)
        total_found += sum(1 for i in ids if found[source][i])
        lost += sum(1 for i in ids if not found[source][i])
        doubled += sum(1 for n in found[source].values() if n > 1)
    load = os.getloadavg()
    print(f"kills: collector {kills['collector']}×, processor {kills['processor']}× (SIGKILL)")
    print(f"events acknowledged: {total_acked:,}")
    print(f"events found:        {total_found:,}")
    print(f"lost:                {lost:,}")
    print(f"doubled:             {doubled:,}")
    print(f"marts equal a rebuild from the curated tables: {'yes' if kept == rebuilt else 'NO'}")
    print(f"machine load (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    sys.exit(0 if not lost and not doubled and kept == rebuilt else 1)


def _follow(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "advertisex.cli.app", "process", "--follow", "--interval", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _mart_tables() -> list[str]:
    from advertisex.model.schemas import TABLES

    return [n for n in TABLES if n.startswith("marts.") and n != "marts.state"]


if __name__ == "__main__":
    main()
