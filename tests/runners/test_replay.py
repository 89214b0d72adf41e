"""``replay`` rebuilds tables from the landing zone and yields the same tables again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _landed(ax, day: int, user: str, event_day: int) -> None:
    """An impression of 2026-11-``event_day`` landed on 2026-11-``day``."""
    from datetime import UTC, datetime

    line = (
        f'{{"timestamp":"2026-11-0{event_day}T00:00:00Z","ad_creative_id":"c",'
        f'"user_id":"{user}","website":"w"}}\n'
    )
    at = datetime(2026, 11, day, 12, tzinfo=UTC)
    ax.landing.write_segment("impressions", line.encode(), label=user, at=at)


def _impression_files(ax) -> list[str]:
    from advertisex.lake.history import live_files

    ax.lake.refresh()
    return [f.file_path for f in live_files(ax.lake.table("curated.impressions"))]


def test_a_replay_leaves_other_batches_files_unread_and_drops_its_own_unread(tmp_path):
    """A batch's files hold its rows only (their names say whose): a replay of another
    batch does not read them, and drops its own batch's files without reading them — so
    it rebuilds one the storage lost."""
    import advertisex
    from advertisex.lake.damage import batch_of
    from advertisex.runners.replay import _without_batches

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    _landed(ax, 1, "a", event_day=1)
    (first,) = ax.process().batches
    _landed(ax, 3, "b", event_day=3)
    (second,) = ax.process().batches
    files = {batch_of(url): url for url in _impression_files(ax)}
    assert set(files) == {first, second}
    lost = {batch: Path(url.removeprefix("file://")) for batch, url in files.items()}
    kept = lost[first].read_bytes()
    for path in lost.values():  # neither could be read now
        path.unlink()
    removed, added = _without_batches(ax.lake, "curated.impressions", {second})
    assert [f.file_path for f in removed] == [files[second]] and added == []

    lost[first].write_bytes(kept)  # the other batch's file back: the next batch reads it
    report = ax.replay(parse_date("2026-11-03"), parse_date("2026-11-03"))
    assert report.batches == [second]
    assert {batch_of(url) for url in _impression_files(ax)} == {first, second}
    assert files[second] not in _impression_files(ax)
    assert ax.query("select user_id from curated.impressions order by user_id")[
        "user_id"
    ].to_pylist() == ["a", "b"]


def _two_batches_of_one_day(tmp_path: Path) -> tuple[Any, str]:
    """A lake (compacting eagerly) of two batches landed on 2026-11-01 and 11-03, whose
    impressions share a day's partition; and the second batch's id."""
    import advertisex

    eager = {"min_input_files": 2, "snapshot_max_age_hours": 0, "min_snapshots": 1}
    ax = advertisex.open(
        data_dir=tmp_path / "data", correlation={"update_marts": False}, maintenance=eager
    )
    _landed(ax, 1, "a", event_day=1)
    ax.process()
    _landed(ax, 3, "b", event_day=1)  # the same day's partition: compacted with the first
    (second,) = ax.process().batches
    return ax, second


def test_a_replay_rewrites_a_compacted_file_without_the_replayed_batch(tmp_path):
    """A compacted file holds several batches' rows: it is read (its batch ids alone) and
    written again without the replayed batch's, which processing then brings back."""
    ax, second = _two_batches_of_one_day(tmp_path)
    before = _snapshot(ax)
    ax.maintain()
    (compacted,) = _impression_files(ax)
    assert "compacted-" in compacted

    report = ax.replay(parse_date("2026-11-03"), parse_date("2026-11-03"))
    assert report.batches == [second]
    after = _impression_files(ax)
    assert compacted not in after and any("replayed-" in url for url in after)
    assert _snapshot(ax) == before


def test_a_replay_skips_the_manifests_of_other_batches_commits_and_still_knows_them(tmp_path):
    """A manifest that only another landing batch's commit added lists that batch's files,
    which a replay never touches: it is not read. Its batch is still one the replay knows,
    so a compacted file holding its rows with the replayed batch's is rewritten, not
    taken out unread (which would lose them)."""
    from advertisex.lake.history import manifests_of
    from advertisex.runners.replay import _of_other_batches

    ax, second = _two_batches_of_one_day(tmp_path)
    before = _snapshot(ax)
    ax.maintain(["curated.impressions"])  # ops.batches keeps each batch's own manifest
    (compacted,) = _impression_files(ax)
    assert "compacted-" in compacted

    ops = ax.lake.table("ops.batches")
    unlisted: set[str] = set()
    unread = _of_other_batches(ops, {second}, unlisted)
    manifests = manifests_of(ops.current_snapshot(), ops.io)
    assert sorted(unread(m) for m in manifests) == [False, True]
    (first,) = unlisted
    assert first != second

    report = ax.replay(parse_date("2026-11-03"), parse_date("2026-11-03"))
    assert report.batches == [second]
    assert compacted not in _impression_files(ax)
    assert _snapshot(ax) == before


