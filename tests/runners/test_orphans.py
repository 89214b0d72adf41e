"""A processor SIGKILLed after writing a batch's data files but before its commit leaves
files no snapshot references; maintenance removes them once past its safety margin, and
the rerun commits the batch once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advertisex.model.schemas import TABLES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# `advertisex process`, SIGKILLed by itself as the batch's commit would begin: every data
# file of the batch is written, none is referenced.
KILLED_AT_COMMIT = """
import os, signal, sys
from advertisex.lake.tables import Lake
Lake.commit_files = lambda self, *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
from advertisex.cli.app import main
sys.argv = ["advertisex", "process"]
main()
"""
LINE = (
    '{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"u%d","website":"w",'
    '"impression_id":"i%d"}'
)


def _parquet(data: Path) -> set[Path]:
    return set((data / "warehouse").rglob("*.parquet"))


def test_files_of_a_killed_batch_are_removed_by_maintenance(tmp_path: Path) -> None:
    import advertisex

    data = tmp_path / "data"
    ax = advertisex.open(data_dir=data, correlation={"update_marts": False})
    ax.landing.write_segment("impressions", b"\n".join(LINE.encode() % (i, i) for i in range(50)))
    ax.process()  # a committed batch first: its files must survive maintenance
    kept = _parquet(data)
    ax.landing.write_segment(
        "impressions", b"\n".join(LINE.encode() % (i, i) for i in range(50, 90))
    )
    env = dict(
        os.environ,
        ADVERTISEX_DATA_DIR=str(data),
        ADVERTISEX_CONFIG="",
        ADVERTISEX_CORRELATION__UPDATE_MARTS="false",
    )
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_COMMIT], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    orphans = _parquet(data) - kept
    assert orphans  # the killed batch's files: written, referenced by nothing

    # Past the safety margin (a commit in flight is never robbed): as if a day went by.
    day_ago = time.time() - 86_400
    for path in orphans:
        os.utime(path, (day_ago, day_ago))
    maintained = subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", "maintain", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert maintained.returncode == 0, maintained.stderr
    assert not (_parquet(data) & orphans)  # gone …
    lake = advertisex.open(data_dir=data, correlation={"update_marts": False})
    referenced = {
        Path(f.removeprefix("file://"))
        for files in lake.lake.data_files_of(list(TABLES)).values()
        for f in files
    }
    assert referenced <= _parquet(data)  # … and nothing the tables reference went with them

    assert lake.process().batches  # the killed batch, once
    rows = lake.query("select count(*) n, count(distinct impression_id) d from curated.impressions")
    assert rows.to_pylist() == [{"n": 90, "d": 90}]
