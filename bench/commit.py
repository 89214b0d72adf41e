"""The fixed CPU cost of one micro-batch commit (issue 11): N commits of M live events.

Each commit is what ``process --follow`` does with one collector flush (the loop of
bench/soak.py, without its checkpoints): a tick of live synthetic traffic lands as three
segments and the embedded runner processes them, manifests merging as commits append.
It prints the CPU time of the process per commit, p50 and p99 (the first commit, which
creates every table and starts the decoder workers, apart and not counted), and with
``--profile FILE`` writes a cProfile of the counted commits, timed by the CPU clock of
each thread, so a busy machine does not blur where the time goes: the runner's thread and,
merged into the same file, the worker threads that standardize and dedupe the pieces (the
main thread's profile alone once hid a lookup that grew with every commit). cProfile
inflates deep pure-Python call trees (pyiceberg's schema visitors several times over):
time a suspect directly before trusting its share.

    python bench/commit.py [--commits 200] [--events-per-commit 500] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _args import positive


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def commits(count: int, per_commit: int, profile: str | None) -> list[float]:
    """CPU seconds of each commit after the first."""
    import advertisex
    from advertisex.synth.stream import LiveTraffic, bids_avro, clicks_csv, ndjson

    data = Path(tempfile.mkdtemp(prefix="commit-")) / "data"
    ax = advertisex.open(
        data_dir=data,
        correlation={"update_marts": False},
        maintenance={"manifest_merge": True, "schedule": False},
    )
    ax.create_data_dir()
    runner, landing = ax.runner, ax.landing
    traffic = LiveTraffic(seed=7)
    impressions = max(1, round(per_commit / 1.9))  # + bids, lost auctions, responses
    profiler = cProfile.Profile(time.thread_time) if profile else None
    pieces = _PieceProfiles() if profile else None
    cpus: list[float] = []
    walls.clear()
    try:
        for n in range(1, count + 1):
            tick = traffic.tick(impressions)
            landing.write_segment("impressions", ndjson(tick.impressions), fsync=False)
            if tick.clicks:
                landing.write_segment("clicks", clicks_csv(tick.clicks), fsync=False)
            landing.write_segment("bids", bids_avro(tick.bids), fsync=False)
            counted = profiler is not None and n > 1
            started, wall = time.process_time(), time.perf_counter()
            if counted:
                profiler.enable()  # type: ignore[union-attr]
                pieces.on = True  # type: ignore[union-attr]
            runner.process()
            if counted:
                profiler.disable()  # type: ignore[union-attr]
                pieces.on = False  # type: ignore[union-attr]
            cpu, wall = time.process_time() - started, time.perf_counter() - wall
            if n == 1:
                print(f"first commit: {cpu:.3f} s CPU (not counted)", flush=True)
            else:
                cpus.append(cpu)
                walls.append(wall)
    finally:
        shutil.rmtree(data.parent, ignore_errors=True)
    if profiler is not None and pieces is not None and profile:
        import pstats

        pieces.stop()
        pstats.Stats(profiler, *pieces.profiles).dump_stats(profile)
    return cpus


walls: list[float] = []  # wall seconds per counted commit (fsyncs wait, not spend CPU)


class _PieceProfiles:
    """cProfiles of the embedded runner's pieces, each on its worker thread while ``on``."""

    def __init__(self) -> None:
        from advertisex.runners.embedded import EmbeddedRunner

        self.on = False
        self.profiles: list[cProfile.Profile] = []
        self._runner, self._piece = EmbeddedRunner, EmbeddedRunner._piece

        def piece(runner: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return self._piece(runner, *args, **kwargs)
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            try:
                return self._piece(runner, *args, **kwargs)
            finally:
                profiler.disable()
                self.profiles.append(profiler)

        EmbeddedRunner._piece = piece  # type: ignore[method-assign]

    def stop(self) -> None:
        self._runner._piece = self._piece  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=positive, default=200)
    parser.add_argument("--events-per-commit", type=positive, default=500)
    parser.add_argument("--profile", help="write a CPU-clock cProfile of the counted commits")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    cpus = commits(args.commits, args.events_per_commit, args.profile)
    print(
        f"{len(cpus)} commits of ~{args.events_per_commit} events: CPU per commit "
        f"p50 {statistics.median(cpus) * 1000:.1f} ms, p99 {_percentile(cpus, 0.99) * 1000:.1f} ms, "
        f"mean {statistics.fmean(cpus) * 1000:.1f} ms "
        f"(load {load:.1f} → {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)"
    )
    print(
        f"wall per commit: p50 {statistics.median(walls) * 1000:.1f} ms, "
        f"p99 {_percentile(walls, 0.99) * 1000:.1f} ms (the commit's fsyncs wait on the disk)"
    )
    tenth = max(1, len(cpus) // 10)  # does a commit cost more after many came before?
    print(
        f"CPU per commit p50: first tenth {statistics.median(cpus[:tenth]) * 1000:.1f} ms, "
        f"last tenth {statistics.median(cpus[-tenth:]) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