def test_a_lost_compacted_file_is_rebuilt_by_replaying_the_batches_its_bounds_name(tmp_path):
    """Under ``up`` nearly every row lives in compacted files within the hour: a lost one
    holds many batches' rows. Its ``batch_id`` bounds name them; the way back replays
    their landing days, and the replay takes the lost file out unread."""
    from advertisex.lake.damage import damage_error, damaged_files

    ax, _ = _two_batches_of_one_day(tmp_path)
    rows = "select user_id, impression_id, event_time from curated.impressions order by 1"
    before = ax.query(rows).to_pylist()
    ax.maintain()
    (compacted,) = _impression_files(ax)
    Path(compacted.removeprefix("file://")).unlink()

    damaged = damaged_files(ax.lake, ["curated.impressions"])
    hint = damage_error(ax.lake, damaged).hint or ""
    assert "advertisex replay --from 2026-11-01 --to 2026-11-03" in hint, hint
    report = ax.replay(parse_date("2026-11-01"), parse_date("2026-11-03"))
    assert len(report.batches) == 2  # (processed again as one: their segments are pending)
    assert compacted not in _impression_files(ax)
    assert ax.query(rows).to_pylist() == before and not damaged_files(ax.lake)


def test_a_landing_replay_after_a_quarantine_replay_counts_each_record_once(ax, tmp_path):
    """A quarantine replay's rows of a landing file are its own batch's, which a landing
    replay of that file did not take out: processed again, the bot impression it had
    filtered was filtered a second time (two rows in curated.filtered, two accounts
    counting it). Now they go with the batches replayed, and the replay's account shrinks
    by them; what it accepted is accepted once, by whichever batch holds it."""
    from advertisex import dims

    (tmp_path / "campaigns.csv").write_text("campaign_id,advertiser\ncmp-1,Acme\n")
    dims.load_file(ax.lake, tmp_path / "campaigns.csv")
    line = (
        '{"impression_id":"%s","timestamp":"2026-11-02T10:00:00Z","ad_creative_id":"c",'
        '"user_id":"%s","website":"w","campaign_id":"%s","user_agent":"%s"}\n'
    )
    bot = "Googlebot/2.1 (+http://www.google.com/bot.html)"
    body = (
        line % ("i-ok", "u1", "cmp-1", "Mozilla/5.0")
        + line % ("i-new", "u2", "cmp-2", "Mozilla/5.0")
        + line % ("i-bot", "u3", "cmp-2", bot)
    )
    ax.landing.write_segment("impressions", body.encode(), label="imps")
    assert ax.process().accounts["impressions"].quarantined == 2

    (tmp_path / "more.csv").write_text("campaign_id,advertiser\ncmp-2,Bolt\n")
    dims.load_file(ax.lake, tmp_path / "more.csv")
    moved = ax.replay_quarantine(reason="unknown_campaign").sources["impressions"]
    assert (moved.accepted, moved.filtered) == (1, 1)

    ax.replay()
    counts = ax.query(
        "select (select count(*) from curated.impressions) as accepted, "
        "(select count(*) from curated.filtered) as filtered, "
        "(select count(*) from curated.quarantine) as quarantined"
    ).to_pylist()
    assert counts == [{"accepted": 2, "filtered": 1, "quarantined": 0}]
    accounts = ax.query(
        "select sum(records_in) as records_in, sum(accepted) as accepted, "
        "sum(filtered) as filtered, sum(quarantined) as quarantined, "
        "bool_and(records_in = accepted + quarantined + filtered + duplicates) as balanced "
        "from ops.batches"
    ).to_pylist()
    assert accounts == [
        {"records_in": 3, "accepted": 2, "filtered": 1, "quarantined": 0, "balanced": True}
    ]
    after = _snapshot(ax)
    ax.replay()  # and again: the same tables
    assert _snapshot(ax) == after


def test_a_range_whose_end_is_before_its_start_is_an_error_not_nothing_to_do(ax):
    """``--from 2026-12-08 --to 2026-12-01`` said "nothing to replay" and exited 0: the
    operator who swapped the days took the day as rebuilt."""
    from advertisex.errors import UserInputError

    with pytest.raises(UserInputError, match="--to 2026-12-01 is before --from 2026-12-08"):
        ax.replay(parse_date("2026-12-08"), parse_date("2026-12-01"))
    assert ax.replay(parse_date("2026-12-01"), parse_date("2026-12-01")).process is None


