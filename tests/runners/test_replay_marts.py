"""The marts after a ``replay`` of one landing day: the day's work, not the lake's, and
always what a rebuild gives."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from advertisex import synth
from advertisex.util.timeutil import parse_date
from tests.table_snapshots import MARTS, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a lake of many batches, marts on

DAYS = ("2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05")


def _lake(tmp_path: Path, **processor: Any) -> Any:
    """Four days of traffic (bots among it), each hourly file landed in its own hour and
    processed in batches of a few hours (``processor``: more settings), the marts kept."""
    import advertisex

    source = tmp_path / "input"
    data = tmp_path / "data"
    if not data.exists():
        synth.generate(
            source,
            events=8000,
            seed=11,
            start=parse_date(DAYS[0]),
            days=len(DAYS),
            faults=synth.FaultConfig(bot_rate=0.05),
        )
        landing = advertisex.open(data_dir=data).landing
        for path in sorted(source.rglob("*.*")):
            hour = re.search(r"\d{8}-\d{2}", path.name)
            if hour is None:
                continue
            at = datetime.strptime(hour.group(), "%Y%m%d-%H").replace(tzinfo=UTC)
            landing.ingest_file(path, at=at + timedelta(minutes=30))
    landed = sum(p.stat().st_size for p in (data / "landing").rglob("*") if p.is_file())
    return advertisex.open(data_dir=data, processor={"batch_max_bytes": landed // 16, **processor})


def _marts(ax: Any) -> dict[str, list[dict[str, Any]]]:
    return snapshot(ax, MARTS)


def _rebuilt(ax: Any) -> dict[str, list[dict[str, Any]]]:
    ax.refresh_marts(rebuild=True)
    return _marts(ax)


def test_a_replay_that_gives_back_its_rows_leaves_the_marts_alone(tmp_path):
    """A day's batches removed and processed again yield the rows removed (processing is
    deterministic): the marts' update after it folds in nothing — it rebuilt every mart of
    every day kept — and they are what a rebuild makes."""
    ax = _lake(tmp_path)
    first = ax.process()
    assert len(first.batches) >= 12 and first.marts.mode == "rebuild"
    before = _marts(ax)

    day = parse_date(DAYS[1])
    report = ax.replay(day, day)
    assert 0 < len(report.batches) < len(first.batches)
    assert report.process.records_in > 0
    assert report.process.marts.mode == "unchanged"
    assert _marts(ax) == before
    assert _rebuilt(ax) == before


def test_a_replay_that_changes_rows_updates_the_hours_they_touch(tmp_path):
    """The bots a day's first processing filtered are accepted by its replay with the IVT
    filter off: the update after it recomputes the slices of those impressions (their
    hours, the attribution windows of their users) and gives what a rebuild does."""
    ax = _lake(tmp_path)
    first = ax.process()
    assert first.marts.mode == "rebuild"
    filtered = ax.query("select count(*) n from curated.filtered").column("n")[0].as_py()
    assert filtered > 0

    lenient = _lake(tmp_path, ivt_filter=False)
    day = parse_date(DAYS[1])
    report = lenient.replay(day, day)
    done = report.process.marts
    assert done.mode == "incremental"
    assert 0 < done.hours <= 24 * 3  # the day's hours and those its users' windows reach
    accepted_now = lenient.query("select count(*) n from curated.filtered").column("n")[0]
    assert accepted_now.as_py() < filtered
    after = _marts(lenient)
    assert _rebuilt(lenient) == after


def test_rows_a_replay_took_out_are_no_news_once_another_update_folded_them(tmp_path, monkeypatch):
    """Another marts update between the replay's removal and its own (a ``report refresh``
    beside it) rebuilt the marts without the day: the rows taken out are no longer what
    the marts lack, so the replay's update does not fold them in against its rows."""
    from advertisex.runners import replay as replay_module

    ax = _lake(tmp_path)
    ax.process()
    removal = replay_module._replayed

    def refreshed_between(*args: Any) -> Any:
        found = removal(*args)
        assert ax.refresh_marts().mode == "rebuild"  # the day gone from the marts
        return found

    monkeypatch.setattr(replay_module, "_replayed", refreshed_between)
    day = parse_date(DAYS[2])
    report = ax.replay(day, day)
    assert report.process.marts.mode == "incremental"
    after = _marts(ax)
    assert _rebuilt(ax) == after
