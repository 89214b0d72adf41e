"""The ingest index's room on disk, before and after ``maintain`` packs its old markers.

Every file ``ingest`` lands leaves a marker (``landing/_index/blake3/<2 hex>/<hash>``) so
that the same bytes never land twice: a file each, for good. Makes ``--markers`` of them
(a day old, as after a day of ingests), then times ``LandingZone.pack_markers`` and
prints the index folder's blocks and files before and after, and a look-up's time in each
form (the one an ingest makes for each file it is handed).

    python bench/markers.py [--markers 100000]
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
from _checkout import use_this_checkout


def _room(folder: Path) -> tuple[int, int]:
    """(bytes of the blocks, files) under ``folder``."""
    blocks = files = 0
    for root, _, names in os.walk(folder):
        for name in names:
            blocks += os.stat(os.path.join(root, name)).st_blocks * 512
            files += 1
    return blocks, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markers", type=positive, default=100_000)
    args = parser.parse_args()
    use_this_checkout()
    from blake3 import blake3

    from advertisex.landing.zone import LandingZone, marker

    work = Path(tempfile.mkdtemp(prefix="adx-markers-"))
    try:
        zone = LandingZone(work / "landing")
        day_old = (datetime.now(UTC) - timedelta(days=2)).timestamp()
        digests = [blake3(str(i).encode()).hexdigest() for i in range(args.markers)]
        for i, digest in enumerate(digests):
            path = zone.root / marker(digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"impressions/2026-12-03/10/20261203T100000{i:06d}Z-x.ndjson\n")
            os.utime(path, (day_old, day_old))
        index = zone.root / "_index"

        sample = digests[:: max(1, len(digests) // 2000)]
        unseen = [blake3(f"new {i}".encode()).hexdigest() for i in range(len(sample))]

        def lookups() -> str:
            """µs a look-up of landed bytes, and of new bytes (every new file's)."""
            took = []
            for wanted, found in ((sample, True), (unseen, False)):
                started = time.perf_counter()
                for digest in wanted:
                    assert (zone._marked(marker(digest)) is not None) is found
                took.append((time.perf_counter() - started) / len(wanted) * 1e6)
            return f"a look-up {took[0]:.0f} µs, of new bytes {took[1]:.0f} µs"

        room, files = _room(index)
        print(
            f"{args.markers:,} markers as files: {room / 1e6:.1f} MB of blocks, {files:,} files; "
            f"{lookups()}"
        )
        started = time.perf_counter()
        packed = zone.pack_markers(datetime.now(UTC))
        seconds = time.perf_counter() - started
        room, files = _room(index)
        print(
            f"packed {packed:,} in {seconds:.2f} s: {room / 1e6:.1f} MB of blocks, {files:,} files; "
            f"{lookups()}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
