"""``replay`` rebuilds tables from the landing zone and yields the same tables again."""

from __future__ import annotations

import pytest

from advertisex import synth
from advertisex.util.timeutil import parse_date
from tests.table_snapshots import snapshot

pytestmark = pytest.mark.integration

TABLES = [
    "curated.impressions",
    "curated.clicks",
    "curated.bid_requests",
    "curated.quarantine",
    "curated.filtered",
]


def _snapshot(ax) -> dict[str, list]:
    return snapshot(ax, [*TABLES, "ops.batches"])


@pytest.mark.slow
def test_replay_all_and_a_day_range_give_the_same_tables(ax, tmp_path):
    source = tmp_path / "input"
    synth.generate(
        source, events=6000, seed=3, start=parse_date("2026-11-02"), faults=synth.FaultConfig.demo()
    )
    ax.ingest([str(source / "impressions"), str(source / "clicks"), str(source / "bids")])
    first = ax.process()
    before = _snapshot(ax)

    everything = ax.replay()
    assert sorted(everything.batches) == sorted(first.batches)
    assert _snapshot(ax) == before

    landing_day = (
        ax.query("select min(source_file) f from curated.impressions")
        .column("f")[0]
        .as_py()
        .split("/")[1]
    )
    some = ax.replay(parse_date(landing_day), parse_date(landing_day))
    assert some.batches and some.process.records_in > 0
    assert _snapshot(ax) == before
    assert ax.replay(parse_date("1999-01-01"), parse_date("1999-01-02")).process is None


def test_replay_refuses_batches_whose_segments_retention_deleted(ax):
    from advertisex.errors import UserInputError

    good = (
        b'{"timestamp":"2026-11-02T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'
    )
    segment = ax.landing.write_segment("impressions", good, label="one")
    ax.process()
    ax.landing.remove(segment)  # as landing retention does
    with pytest.raises(UserInputError, match="landing retention deleted them"):
        ax.replay()
    assert ax.query("select count(*) n from curated.impressions").to_pylist() == [{"n": 1}]


def test_replay_of_a_day_reads_the_ledger_by_ranges_and_replays_whole_batches(ax, monkeypatch):
    """A replay of one day reads the marks of that day's segments and of the batches they
    name, never the whole ledger (a mark for every segment ever committed); a batch that
    also consumed another day's segment is replayed whole."""
    from datetime import UTC, datetime

    from advertisex.lake.catalog import SegmentLedger

    def line(user: str, day: int) -> bytes:
        return (
            f'{{"timestamp":"2026-11-0{day}T00:00:00Z","ad_creative_id":"c",'
            f'"user_id":"{user}","website":"w"}}\n'
        ).encode()

    def landed(day: int, user: str) -> None:
        at = datetime(2026, 11, day, 12, tzinfo=UTC)
        ax.landing.write_segment("impressions", line(user, day), label=user, at=at)

    landed(1, "a")
    landed(2, "b")
    spanning = ax.process().batches  # one batch: the days 1 and 2
    landed(3, "c")
    later = ax.process().batches
    before = _snapshot(ax)
    reads: list[tuple[object, object]] = []
    rows = SegmentLedger._rows

    def watched(self, columns, source, between, among):
        reads.append((between, among))
        return rows(self, columns, source, between, among)

    monkeypatch.setattr(SegmentLedger, "_rows", watched)
    report = ax.replay(parse_date("2026-11-02"), parse_date("2026-11-02"))
    assert report.batches == spanning and report.segments == 2 and later != spanning
    assert reads and all(between is not None or among is not None for between, among in reads)
    assert _snapshot(ax) == before
