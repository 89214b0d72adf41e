"""The marts after a ``replay`` of one landing day: the day's work, not the lake's, and
always what a rebuild gives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from advertisex import synth
from advertisex.util.timeutil import parse_date
from tests.kept_lakes import KeptLake
from tests.table_snapshots import MARTS, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a lake of many batches, marts on

DAYS = ("2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05")


def _lake(root: Path, **processor: Any) -> Any:
    """Four days of traffic (bots among it), each hourly file landed in its own hour and
    processed in batches of a few hours (``processor``: more settings), the marts kept."""
    import advertisex

    source = root / "input"
    data = root / "data"
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


@dataclass(frozen=True)
class Built:
    """The module's lake, made once (generating, landing and processing it took each test
    5-8 s of its 9-20): kept "landed" and "processed", beside the first run's report."""

    kept: KeptLake
    first: Any  # the report of the lake's first ``process``


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    kept = KeptLake(tmp_path_factory.mktemp("replay-marts"))
    ax = _lake(kept.root)
    kept.keep("landed")
    first = ax.process()
    kept.keep("processed")
    return Built(kept, first)


@pytest.fixture
def processed(built: Built) -> Path:
    """The root of the lake processed once with the default settings (``_lake(root)``)."""
    built.kept.restored("processed")
    return built.kept.root


@pytest.fixture
def landed(built: Built) -> Path:
    """The root of the lake landed, nothing processed."""
    built.kept.restored("landed")
    return built.kept.root


def _marts(ax: Any) -> dict[str, list[dict[str, Any]]]:
    return snapshot(ax, MARTS)


def _rebuilt(ax: Any) -> dict[str, list[dict[str, Any]]]:
    ax.refresh_marts(rebuild=True)
    return _marts(ax)


def test_a_replay_that_gives_back_its_rows_leaves_the_marts_alone(built, processed):
    """A day's batches removed and processed again yield the rows removed (processing is
    deterministic): the marts' update after it folds in nothing — it rebuilt every mart of
    every day kept — and they are what a rebuild makes."""
    ax = _lake(processed)
    first = built.first
    assert len(first.batches) >= 12 and first.marts.mode == "rebuild"
    before = _marts(ax)

    day = parse_date(DAYS[1])
    report = ax.replay(day, day)
    assert 0 < len(report.batches) < len(first.batches)
    assert report.process.records_in > 0
    assert report.process.marts.mode == "unchanged"
    assert _marts(ax) == before
    assert _rebuilt(ax) == before


def test_a_replay_that_changes_rows_updates_the_hours_they_touch(built, processed):
    """The bots a day's first processing filtered are accepted by its replay with the IVT
    filter off: the update after it recomputes the slices of those impressions (their
    hours, the attribution windows of their users) and gives what a rebuild does."""
    ax = _lake(processed)
    assert built.first.marts.mode == "rebuild"
    filtered = ax.query("select count(*) n from curated.filtered").column("n")[0].as_py()
    assert filtered > 0

    lenient = _lake(processed, ivt_filter=False)
    day = parse_date(DAYS[1])
    report = lenient.replay(day, day)
    done = report.process.marts
    assert done.mode == "incremental"
    assert 0 < done.hours <= 24 * 3  # the day's hours and those its users' windows reach
    accepted_now = lenient.query("select count(*) n from curated.filtered").column("n")[0]
    assert accepted_now.as_py() < filtered
    after = _marts(lenient)
    assert _rebuilt(lenient) == after


def test_rows_a_replay_took_out_are_no_news_once_another_update_folded_them(processed, monkeypatch):
    """Another marts update between the replay's removal and its own (a ``report refresh``
    beside it) rebuilt the marts without the day: the rows taken out are no longer what
    the marts lack, so the replay's update does not fold them in against its rows."""
    from advertisex.runners import replay as replay_module

    ax = _lake(processed)
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


def _handed_over(monkeypatch: Any, then: Any = None) -> list[Any]:
    """What each replay hands the marts' update (``marts.iceberg.Replayed``), collected;
    ``then(replayed)`` runs on it before the update does."""
    from advertisex.runners import replay as replay_module

    removal = replay_module._replayed
    handed: list[Any] = []

    def collected(*args: Any) -> Any:
        found = removal(*args)
        handed.append(found)
        if then is not None and found is not None:
            then(found)
        return found

    monkeypatch.setattr(replay_module, "_replayed", collected)
    return handed


def test_a_replay_holds_a_hash_a_row_taken_out_not_the_rows(processed, monkeypatch):
    """What a replay keeps of the rows it takes out, for the update after it, is 8 bytes a
    row (their hash): a day past a million rows — every day of the 2 M-event set — no
    longer rebuilds every mart of the lake for the rows' memory. The cap on that (20 M
    rows, 160 MB) still rebuilds past it."""
    from advertisex.marts.maintain import CURATED_READS
    from advertisex.runners import replay as replay_module

    ax = _lake(processed)
    before = _marts(ax)
    handed = _handed_over(monkeypatch)
    day = parse_date(DAYS[1])
    report = ax.replay(day, day)
    assert report.process.marts.mode == "unchanged"
    (replayed,) = handed
    taken = {name: replayed.rows[name] for name in CURATED_READS}
    rows = sum(t.hashes.size for t in taken.values())
    assert rows > 1000
    assert sum(t.hashes.nbytes for t in taken.values()) == 8 * rows
    assert _marts(ax) == before

    monkeypatch.setattr(replay_module, "MARTS_ROWS", rows // 2)
    assert ax.replay(day, day).process.marts.mode == "rebuild"
    assert _marts(ax) == before


def test_rows_a_replay_takes_out_for_good_are_read_back_for_the_marts(landed, monkeypatch):
    """The day's bots accepted at first (the IVT filter off) and filtered by its replay: the
    rows taken out and not given back are read back from the data files the swap left in
    place (compacted ones, holding rows of other days too), and their slices updated as a
    rebuild would. Those files gone before the update: the marts are rebuilt, not wrong."""
    lenient = _lake(landed, ivt_filter=False)
    assert lenient.process().marts.mode == "rebuild"
    lenient.maintain()  # the days' files compacted: the replay rewrites them
    ax = _lake(landed)
    day = parse_date(DAYS[1])
    done = ax.replay(day, day).process.marts
    assert done.mode == "incremental" and done.hours > 0
    after = _marts(ax)
    assert _rebuilt(ax) == after

    def files_lost(replayed: Any) -> None:
        for source in replayed.rows["curated.impressions"].sources:
            Path(source.args[0].removeprefix("file://")).unlink()

    lenient = _lake(landed, ivt_filter=False)
    assert lenient.replay(day, day).process.marts.mode == "incremental"  # the bots back
    _handed_over(monkeypatch, files_lost)
    ax = _lake(landed)
    assert ax.replay(day, day).process.marts.mode == "rebuild"
    after = _marts(ax)
    assert _rebuilt(ax) == after
