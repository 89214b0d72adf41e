"""``process --follow`` honours SIGTERM within seconds, even in the middle of a batch whose
decoder would take ten minutes: the batch is given up uncommitted and redone next time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
GOOD = b'{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'
# `advertisex process --follow` whose impressions decoder takes ten minutes a segment.
FOLLOW_SLOWLY = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from advertisex.formats.decode import DECODERS
from tests.runners.test_follow_stop import ten_minutes
DECODERS[("impressions", "json")] = ten_minutes
from advertisex.cli.app import main
sys.argv = ["advertisex", "process", "--follow", "--interval", "0.2"]
main()
"""


def ten_minutes(data: bytes) -> Any:
    """Module-level: decoder workers import it by name."""
    time.sleep(600)
    raise AssertionError("never reached")


def test_sigterm_in_the_middle_of_a_batch_stops_the_follower_at_once(tmp_path: Path) -> None:
    import advertisex

    data = tmp_path / "data"
    ax = advertisex.open(data_dir=data, correlation={"update_marts": False})
    ax.landing.write_segment("impressions", GOOD, label="slow", fsync=False)
    env = dict(
        os.environ,
        ADVERTISEX_DATA_DIR=str(data),
        ADVERTISEX_CONFIG="",
        ADVERTISEX_CORRELATION__UPDATE_MARTS="false",
        ADVERTISEX_PROCESSOR__DECODE_SECONDS="900",  # the budget would not stop it either
    )
    follower = subprocess.Popen(
        [sys.executable, "-c", FOLLOW_SLOWLY],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert follower.stdout is not None
        for line in follower.stdout:
            if "following" in line:
                break
        time.sleep(2)  # into the batch: its one segment is being decoded
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(60) == 0  # not ten minutes
    finally:
        if follower.poll() is None:
            follower.kill()
    assert ax.process().batches  # nothing was committed: the same batch is still pending
    assert ax.query("select count(*) n from curated.impressions").to_pylist() == [{"n": 1}]
