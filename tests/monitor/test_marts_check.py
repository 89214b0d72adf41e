"""The marts monitor: marts that stopped folding in committed batches are reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from advertisex.config import MonitorSettings
from advertisex.monitor.checks import MONITORS
from advertisex.monitor.model import MartsLag, Observations

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
CFG = MonitorSettings()
check = MONITORS["marts"]
GOOD = b'{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


def behind(seconds: float) -> Observations:
    since = NOW - timedelta(seconds=seconds)
    return Observations(now=NOW, marts=MartsLag(since, since - timedelta(minutes=1)))


def test_marts_that_have_not_folded_in_a_batch_for_fifteen_minutes_are_a_warning() -> None:
    assert check(behind(CFG.marts_behind_seconds - 1), CFG) == []
    (finding,) = check(behind(CFG.marts_behind_seconds + 300), CFG)
    assert finding.alertname == "MartsBehind" and finding.severity == "warning"
    assert finding.value == CFG.marts_behind_seconds + 300
    assert "since 2026-12-07 13:40:00 UTC (20 min ago" in finding.summary
    assert "last brought up to date 2026-12-07 13:39:00 UTC" in finding.summary
    assert "advertisex report refresh" in finding.summary
    # Current marts, and marts nobody keeps current (or never built), are not judged.
    assert check(Observations(now=NOW, marts=MartsLag(None, NOW)), CFG) == []
    assert check(Observations(now=NOW), CFG) == []


def test_the_gatherer_sees_the_oldest_batch_the_marts_have_not_folded_in(tmp_path) -> None:
    import advertisex
    from advertisex.monitor import metrics
    from advertisex.monitor.gather import Gatherer

    ax = advertisex.open(data_dir=tmp_path / "data")
    runner = ax.runner
    ax.landing.write_segment("impressions", GOOD, label="a")
    ax.process()  # the batch, then the marts brought up to date
    gatherer = Gatherer(ax.settings, ax.lake)
    lag = gatherer.observe().marts
    assert lag is not None and lag.unfolded_since is None and lag.updated is not None
    assert gatherer.observe(hourly=False).marts is None  # status's quick look leaves it out

    # Two batches committed by runs that leave the marts alone (an update that failed, a
    # follower stopped before its turn): the older one is the marts' lag.
    before = datetime.now(UTC)
    for label, user in (("b", b'"u2"'), ("c", b'"u3"')):
        ax.landing.write_segment("impressions", GOOD.replace(b'"u"', user), label=label)
        runner.run_batch(runner.pending())
    obs = gatherer.observe()
    assert obs.marts is not None and obs.marts.updated == lag.updated
    assert obs.marts.unfolded_since is not None
    assert before - timedelta(seconds=1) <= obs.marts.unfolded_since <= datetime.now(UTC)
    later = Observations(now=obs.marts.unfolded_since + timedelta(hours=1), marts=obs.marts)
    (finding,) = check(later, ax.settings.monitor)
    assert finding.value == 3600
    metrics.record_observations(later, [])
    assert [m.samples[0].value for m in metrics.MARTS_BEHIND.collect()] == [3600]

    # Maintenance between (a compaction, not new rows) changes nothing; an update catches up.
    ax.maintain()
    assert gatherer.observe().marts.unfolded_since == obs.marts.unfolded_since
    ax.refresh_marts()
    caught_up = gatherer.observe().marts
    assert caught_up is not None and caught_up.unfolded_since is None
    assert caught_up.updated is not None and caught_up.updated > lag.updated

    # A lake that leaves its marts to `report refresh` is not judged, nor exported.
    alone = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    alone_obs = Gatherer(alone.settings, alone.lake).observe()
    assert alone_obs.marts is None
    metrics.record_observations(alone_obs, [])
    assert list(metrics.MARTS_BEHIND.collect()) == []
