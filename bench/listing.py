"""A follower's pass over the landing zone: CPU per pass after a long day of micro-batches.

Lands ``--past-hours`` hours of ``--per-hour`` segments for each of the three sources
(their folders settled, as an hour's folder is once it stops changing) and
``--current`` segments per source in the current hour, all committed (the follower's
skip set), then times passes that each land one new segment and list what is pending —
what ``process --follow`` does before every micro-batch. The cost should follow the
current hour's segments (the kernel's directory read), not the day's.

    python bench/listing.py [--past-hours 20] [--per-hour 1000] [--current 3000] [--passes 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _args import positive

SOURCES = ("impressions", "bids", "clicks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--past-hours", type=positive, default=20)
    parser.add_argument("--per-hour", type=positive, default=1000)
    parser.add_argument("--current", type=positive, default=3000)
    parser.add_argument("--passes", type=positive, default=20)
    args = parser.parse_args()

    from advertisex.landing.zone import LandingZone

    root = Path(tempfile.mkdtemp(prefix="listing-"))
    try:
        zone = LandingZone(root)
        now = datetime.now(UTC)
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=args.past_hours)
        done = set()
        for hour in range(args.past_hours):
            for k in range(args.per_hour):
                at = start + timedelta(hours=hour, microseconds=k)
                for source in SOURCES:
                    done.add(zone.write_segment(source, b"{}\n", at=at, fsync=False).name)
        for _ in range(args.current):
            for source in SOURCES:
                done.add(zone.write_segment(source, b"{}\n", fsync=False).name)
        settled = 1_700_000_000_000_000_000  # long ago
        for folder, _, _ in os.walk(root):
            if not folder.endswith(f"/{now:%H}"):  # the past hours' folders have settled
                os.utime(folder, ns=(settled, settled))
        zone.segments(since=start.date(), skip=done)  # the follower's first pass reads all
        started = time.process_time()
        for _ in range(args.passes):
            done.add(zone.write_segment("impressions", b"{}\n", fsync=False).name)
            zone.segments(since=start.date(), skip=done)
        per_pass = (time.process_time() - started) / args.passes
        print(
            f"{args.past_hours} past hours × {args.per_hour:,} + current hour {args.current:,} "
            f"segments a source (× {len(SOURCES)}): {per_pass * 1000:.2f} ms of CPU a pass "
            f"(load {os.getloadavg()[0]:.1f})"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
