"""Peak memory of framing one large NDJSON impressions segment (issue 14).

python bench/frame_memory.py [--mib 100] [--jobs 3]

Writes a segment of about ``--mib`` MiB of impression lines, then prints two figures:
what framing it in this process adds to the peak RSS (imports and the engine warmed
first, the segment's bytes already read), and the peak RSS (``VmHWM``) of the decoder
worker that framed it ``--jobs`` times through ``formats.decode.frame_segment`` with the
default limits, as the processor does.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
from pathlib import Path

from _args import positive


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_segment(path: Path, mib: int) -> None:
    """About ``mib`` MiB of impression lines, written as they are made (what a process
    held to make them would be in its peak before framing starts)."""
    from advertisex.util import jsonutil

    rng = random.Random(1)
    with path.open("wb") as out:
        while out.tell() < mib << 20:
            record = {
                "impression_id": f"i{rng.random()}",
                "timestamp": "2026-12-01T10:00:00Z",
                "ad_creative_id": f"c{rng.randrange(1000)}",
                "user_id": f"u{rng.randrange(10**6)}",
                "website": "example.com",
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120",
                "ip": "10.0.0.1",
                "cost": rng.random(),
            }
            out.write(jsonutil.dumps(record) + b"\n")


def _descendants(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def _hwm_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
    return 0


class _Segment:
    source = "impressions"
    name = "impressions/2026-12-01/10/segment.ndjson"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=positive, default=100)
    parser.add_argument("--jobs", type=positive, default=3)
    args = parser.parse_args()

    from advertisex.formats.bounded import DecodeLimits
    from advertisex.formats.decode import frame_segment
    from advertisex.formats.jsonfmt import frame_json

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "segment.ndjson")
        _write_segment(path, args.mib)
        frame_json(b'{"a":1}\n')  # imports, the engine, Arrow's first conversions
        data = path.read_bytes()
    before = _peak_mib()
    rows = frame_json(data).num_rows
    print(f"{len(data) / 2**20:.0f} MiB, {rows:,} lines")
    print(f"framing in this process adds {_peak_mib() - before:.0f} MiB to the peak RSS")
    for _ in range(args.jobs):
        frame_segment(0, _Segment(), data, DecodeLimits())
    workers = sorted(_hwm_mib(pid) for pid in _descendants(os.getpid()))
    print(f"decoder processes' peak RSS (VmHWM, MiB; forkserver first): {workers}")


if __name__ == "__main__":
    main()
