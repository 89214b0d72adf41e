"""Kill the processor with SIGKILL at random instants, restart, and get the same tables.

The promise (DESIGN.md, "Exactly-once"): killing the processor at any instant and
starting it again yields tables identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.table_snapshots import CURATED, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = [*CURATED, "ops.batches"]


def _env(data: Path) -> dict[str, str]:
    # Small batches, so a run is many commits and kills land between and inside them.
    return dict(
        os.environ, ADVERTISEX_DATA_DIR=str(data), ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES="150000"
    )


def _cli(args: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", *args],
        env=_env(data),
        capture_output=True,
        text=True,
    )


def _pending_share(data: Path) -> float:
    """Share of the landing bytes not committed yet, as the checkpoint says."""
    import advertisex

    ax = advertisex.open(data_dir=data)
    segments = ax.landing.segments()
    done = ax.lake.done_segments()
    return sum(s.size for s in segments if s.name not in done) / sum(s.size for s in segments)


def _batch_commits(data: Path) -> int:
    """The newest metadata version of ``ops.batches`` (one more per batch committed; -1
    before the table exists), read from the file names, so the running processor's
    catalog is never touched while it works."""
    versions = [
        int(f.name.split("-", 1)[0])
        for f in (data / "warehouse" / "ops" / "batches" / "metadata").glob("*.metadata.json")
    ]
    return max(versions, default=-1)


def _snapshot(data: Path) -> dict[str, list]:
    import advertisex

    return snapshot(advertisex.open(data_dir=data), TABLES)


def test_sigkill_at_random_points_then_restart_equals_a_clean_run(tmp_path: Path) -> None:
    source = tmp_path / "input"
    result = _cli(
        [
            "generate",
            "--out",
            str(source),
            "--events",
            "8000",
            "--seed",
            "5",
            "--start",
            "2026-11-10",
            "--demo-faults",
            "--format",
            "json",
        ],
        tmp_path / "unused",
    )
    assert result.returncode == 0, result.stderr
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    assert (
        _cli(
            ["ingest", str(source / "impressions"), str(source / "clicks"), str(source / "bids")],
            clean,
        ).returncode
        == 0
    )
    # The same landing zone (same segment names) for both runs.
    shutil.copytree(clean / "landing", crashed / "landing")

    done = _cli(["process", "--format", "json"], clean)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["batches"], "the run must be several batches"
    # Kill instants follow the run itself, not a time estimated beforehand (estimates from
    # a clean run missed most kills whenever the machine's load changed between the two):
    # some kills fall in start-up, the rest a random moment after the run's next commit,
    # inside the batch that follows it (framing, kernels, a commit or the marts).
    started = time.monotonic()
    assert _cli(["process", "--format", "json"], clean).returncode == 0
    startup_seconds = time.monotonic() - started

    rng = random.Random(1234)
    kills, interrupted_work = 0, 0
    left = _pending_share(crashed)
    for _ in range(8):
        committed = _batch_commits(crashed)
        process = subprocess.Popen(
            [sys.executable, "-m", "advertisex.cli.app", "process", "--format", "json"],
            env=_env(crashed),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        in_start_up = rng.random() < 0.25
        deadline = time.monotonic() + rng.uniform(0.2, 0.9) * startup_seconds
        after_commit = rng.uniform(0.0, 0.5)
        while process.poll() is None:
            if in_start_up and time.monotonic() >= deadline:
                break
            if not in_start_up and _batch_commits(crashed) > max(committed, 0):
                in_start_up, deadline = True, time.monotonic() + after_commit
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        _, err = process.communicate()
        assert process.returncode in (0, -signal.SIGKILL), err
        before, left = left, _pending_share(crashed)
        interrupted_work += process.returncode == -signal.SIGKILL and left < before
        if left == 0:
            break
    assert kills >= 3, f"the processor was killed {kills} times in 8 runs"
    assert interrupted_work >= 1, "no kill came after a commit: all were during start-up"
    # Then a restart that is left to finish.
    final = _cli(["process", "--format", "json"], crashed)
    assert final.returncode == 0, final.stderr
    assert _snapshot(crashed) == _snapshot(clean)
