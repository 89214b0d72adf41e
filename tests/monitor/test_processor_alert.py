"""End to end: a follower failing every pass, seen by ``advertisex monitor --once``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from advertisex.errors import TransientError
from advertisex.runners.follow import Follower
from advertisex.util import jsonutil

pytestmark = pytest.mark.integration

GOOD = b'{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


def test_monitor_once_raises_processor_failing_while_a_follower_fails_every_pass(
    ax: Any, cli: Callable[..., Any]
) -> None:
    ax.landing.write_segment("impressions", GOOD, label="waiting")
    runner = ax.runner

    def pending() -> list[Any]:
        raise TransientError("cannot write curated.impressions", hint="free some disk space")

    runner.pending = pending
    failed = threading.Event()
    follower = Follower(runner, interval=0.01, max_backoff=0.05)
    thread = threading.Thread(
        target=follower.run, args=(lambda batch: None, lambda error, wait: failed.set())
    )
    thread.start()
    try:
        assert failed.wait(60)
        code, out, err = cli(
            ax.settings.data_dir,
            *("monitor", "--once", "--format", "json"),
            ADVERTISEX_MONITOR__PROCESSOR_FAILING_SECONDS="0",
        )
        status = cli(ax.settings.data_dir, "status", "--format", "json")
        shown = cli(ax.settings.data_dir, "status")
    finally:
        follower.stop.set()
        thread.join()
    assert code == 0, err
    [finding] = [f for f in jsonutil.loads(out) if f["alertname"] == "ProcessorFailing"]
    assert finding["severity"] == "critical"
    assert "1 landing segment(s) wait" in finding["summary"]
    assert "cannot write curated.impressions → free some disk space" in finding["summary"]
    # status shows the follower's health, for machines and for people.
    assert status[0] == 0, status[2]
    follower = jsonutil.loads(status[1])["processor"]
    assert follower["state"] == "failing" and follower["failures"] >= 1
    assert follower["error"] == "cannot write curated.impressions"
    assert shown[0] == 0 and "failing" in shown[2] and "→ free some disk space" in shown[2]
    # Stopped cleanly: nothing is judged of it any more, and the alert resolves.
    code, out, err = cli(
        ax.settings.data_dir,
        *("monitor", "--once", "--format", "json"),
        ADVERTISEX_MONITOR__PROCESSOR_FAILING_SECONDS="0",
    )
    assert code == 0, err
    assert "ProcessorFailing" not in {f["alertname"] for f in jsonutil.loads(out)}
    code, out, err = cli(ax.settings.data_dir, "status", "--format", "json")
    assert code == 0 and jsonutil.loads(out)["processor"] is None
