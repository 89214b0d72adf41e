"""Maintenance racing the processor loses nothing, even when either is killed mid-way.

Maintenance is a writer like the processor (DESIGN.md, "Upkeep"): it compacts and
expires while batches commit, each side's lost race is retried on fresh metadata, and a
SIGKILL at any instant leaves at worst unreferenced files. The tables end up identical
to a run that was never maintained.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advertisex import synth
from advertisex.util.timeutil import parse_date
from tests.table_snapshots import CURATED, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = [*CURATED, "ops.batches"]
EAGER = {
    "ADVERTISEX_MAINTENANCE__MIN_INPUT_FILES": "2",
    "ADVERTISEX_MAINTENANCE__SNAPSHOT_MAX_AGE_HOURS": "0",
    "ADVERTISEX_MAINTENANCE__MIN_SNAPSHOTS": "1",
}


def _start(args: list[str], data: Path, **env: str) -> subprocess.Popen[str]:
    variables = dict(
        os.environ,
        ADVERTISEX_DATA_DIR=str(data),
        ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES="120000",  # many small commits to race
        ADVERTISEX_CORRELATION__UPDATE_MARTS="false",
        **EAGER,
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "advertisex.cli.app", *args],
        env=variables,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> int:
    _, err = process.communicate()
    assert process.returncode in (0, -signal.SIGKILL), err
    return process.returncode


def test_maintenance_racing_the_processor_loses_nothing(tmp_path: Path) -> None:
    import advertisex

    source = tmp_path / "input"
    synth.generate(
        source,
        events=4000,
        seed=11,
        start=parse_date("2026-11-03"),
        faults=synth.FaultConfig.demo(),
    )
    clean, raced = tmp_path / "clean", tmp_path / "raced"
    ax = advertisex.open(data_dir=clean, correlation={"update_marts": False})
    ax.ingest([str(source / "impressions"), str(source / "clicks"), str(source / "bids")])
    shutil.copytree(clean / "landing", raced / "landing")
    assert _finish(_start(["process"], clean)) == 0  # the same batches, never maintained

    rng = random.Random(7)
    kills = {"processor": 0, "maintain": 0}
    maintained = 0
    took: float | None = None  # the last whole maintain run's seconds
    processor: subprocess.Popen[str] | None = _start(["process"], raced)
    while True:
        maintain = _start(["maintain"], raced)
        started = time.monotonic()
        # Until one maintain has been killed, each is killed inside the time the last whole
        # run took: a fixed 1-6 s wait let every run finish first on a quiet machine.
        must_kill = kills["maintain"] == 0 and took is not None
        wait = rng.uniform(0.3, 0.9) * took if must_kill and took else rng.uniform(1.0, 6.0)
        while maintain.poll() is None and time.monotonic() < started + wait:
            time.sleep(0.05)
        if maintain.poll() is None and (must_kill or rng.random() < 0.5):
            maintain.send_signal(signal.SIGKILL)
            kills["maintain"] += 1
        if _finish(maintain) == 0:
            maintained += 1
            took = time.monotonic() - started
        raced_enough = kills["maintain"] >= 1 and maintained >= 2
        if processor is None:  # all processed: maintain goes on until it raced enough
            if raced_enough:
                break
        elif processor.poll() is not None:
            _finish(processor)
            processor = None
            if advertisex.open(data_dir=raced).runner.pending():
                processor = _start(["process"], raced)
            elif raced_enough:
                break
        elif rng.random() < 0.3:
            processor.send_signal(signal.SIGKILL)
            kills["processor"] += 1
            _finish(processor)
            processor = _start(["process"], raced)
    assert maintained >= 2 and kills["maintain"] >= 1, (maintained, kills)

    final = _start(["maintain"], raced)
    assert _finish(final) == 0
    assert snapshot(advertisex.open(data_dir=raced), TABLES) == snapshot(
        advertisex.open(data_dir=clean), TABLES
    )
