"""Event times decades apart: what a batch of them costs `process` on a generated lake.

Prints, with the machine's load, the wall time of `advertisex process` for:

1. a generated day (``--events``), the lake's first batch;
2. two impressions, one at 1970-01-01T00:00:00Z (epoch 0, a producer's "no time") and one
   on the generated day: the dedupe lookup's horizons around each (was: every day between,
   53 s);
3. ``--scattered`` impressions a week apart since 1970: one day partition each, and the
   marts rebuilt rather than updated hour run by hour run (was: more than 13 minutes).

    python bench/scattered.py [--events 20000] [--scattered 3000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _args import positive

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advertisex.util.jsonutil import dumps_str, loads

CLI = [sys.executable, "-m", "advertisex.cli.app"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _run(folder: Path, *args: str) -> tuple[float, str]:
    """Seconds ``advertisex args`` took in ``folder``, and its output; fails loudly."""
    started = time.perf_counter()
    done = subprocess.run(
        [*CLI, *args], cwd=folder, capture_output=True, text=True, env={**os.environ}
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"advertisex {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def _land(folder: Path, name: str, template: dict, times: list[datetime]) -> None:
    """Impressions shaped like ``template``, one at each of ``times``, ingested."""
    drop = folder / name
    drop.mkdir()
    with open(drop / f"impressions-{name}.ndjson", "w") as out:
        for k, at in enumerate(times):
            record = {**template, "impression_id": f"imp-{name}-{k}"}
            record["timestamp"] = at.isoformat().replace("+00:00", "Z")
            out.write(dumps_str(record) + "\n")
    _run(folder, "ingest", str(drop))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=20_000)
    parser.add_argument("--scattered", type=positive, default=3_000)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="adx-scattered-") as tmp:
        folder = Path(tmp)
        _run(folder, "generate", "--out", "gen", "--events", str(args.events), "--seed", "3")
        _run(folder, "ingest", "gen")
        seconds, _ = _run(folder, "process")
        print(f"a generated day, {args.events:,} events: {seconds:.1f} s")
        first = next((folder / "gen" / "impressions").iterdir())
        template = loads(first.read_text().splitlines()[0])
        day = datetime.fromisoformat(template["timestamp"].replace("Z", "+00:00"))
        _land(folder, "epoch", template, [EPOCH, day])
        seconds, _ = _run(folder, "process")
        print(f"two impressions, of 1970-01-01 and {day:%Y-%m-%d}: {seconds:.1f} s")
        week = timedelta(days=7)
        _land(folder, "weekly", template, [EPOCH + k * week for k in range(args.scattered)])
        seconds, out = _run(folder, "process", "--format", "json")
        mode = loads(out)["marts"]
        print(
            f"{args.scattered:,} impressions a week apart since 1970: {seconds:.1f} s (marts: {mode})"
        )


if __name__ == "__main__":
    main()
