"""``process --follow --engine spark``: the follow loop on a Spark runner.

The CLI wiring of ``--follow`` (marts that follow, SIGTERM, ``report refresh``) is tested
on the embedded engine (tests/runners/test_follow_cli.py); ``--engine spark`` only picks
the runner, checked here without starting anything. The follower then runs in-process on
the shared session: segments landed while it runs are committed batch by batch. Marts on
Spark (rebuilt and incremental) are compared with the embedded ones in
test_spark_runner.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.following import run_follower

pytestmark = pytest.mark.integration

IMPRESSION = (
    '{{"impression_id":"imp-{n}","timestamp":"2026-11-20T10:0{n}:00Z","ad_creative_id":"cr-1",'
    '"campaign_id":"cmp-1","user_id":"u-{n}","website":"https://example.com/"}}\n'
)


def test_engine_spark_picks_a_spark_runner_on_the_chosen_master(tmp_path: Path) -> None:
    import advertisex
    from advertisex.cli.common import open_runner
    from advertisex.runners.spark import SparkRunner

    ax = advertisex.open(data_dir=tmp_path / "data")
    runner = open_runner(ax, "spark", "local[1]")
    assert isinstance(runner, SparkRunner) and runner.master == "local[1]"
    assert runner._session is None  # nothing started until a batch needs it
    assert not isinstance(open_runner(ax, None, None), SparkRunner)


def test_follow_on_spark_commits_segments_landed_while_it_runs(spark: Any, tmp_path: Path) -> None:
    import advertisex
    from advertisex.runners.follow import Follower
    from advertisex.runners.spark import SparkRunner

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    ax.landing.write_segment("impressions", IMPRESSION.format(n=1).encode(), label="first")
    runner = SparkRunner(ax.settings, ax.lake, ax.landing, session=spark)
    batches = []

    def on_batch(batch: Any) -> None:
        batches.append(batch)
        if len(batches) == 1:  # lands while the follower runs
            ax.landing.write_segment("impressions", IMPRESSION.format(n=2).encode(), label="2nd")
        else:
            follower.stop.set()

    follower = Follower(runner, interval=0.05)
    assert run_follower(follower, on_batch) == 2
    assert [(b.segments, b.total("accepted")) for b in batches] == [(1, 1), (1, 1)]
    impressions = ax.query("select impression_id from curated.impressions order by 1")
    assert impressions.to_pylist() == [{"impression_id": "imp-1"}, {"impression_id": "imp-2"}]
    assert runner._session is spark  # handed a session: the runner never started its own
