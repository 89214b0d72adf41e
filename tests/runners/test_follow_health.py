"""A follower writes its health where the monitor (another process) reads it."""

from __future__ import annotations

from typing import Any

import pytest

from advertisex.errors import TransientError, UserInputError
from advertisex.runners.follow import Follower
from advertisex.util.health import read_health

pytestmark = pytest.mark.integration

GOOD = b'{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


def test_a_follower_records_failed_passes_then_a_good_one_then_its_stop(ax: Any) -> None:
    ax.landing.write_segment("impressions", GOOD, label="one")
    runner = ax.runner  # a new one at each look
    data_dir, real = ax.settings.data_dir, runner.pending
    seen: list[dict[str, Any] | None] = []
    failures: list[Exception] = [
        TransientError("cannot reach the catalog", hint="check that it is up"),
        RuntimeError("boom \x1b]0;pwned\x07\nTraceback (most recent call last): …"),
    ]

    def pending() -> list[Any]:
        seen.append(read_health(data_dir))  # as the previous pass left it
        if failures:
            raise failures.pop(0)
        if len(seen) == 4:  # after the good pass: stop
            follower.stop.set()
            return []
        return real()

    runner.pending = pending
    follower = Follower(runner, interval=0.01, max_backoff=0.02)
    assert follower.run(lambda batch: None) == 1
    first, failed_once, failed_twice, good = seen
    assert first is not None and first["state"] == "running" and first["failures"] == 0
    assert first["last_success"] is None
    assert failed_once is not None and failed_once["failures"] == 1
    assert failed_once["error"] == "cannot reach the catalog"
    assert failed_once["hint"] == "check that it is up"
    assert failed_twice is not None and failed_twice["failures"] == 2
    # The error line, not a traceback; what a terminal would act on, shown as escapes.
    assert failed_twice["error"] == "RuntimeError: boom \\x1b]0;pwned\\x07"
    assert failed_twice["failing_since"] == failed_once["failing_since"]
    assert good is not None and good["failures"] == 0 and good["error"] is None
    assert good["last_success"] is not None and good["failing_since"] is None
    stopped = read_health(data_dir)
    assert stopped is not None and stopped["state"] == "stopped"


def test_a_follower_that_cannot_go_on_marks_itself_stopped_with_its_error(ax: Any) -> None:
    def pending() -> list[Any]:
        raise UserInputError("bad setting", hint="fix advertisex.toml")

    runner = ax.runner
    runner.pending = pending
    with pytest.raises(UserInputError):
        Follower(runner, interval=0.01).run(lambda batch: None)
    health = read_health(ax.settings.data_dir)
    assert health is not None and health["state"] == "stopped"
    assert (health["failures"], health["error"]) == (1, "bad setting")


def test_a_process_run_writes_no_health(ax: Any) -> None:
    ax.landing.write_segment("impressions", GOOD, label="one")
    ax.process()
    assert read_health(ax.settings.data_dir) is None


def test_demo_fresh_knows_the_health_file_as_the_lake_s_own() -> None:
    """``demo --fresh`` clears a data directory only when it holds nothing it did not make:
    a follower's health file (after ``up``) made it refuse."""
    from advertisex.cli.demo import LAKE_ENTRIES
    from advertisex.util.health import HEALTH_FILE

    assert HEALTH_FILE.parts[0] in LAKE_ENTRIES
