"""A processor's memory of committed segments is bounded by the landing zone, not by the
lake's age.

The ledger keeps a done mark for every segment ever committed. A run used to load every
one of them at its start, and a follower kept every name it committed for as long as it
ran: with one-second collector segments that is millions within weeks (a million marks:
1.7 s of CPU and 200 MB at each start). Now a run reads the marks of the days the landing
zone still holds, and a follower lets go of the days it no longer lists.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import advertisex
from advertisex.landing.zone import landing_day
from advertisex.runners import runner as runner_module

pytestmark = [pytest.mark.integration]

DAYS = [date(2026, 11, 20) + timedelta(days=i) for i in range(4)]
LINE = '{"timestamp":"%sT10:00:00Z","ad_creative_id":"c","user_id":"u%d","website":"w","impression_id":"i%d"}'


def _land_days(ax: Any) -> None:
    """Two segments on each of :data:`DAYS`, processed."""
    for d, day in enumerate(DAYS):
        for k in range(2):
            n = d * 2 + k
            at = datetime(day.year, day.month, day.day, 10, k, tzinfo=UTC)
            data = (LINE % (day.isoformat(), n, n) + "\n").encode()
            ax.landing.write_segment("impressions", data, at=at, fsync=False)
    ax.process()


def _days(names: set[str]) -> set[date | None]:
    return {landing_day(name) for name in names}


def test_a_run_reads_only_the_marks_of_the_days_the_landing_zone_still_holds(
    tmp_path: Path,
) -> None:
    ax = advertisex.open(data_dir=tmp_path / "data")
    _land_days(ax)
    assert _days(ax.lake.done_in(ax.landing)) == set(DAYS)
    for day in DAYS[:2]:  # as the landing retention does
        shutil.rmtree(tmp_path / "data" / "landing" / "impressions" / day.isoformat())
    assert _days(ax.lake.done_in(ax.landing)) == set(DAYS[2:])
    assert len(ax.lake.done_segments()) == 2 * len(DAYS)  # the ledger keeps them all
    runner = ax.runner
    assert runner.pending() == []
    assert _days(runner._done or set()) == set(DAYS[2:])
    # Nothing of the landing zone left: still a lake that committed (the marts follow).
    shutil.rmtree(tmp_path / "data" / "landing" / "impressions")
    fresh = ax.runner
    assert fresh.pending() == [] and fresh._done == set() and fresh._any_done


def test_a_follower_lets_go_of_the_days_it_no_longer_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ax = advertisex.open(data_dir=tmp_path / "data")
    _land_days(ax)
    runner = ax.runner

    def today_is(day: date) -> None:
        now = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        monkeypatch.setattr(runner_module, "utcnow", lambda: now)

    today_is(DAYS[1])
    assert runner.pending() == []  # the first pass lists every day
    assert _days(runner._done or set()) == set(DAYS)
    today_is(DAYS[3])
    assert runner.pending() == []  # lists from yesterday on, and forgets what is before it
    assert runner.pending() == []
    assert _days(runner._done or set()) == set(DAYS[2:])
    at = datetime(DAYS[3].year, DAYS[3].month, DAYS[3].day, 11, tzinfo=UTC)
    ax.landing.write_segment("impressions", (LINE % (DAYS[3], 99, 99) + "\n").encode(), at=at)
    [segment] = runner.pending()  # what lands next is still found, and only that
    assert landing_day(segment) == DAYS[3]


def test_the_lowest_name_of_a_source_follows_its_folders(tmp_path: Path) -> None:
    ax = advertisex.open(data_dir=tmp_path / "data")
    landing = ax.landing
    assert landing.lowest_name("impressions") is None
    folder = tmp_path / "data" / "landing" / "clicks"
    (folder / "2026-11-21").mkdir(parents=True)
    (folder / "2026-11-20").mkdir()
    (folder / ".partial.csv.tmp").write_bytes(b"")
    assert landing.lowest_name("clicks") == "clicks/2026-11-20/"
    assert landing.held_ranges("clicks") == [("clicks/2026-11-20/", "clicks0")]
    (folder / "2026-06-02").mkdir()  # a day copied back from the archive, and the next
    (folder / "2026-06-01").mkdir()
    assert landing.held_ranges("clicks") == [
        ("clicks/2026-06-01/", "clicks/2026-06-020"),
        ("clicks/2026-11-20/", "clicks0"),
    ]
    assert landing.held_ranges("impressions") == []
    (folder / "loose.csv").write_bytes(b"")  # a layout with segments beside the days
    assert landing.lowest_name("clicks") == "clicks/"
    assert landing.held_ranges("clicks") == [("clicks/", "clicks0")]


def test_a_new_lakes_pending_list_and_rules_make_no_catalog(tmp_path: Path) -> None:
    """The first ``process`` of a lake ``ingest`` made lists its pending segments and builds
    its batch's rules without making the catalog (≈ 0.1 s on the command's serial start):
    it is made with the tables, beside the batch's first pieces."""
    from advertisex.runners.rules import BatchRules

    ax = advertisex.open(data_dir=tmp_path / "data")
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)
    ax.landing.write_segment("impressions", (LINE % ("2026-11-20", 1, 1) + "\n").encode(), at=at)
    ax.landing.write_segment("clicks", b"timestamp,user_id,campaign_id,event_type\n", at=at)
    catalog = Path(ax.settings.catalog_uri.removeprefix("sqlite:///"))
    runner = ax.runner
    assert sorted(s.source for s in runner.pending()) == ["clicks", "impressions"]
    rules = BatchRules.build(ax.settings, ax.lake, at, {"impressions", "clicks"})
    assert rules.dims is None and rules.ivt is not None and not rules.ivt.ivt_users
    # Nor do its pieces' dedupe look-ups wait for a table to find nothing committed.
    candidates = pa.table({"event_time": pa.array([at], pa.timestamp("us", tz="UTC"))})
    assert rules.dedupe("curated.impressions", candidates, np.array([1], np.uint64)) is None
    assert not catalog.exists()
    assert ax.process().records_in == 1
    assert catalog.exists() and ax.runner.pending() == []