def _past_retention_lake(tmp_path):
    """A lake keeping 30 days of impressions, and a landed file of one impression 60 days
    old (``old``) and one of yesterday (``recent``)."""
    from datetime import timedelta

    import advertisex
    from advertisex.util.timeutil import utcnow

    ax = advertisex.open(
        data_dir=tmp_path / "data",
        correlation={"update_marts": False},
        retention={"days": {"curated.impressions": 30}},
    )
    line = '{{"timestamp":"{at:%Y-%m-%dT%H:%M:%SZ}","ad_creative_id":"c","user_id":"{u}","website":"w"}}\n'
    now = utcnow()
    old, recent = now - timedelta(days=60), now - timedelta(days=1)
    text = line.format(at=old, u="old") + line.format(at=recent, u="recent")
    ax.landing.write_segment("impressions", text.encode())
    return ax


USERS = "select user_id from curated.impressions"


def test_a_first_process_commits_no_row_of_a_day_retention_keeps_no_more(tmp_path):
    """A backfill's events of days past the curated retention were committed by their
    first ``process``, and stayed in queries until the next ``maintain`` took them. The run
    expires them itself now, once the marts counted them: the report says how many, and
    ``ops.batches`` counts them accepted (as retention leaves the accounts), so every
    batch still balances."""
    ax = _past_retention_lake(tmp_path)
    report = ax.process()
    account = report.accounts["impressions"]
    assert account.accepted == 2 and account.balanced
    assert report.past_retention == {"curated.impressions": 1}
    assert ax.query(USERS)["user_id"].to_pylist() == ["recent"]  # not even a while
    assert ax.maintain(["curated.impressions"]).tables[0].rows_expired == 0  # nothing left
    accepted = ax.query("select sum(accepted) n from ops.batches where source = 'impressions'")
    assert accepted["n"].to_pylist() == [2]


def test_a_replay_brings_back_no_row_of_a_day_retention_took(tmp_path):
    """A replay processes its segments again, and their rows of days past the curated
    retention came back — in queries, and in the marts' update — until the next
    ``maintain`` took them again. They are left out at the replay's commit now, and
    counted: the report says how many, ``ops.batches`` still counts them accepted (as
    retention leaves the accounts)."""
    ax = _past_retention_lake(tmp_path)
    assert ax.process().accounts["impressions"].accepted == 2
    assert ax.query(USERS)["user_id"].to_pylist() == ["recent"]

    report = ax.replay()
    assert ax.query(USERS)["user_id"].to_pylist() == ["recent"]  # not back, not even a while
    assert report.process is not None
    assert report.process.past_retention == {"curated.impressions": 1}
    accepted = ax.query("select sum(accepted) n from ops.batches where source = 'impressions'")
    assert accepted["n"].to_pylist() == [2]
    again = ax.replay()  # nothing left out twice, nothing lost
    assert again.process is not None and again.process.past_retention == {"curated.impressions": 1}
    assert ax.query(USERS)["user_id"].to_pylist() == ["recent"]


def test_a_backfills_rows_past_retention_reach_the_marts_and_the_archive_first(tmp_path):
    """Expired at the end of the run, not left out at the commit: the marts (kept
    longer: ``marts.campaign_daily`` has no day partition) count a backfill's old days, as
    they did when ``maintain`` took the rows later, and ``retention.archive`` keeps a copy,
    as retention's own step does."""
    from datetime import timedelta

    import pyarrow.parquet as pq

    import advertisex
    from advertisex.util.timeutil import utcnow

    archive = tmp_path / "archive"
    ax = advertisex.open(
        data_dir=tmp_path / "data",
        retention={"days": {"curated.impressions": 30}, "archive": str(archive)},
    )
    line = '{{"timestamp":"{at:%Y-%m-%dT%H:%M:%SZ}","ad_creative_id":"c","user_id":"{u}","website":"w","campaign_id":"k"}}\n'
    old, recent = utcnow() - timedelta(days=60), utcnow() - timedelta(days=1)
    ax.landing.write_segment(
        "impressions", (line.format(at=old, u="old") + line.format(at=recent, u="recent")).encode()
    )
    report = ax.process()
    assert report.past_retention == {"curated.impressions": 1}
    assert ax.query(USERS)["user_id"].to_pylist() == ["recent"]
    days = ax.query("select day, impressions from marts.campaign_daily order by day").to_pylist()
    assert days == [
        {"day": old.date(), "impressions": 1},
        {"day": recent.date(), "impressions": 1},
    ]
    copies = list((archive / "curated" / "impressions").rglob("*.parquet"))
    assert len(copies) == 1
    assert pq.read_table(copies[0], columns=["user_id"])["user_id"].to_pylist() == ["old"]
