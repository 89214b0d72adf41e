"""Segments through the decoder workers, as the embedded runner sends them: the runner's CPU.

Frames every file of ``bench/process.py``'s data set (all three sources) with
``frame_segment`` under the processor's decode budgets, on two threads as a batch's piece
threads do, and prints the CPU time of this process (every thread: sending each segment's
bytes to a worker, receiving its frame back) and the wall time per round, and how long
after ``warm()`` the first frames arrived (the workers' start and their first jobs). The
workers' own CPU is not in the figure: it is what the decoding costs wherever it runs.

    python bench/decode.py [--events 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import positive
from process import _dataset


class _Segment:
    def __init__(self, source: str, name: str) -> None:
        self.source, self.name = source, name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=positive, default=1_000_000)
    parser.add_argument("--rounds", type=positive, default=3)
    args = parser.parse_args()

    from advertisex.config import ProcessorSettings
    from advertisex.formats.bounded import DecodeLimits, warm
    from advertisex.formats.decode import frame_segment

    folder = _dataset(args.events)
    segments = [
        (index, _Segment(source, path), Path(path).read_bytes())
        for index, (source, path) in enumerate(
            (source, path)
            for source in ("impressions", "bids", "clicks")
            for path in sorted(glob.glob(str(folder / source / "*")))
        )
    ]
    limits = DecodeLimits.of(ProcessorSettings())
    started = time.perf_counter()
    arrived: list[float] = []

    def frame(item: tuple[int, _Segment, bytes]) -> int:
        index, segment, data = item
        rows = frame_segment(index, segment, data, limits).num_rows
        arrived.append(time.perf_counter() - started)
        return rows

    warm()
    with ThreadPoolExecutor(max_workers=2) as pool:  # the workers' first jobs, not counted
        list(pool.map(frame, segments[:2] + segments[-2:]))
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(
        f"first frame {min(arrived):.2f} s after warm(), the first four {max(arrived):.2f} s "
        "(the workers' start and first jobs)"
    )
    for round_ in range(1, args.rounds + 1):
        cpu, wall = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            records = sum(pool.map(frame, segments))
        print(
            f"round {round_}: {records:,} records from {len(segments)} segments: "
            f"the runner's CPU {time.process_time() - cpu:.2f} s, wall "
            f"{time.perf_counter() - wall:.2f} s, load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
