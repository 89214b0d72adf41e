"""What `forget`'s word summaries cost to build, against the search they spare.

Generates a lake's landing zone (``advertisex generate`` then ``ingest``; no processing),
then, for every landing file, times in CPU of this thread (the median of ``--repeat``):
the first erasure's search of it for an id it does not hold (``runners.forget``'s
``_scrub_segment``, *search*); its summary (``formats.scrubwords.words_of``) by the compiled
helpers (``native/words.c``) from the texts that search inflated, as ``forget`` makes it
(*words*), and from the file alone, inflated again (*C alone*); and by the Python code the
helpers stand in for where they were not built (NumPy and Arrow, *Python*). Prints ms of
CPU per MB of landing bytes, per source and in all, and checks that every summary is the
same bytes.

    python bench/words.py [--events 1000000] [--days 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from unittest import mock

from _args import positive

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advertisex import native
from advertisex.formats import scrubwords
from advertisex.formats.decode import container_format
from advertisex.formats.scrub import Forgotten
from advertisex.landing.zone import LandingZone
from advertisex.runners.forget import _scrub_segment

CLI = [sys.executable, "-m", "advertisex.cli.app"]


def _cpu(work: Callable[[], object], repeat: int) -> float:
    """The median CPU seconds of this thread that ``work()`` takes."""
    times = []
    for _ in range(repeat):
        started = time.thread_time()
        work()
        times.append(time.thread_time() - started)
    return statistics.median(times)


def _python_words(data: bytes, container: str) -> bytes | None:
    with mock.patch.object(scrubwords, "distinct_words", lambda *_: None):
        return scrubwords.words_of(data, container)


def _measured(zone: LandingZone, repeat: int) -> dict[str, list[float]]:
    """Per source and in all: [MB, CPU s of the search, of the compiled words of the texts
    it searched (as forget keeps them), of the file (inflated again), of Python's]."""
    absent = Forgotten(["u-9999999"])
    seconds: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    for segment in zone.segments():
        data = zone.read(segment)
        container = container_format(segment)
        compiled = scrubwords.words_of(data, container)
        if compiled != _python_words(data, container):
            sys.exit(f"{segment.name}: the compiled words differ from the Python code's")
        search = _cpu(partial(_scrub_segment, segment, data, absent), repeat)
        searched = _scrub_segment(segment, data, absent).searched  # (what forget passes on)
        if scrubwords.words_of(data, container, searched) != compiled:
            sys.exit(f"{segment.name}: the words of the texts searched differ from the file's")
        after = _cpu(partial(scrubwords.words_of, data, container, searched), repeat)
        words = _cpu(partial(scrubwords.words_of, data, container), repeat)
        python = _cpu(partial(_python_words, data, container), repeat)
        for totals in (seconds[segment.source], seconds["all"]):
            for k, value in enumerate((len(data) / 1e6, search, after, words, python)):
                totals[k] += value
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=positive, default=1_000_000)
    parser.add_argument("--days", type=positive, default=5)
    parser.add_argument("--repeat", type=positive, default=3)
    parser.add_argument("--landing", type=Path, help="an existing landing zone to read instead")
    args = parser.parse_args()
    if not native.available():
        sys.exit("the compiled helpers are not built: run make install first")
    with tempfile.TemporaryDirectory(prefix="adx-bench-words-") as folder:
        landing = args.landing
        if landing is None:
            env = {**os.environ, "ADVERTISEX_DATA_DIR": str(Path(folder) / "data")}
            generate = ["generate", "--out", "raw", "--seed", "1", "--events", str(args.events)]
            for verb in ([*generate, "--days", str(args.days)], ["ingest", "raw"]):
                subprocess.run([*CLI, *verb], cwd=folder, env=env, check=True, capture_output=True)
            landing = Path(folder) / "data" / "landing"
        seconds = _measured(LandingZone(landing), args.repeat)
    load = os.getloadavg()[0]
    print(f"{args.events:,} events over {args.days} days, load {load:.1f}; ms of CPU per MB:")
    print(f"{'source':<12} {'MB':>7} {'search':>7} {'words':>7} {'C alone':>8} {'Python':>7}")
    for source, (megabytes, *cpu) in sorted(seconds.items()):
        search, after, alone, python = (1000 * s / megabytes for s in cpu)
        print(
            f"{source:<12} {megabytes:7.1f} {search:7.2f} {after:7.2f} {alone:8.2f} {python:7.2f}"
        )


if __name__ == "__main__":
    main()
