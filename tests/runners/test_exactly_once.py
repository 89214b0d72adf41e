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

    started = time.monotonic()
    done = _cli(["process", "--format", "json"], clean)
    clean_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["batches"], "the run must be several batches"
    # Kill instants follow this machine's own speed: start-up alone (a run with nothing
    # pending) and the work of the clean run, scaled by the share of it still pending.
    # Fixed instants missed every kill on a fast machine (the backlog was done before
    # the first); instants from the whole run's length outlived the shrinking backlog.
    started = time.monotonic()
    assert _cli(["process", "--format", "json"], clean).returncode == 0
    startup_seconds = time.monotonic() - started
    work_seconds = max(clean_seconds - startup_seconds, 0.5)

    rng = random.Random(1234)
    kills, interrupted_work = 0, 0
    left = _pending_share(crashed)
    for _ in range(8):  # kill at random instants: during start-up, framing, kernels or a commit
        process = subprocess.Popen(
            [sys.executable, "-m", "advertisex.cli.app", "process", "--format", "json"],
            env=_env(crashed),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Never past half of what is left: the run is still busy when it is killed.
        deadline = time.monotonic() + rng.uniform(
            0.5 * startup_seconds, startup_seconds + 0.5 * left * work_seconds
        )
        while process.poll() is None and time.monotonic() < deadline:
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
