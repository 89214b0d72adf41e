"""One incremental marts update on a live lake, repeatable: its steps' wall and CPU.

The lake is the one ``ADVERTISEX_DATA_DIR`` names, left by ``advertisex up`` under a load
(``advertisex generate --to http://127.0.0.1:PORT --rate 2500 --duration 1800``) and
stopped between two of its follower's marts updates, so that the marts lag the curated
tables by the batches of the last minute or so. The update runs as the follower's would
(``marts.iceberg.update_marts``) with the marts' commit left out, so the lake is not
changed and the same update can run again — of this checkout, or of another commit's
with ``PYTHONPATH=<its worktree>`` (alternate them: the host drifts).

    ADVERTISEX_DATA_DIR=/tmp/live/data python bench/marts_update.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import time

from _args import positive


def one_update() -> None:
    from advertisex.config import load_settings
    from advertisex.lake.tables import Lake
    from advertisex.marts import iceberg

    settings = load_settings()
    lake = Lake(settings)
    marks: list[tuple[str, float, float]] = []
    wall, cpu = time.perf_counter(), time.process_time()

    def progress(stage: str, done: int, total: int) -> None:
        marks.append((stage, time.perf_counter() - wall, time.process_time() - cpu))

    report = iceberg.update_marts(lake, settings, progress=progress)
    assert report is not None, "the settings leave the marts alone (correlation.update_marts)"
    print(
        f"{report.mode}: new rows {report.new_rows}, users matched again {report.users:,}, "
        f"hours recomputed {report.hours}"
    )
    for stage, at, used in marks:
        print(f"  {stage:22s} done at {at:6.2f} s wall, {used:6.2f} s CPU")
    print(
        f"  total {time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s "
        f"CPU, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024:,} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=positive, default=1)
    args = parser.parse_args()
    from advertisex.marts import iceberg

    # The update's commit is left out: the lake stays as it was, the next run does the same.
    iceberg.IcebergMarts.replace = lambda self, changes, state: None  # type: ignore[method-assign]
    for _ in range(args.repeat):
        one_update()


if __name__ == "__main__":
    main()
