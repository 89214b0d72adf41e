"""The marts' first build over a backlog: the curated tables of N mixed events (processed
once, without the marts, into a lake kept under bench/out), then ``process`` with the
marts kept current on a fresh copy of that lake — nothing pending, so all it does is
build the marts from every curated row (bucketed on disk past two million rows:
``advertisex.marts.local``).

    python bench/marts_backlog.py [--events 10000000] [--repeat 3]

Prints, per run, the marts' build (the command's own timer), the whole command, its
process tree's CPU and peak (proportional sizes: read at every sample with
``--exact-memory``, else at the tree's resident highs, as bench/process.py does).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from _args import positive
from _checkout import use_this_checkout
from process import OUT, PY, _measured, process_without_marts


def _processed_lake(events: int) -> tuple[Path, Path]:
    """(the lake's folder, a copy of it): the N-event set ingested and processed without the
    marts into bench/out/marts-backlog-N/data, made once and copied aside; a run puts the
    copy back in the same folder (the catalog names its files by their absolute paths)."""
    lake = OUT / f"marts-backlog-{events}" / "data"
    template = lake.parent / "template"
    if (template / "catalog.db").exists():
        return lake, template
    shutil.rmtree(lake.parent, ignore_errors=True)
    print(f"processing {events:,} events into {lake} without the marts (once) …", flush=True)
    process_without_marts(events, lake)
    partial = template.with_name("template.partial")  # a copy cut short is never taken
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(lake, partial)
    partial.rename(template)
    return lake, template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=positive, default=10_000_000)
    parser.add_argument("--repeat", type=positive, default=3)
    parser.add_argument(
        "--exact-memory",
        action="store_true",
        help="read the tree's proportional size at every sample (the exact peak, ≈ 7 %% slower)",
    )
    args = parser.parse_args()
    use_this_checkout()  # not the checkout the virtualenv installed (bench/_checkout.py)
    lake, template = _processed_lake(args.events)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for run in range(1, args.repeat + 1):
        shutil.rmtree(lake, ignore_errors=True)
        shutil.copytree(template, lake)
        try:
            env = dict(os.environ, ADVERTISEX_DATA_DIR=str(lake))
            env["ADVERTISEX_CORRELATION__UPDATE_MARTS"] = "true"
            measured = _measured(
                [PY, "-m", "advertisex.cli.app", "process", "--format", "json"],
                env=env,
                exact_memory=args.exact_memory,
            )
            from advertisex.util import jsonutil

            report = jsonutil.loads(measured.stdout)
            if report.get("marts") != "rebuild":
                raise SystemExit(f"expected the marts' first build, got {report.get('marts')!r}")
            print(
                f"run {run}: the marts' first build over {args.events:,} events "
                f"{report['marts_seconds']:.2f} s  (the command {measured.seconds:.2f} s, "
                f"CPU {measured.cpu_s:.1f} s, tree peak {measured.tree_peak_mb:,.0f} MiB)",
                flush=True,
            )
        finally:
            shutil.rmtree(lake, ignore_errors=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
