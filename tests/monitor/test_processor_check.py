"""The processor monitor on hand-made observations: a follower failing every pass, or hung."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from advertisex.config import MonitorSettings
from advertisex.monitor.checks import MONITORS
from advertisex.monitor.model import ARRIVALS, Observations, ProcessorHealth

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
CFG = MonitorSettings()
check = MONITORS["processor"]


def arrivals(pending: int) -> pa.Table:
    row = {name: None for name in ARRIVALS.names}
    row.update(source="impressions", bucket=NOW - timedelta(minutes=5), segments=pending)
    row.update(bytes=0, records=0, pending=pending, pending_bytes=0)
    return pa.Table.from_pylist([row], schema=ARRIVALS)


def failing(seconds: float, **changes: Any) -> ProcessorHealth:
    health = ProcessorHealth(
        pid=4242,
        host="box",
        updated=NOW - timedelta(seconds=20),
        max_wait_seconds=30.0,
        failures=8,
        failing_since=NOW - timedelta(seconds=seconds),
        last_success=None,
        error="cannot write curated.impressions: disk full",
        hint="free some space, the next pass tries again",
    )
    return dataclasses.replace(health, **changes)


def obs(health: ProcessorHealth | None, pending: int = 1300, at: datetime = NOW) -> Observations:
    return Observations(now=at, arrivals=arrivals(pending), processor=health)


def test_a_follower_failing_every_pass_with_segments_pending_is_critical_after_two_minutes() -> (
    None
):
    assert check(obs(failing(CFG.processor_failing_seconds - 1)), CFG) == []
    (finding,) = check(obs(failing(CFG.processor_failing_seconds + 60)), CFG)
    assert finding.alertname == "ProcessorFailing" and finding.severity == "critical"
    assert finding.value == CFG.processor_failing_seconds + 60
    # It quotes the error and its hint, and says where to look.
    assert "pid 4242 on box" in finding.summary and "1,300 landing segment(s)" in finding.summary
    assert "disk full → free some space" in finding.summary
    assert "advertisex status" in finding.summary and "Traceback" not in finding.summary


def test_nothing_fires_without_pending_segments_a_healthy_or_no_follower() -> None:
    late = CFG.processor_failing_seconds + 600
    assert check(obs(failing(late), pending=0), CFG) == []
    assert check(obs(failing(late, failures=0, failing_since=None)), CFG) == []
    assert check(obs(None), CFG) == []  # stopped, killed or cron-style: not judged


def test_a_follower_that_wrote_nothing_for_too_long_is_stuck() -> None:
    limit = CFG.processor_stuck_seconds + 30  # its own longest wait is allowed on top
    quiet = failing(0, failures=0, failing_since=None, updated=NOW - timedelta(seconds=limit - 1))
    assert check(obs(quiet), CFG) == []
    hung = failing(0, failures=0, failing_since=None, updated=NOW - timedelta(seconds=limit + 1))
    (finding,) = check(obs(hung, pending=0), CFG)
    assert finding.alertname == "ProcessorStuck" and "kill 4242" in finding.summary
    # From another host its pid cannot be looked up: only failing passes are judged.
    assert check(obs(dataclasses.replace(hung, pid_checked=False)), CFG) == []


def test_the_processor_monitor_can_be_disabled() -> None:
    from advertisex.monitor.checks import evaluate

    off = CFG.model_copy(update={"disabled": ("processor",)})
    findings, errors = evaluate(obs(failing(600)), off)
    assert "ProcessorFailing" not in {f.alertname for f in findings} and not errors


def test_a_stale_file_whose_pid_is_alive_is_not_judged_unless_it_holds_the_lock(
    tmp_path: Path,
) -> None:
    """After a SIGKILL the file still says ``running``, and its pid may be given to another
    process: judged by that pid, a dead follower read as failing (or hung) for ever. Alive
    is now holding the lake's processor lock, which the system let go with the killed one."""
    from advertisex.config import load_settings
    from advertisex.monitor.gather import follower_health
    from advertisex.runners.lock import processor_lock
    from advertisex.util.health import HealthFile

    settings = load_settings(data_dir=tmp_path / "data")
    # A follower's file, its pid now this (live, unrelated) test process: as after a reuse.
    HealthFile(settings.data_dir, interval=0.5, max_wait=30.0)
    assert follower_health(settings, NOW) is None  # was judged alive: the pid exists
    with processor_lock(settings.data_dir):  # the lock's holder is the file's writer
        health = follower_health(settings, NOW)
        assert health is not None and health.pid == os.getpid() and health.pid_checked
    # A processor holds the lock, but not the one that wrote the file (a `process` run
    # after the follower was killed): the file is still not judged.
    stale = settings.data_dir / "processor" / "health.json"
    stale.write_bytes(stale.read_bytes().replace(f'"pid": {os.getpid()}'.encode(), b'"pid": 1'))
    with processor_lock(settings.data_dir):
        assert follower_health(settings, NOW) is None
