"""Quarantine list/show/replay end to end on a real lake in a temporary folder."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from advertisex import dims
from advertisex.quarantine.replay import replay
from advertisex.quarantine.selection import Selection, records, summary

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
FUTURE = "2026-11-27T15:00:00Z"  # three hours ahead of NOW, in the past at LATER


def _impression(i: str, timestamp: str | None = FUTURE, **extra: str) -> str:
    record = {"impression_id": i, "ad_creative_id": "cr-1", "user_id": "u1", "website": "w1"}
    if timestamp:
        record["timestamp"] = timestamp
    return json.dumps({**record, **extra})


def _avro_bids(rows: list[dict]) -> bytes:
    from importlib import resources

    import fastavro

    avsc = resources.files("advertisex.model").joinpath("bid_request.avsc").read_text()
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(json.loads(avsc)), rows)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory, open_lake) -> Path:
    """A lake after two batches at NOW: a few good records, several quarantined ones."""
    base = tmp_path_factory.mktemp("quarantine")
    drop = base / "drop"
    drop.mkdir()
    (drop / "imps.ndjson").write_text(
        "\n".join(
            [
                _impression("ok", "2026-11-27T11:00:00Z"),
                _impression("future-1"),
                _impression("future-2", user_agent="curl/8.4.0"),
                _impression("no-time", None),
                "{not json",
                _impression("dup"),  # its corrected retry arrives in the next batch
            ]
        )
        + "\n"
    )
    (drop / "clicks.csv").write_text(
        "event_timestamp;user_id;ad_campaign_id;event_type;click_id\r\n"
        "2026-11-27T11:00:00Z;u1;cmp-1;click;k-ok\r\n"
        f"{FUTURE};u1;cmp-1;click;k-future\r\n"
        "2026-11-27T11:00:00Z;u1;cmp-2;click;k-unknown\r\n"  # cmp-2 is not loaded yet
    )
    good = {"auction_id": "a-ok", "timestamp": 1795777200000, "user_id": "u1", "exchange": "x"}
    late = {"auction_id": "a-future", "timestamp": 1795791600000, "user_id": "u1", "exchange": "x"}
    (drop / "bids.avro").write_bytes(_avro_bids([good, late]))
    (drop / "broken.avro").write_bytes(b"Obj\x01 this is not really avro")
    ax = open_lake(base / "data")
    (base / "campaigns.csv").write_text("campaign_id,advertiser\ncmp-1,Acme\n")
    dims.load_file(ax.lake, base / "campaigns.csv")
    ax.ingest([str(drop)])
    report = ax.runner.process(now=NOW)
    assert {s: a.quarantined for s, a in report.accounts.items()} == {
        "impressions": 5,
        "clicks": 2,
        "bids": 2,
    }
    retry = base / "retry.ndjson"
    retry.write_text(_impression("dup", "2026-11-27T11:30:00Z") + "\n")
    ax.ingest([str(retry)])
    ax.runner.process(now=NOW)
    return base / "data"


def test_list_groups_by_source_and_reason(lake_dir, open_lake):
    lake = open_lake(lake_dir).lake
    rows = summary(lake, Selection()).to_pylist()
    counts = {(r["source"], r["reason"]): r["records"] for r in rows}
    assert counts[("impressions", "timestamp_in_future")] == 3
    assert counts[("impressions", "json_invalid")] == 1
    assert counts[("clicks", "timestamp_in_future")] == 1
    assert counts[("clicks", "unknown_campaign")] == 1
    assert counts[("bids", "avro_unreadable")] == 1
    only = summary(lake, Selection(source="clicks")).to_pylist()
    assert {r["source"] for r in only} == {"clicks"}
    by_code = summary(lake, Selection(reason="required_missing")).to_pylist()
    assert [r["reason"] for r in by_code] == ["required_missing:timestamp"]
    assert summary(lake, Selection(since=datetime(2099, 1, 1, tzinfo=UTC))).num_rows == 0


def test_show_gives_raw_text_reasons_file_and_position(lake_dir, open_lake):
    lake = open_lake(lake_dir).lake
    shown = records(lake, Selection(source="impressions"), limit=10).to_pylist()
    no_time = next(r for r in shown if '"no-time"' in r["raw"])
    assert no_time["reasons"] == ["required_missing:timestamp"]
    assert no_time["source_file"].startswith("impressions/")
    assert no_time["source_position"] == 4
    assert len(records(lake, Selection(), limit=2)) == 2


def test_replay_moves_what_now_passes_exactly_once(lake_dir, open_lake):
    ax = open_lake(lake_dir)
    unchanged = replay(ax.settings, ax.lake, ax.landing, now=NOW)
    assert not unchanged.changed  # same clock, same rules: nothing to move, nothing committed

    # The clicks alone, at the same clock but with a wider future skew: settings in force count.
    tolerant = open_lake(lake_dir, processor={"future_skew_seconds": 4 * 3600})
    clicks = replay(
        tolerant.settings, tolerant.lake, tolerant.landing, Selection(source="clicks"), now=NOW
    )
    assert clicks.changed and clicks.by_table == {"curated.clicks": 1}
    assert clicks.sources["clicks"].still_quarantined == 1  # k-unknown: cmp-2 still unknown

    # The fix for an unknown campaign: load it, then replay that reason.
    (lake_dir / "more.csv").write_text("campaign_id,advertiser\ncmp-2,Bolt\n")
    dims.load_file(ax.lake, lake_dir / "more.csv")
    known = replay(ax.settings, ax.lake, ax.landing, Selection(reason="unknown_campaign"), now=NOW)
    assert known.by_table == {"curated.clicks": 1}
    advertiser = ax.query("select advertiser from curated.clicks where event_id = 'k-unknown'")
    assert advertiser.to_pylist() == [{"advertiser": "Bolt"}]  # enriched on the way in

    report = replay(
        ax.settings, ax.lake, ax.landing, Selection(reason="timestamp_in_future"), now=LATER
    )
    assert report.changed
    impressions, bids = report.sources["impressions"], report.sources["bids"]
    # future-2 comes from curl: valid now, but invalid traffic (curated.filtered); "dup"
    # was accepted meanwhile from its corrected retry, so it leaves as a duplicate.
    assert (impressions.replayed, impressions.accepted) == (3, 1)
    assert (impressions.filtered, impressions.duplicates, impressions.conflicts) == (1, 1, 1)
    assert (bids.replayed, bids.accepted) == (1, 1)
    assert report.by_table == {
        "curated.impressions": 1,
        "curated.filtered": 1,
        "curated.bid_requests": 1,
    }

    snapshot = ax.lake.table("curated.quarantine").current_snapshot().snapshot_id
    again = replay(ax.settings, ax.lake, ax.landing, now=LATER)
    assert not again.changed
    assert again.sources["bids"].not_replayable == 1  # avro_unreadable stays for a person
    ax.lake.refresh()
    assert ax.lake.table("curated.quarantine").current_snapshot().snapshot_id == snapshot

    ids = ax.query("select impression_id, batch_id from curated.impressions order by 1").to_pylist()
    assert [r["impression_id"] for r in ids] == ["dup", "future-1", "ok"]
    assert ids[1]["batch_id"].startswith("replay-")
    filtered = ax.query("select event_id from curated.filtered").to_pylist()
    assert filtered == [{"event_id": "future-2"}]
    clicks_table = ax.query("select event_id from curated.clicks order by 1").to_pylist()
    assert clicks_table == [{"event_id": e} for e in ("k-future", "k-ok", "k-unknown")]
    bid_ids = ax.query("select auction_id from curated.bid_requests order by 1").to_pylist()
    assert bid_ids == [{"auction_id": "a-future"}, {"auction_id": "a-ok"}]
    left = ax.query("select source, reasons from curated.quarantine order by 1, 2").to_pylist()
    assert left == [
        {"source": "bids", "reasons": ["avro_unreadable"]},
        {"source": "impressions", "reasons": ["json_invalid"]},
        {"source": "impressions", "reasons": ["required_missing:timestamp"]},
    ]
    # Each replay is a balanced batch in ops.batches. That these queries work at all
    # shows the quarantine delete left plain data files, no delete files, behind.
    batches = ax.query(
        "select source, records_in, accepted, quarantined, filtered, duplicates "
        "from ops.batches where source like 'replay:%' order by source"
    ).to_pylist()
    assert [b["source"] for b in batches] == [
        "replay:bids",
        "replay:clicks",
        "replay:clicks",
        "replay:impressions",
    ]
    for b in batches:
        assert b["records_in"] == b["accepted"] + b["quarantined"] + b["filtered"] + b["duplicates"]
    assert ax.lake.data_files("curated.quarantine")


def test_replay_judges_as_a_landing_batch_domains_and_invalid_traffic_users(tmp_path, open_lake):
    """Replayed records meet the rules a landing batch meets now (one ``BatchRules``):
    dimension domains, and the users committed batches caught as invalid traffic."""
    ax = open_lake(tmp_path / "data")
    (tmp_path / "campaigns.csv").write_text("campaign_id,advertiser\ncmp-1,Acme\n")
    dims.load_file(ax.lake, tmp_path / "campaigns.csv")
    bot = "Googlebot/2.1 (+http://www.google.com/bot.html)"
    crawler = _impression("crawled", "2026-11-27T11:00:00Z", user_id="bot", user_agent=bot)
    ax.landing.write_segment("impressions", (crawler + "\n").encode(), label="imps")
    ax.landing.write_segment(
        "clicks",
        (
            "timestamp,user_id,campaign_id,event_type,event_id\n"
            f"{FUTURE},bot,cmp-1,click,k-bot\n"  # its user is invalid traffic
            f"{FUTURE},u1,cmp-9,click,k-unknown\n"  # cmp-9 is no known campaign
            f"{FUTURE},u1,cmp-1,click,k-good\n"
        ).encode(),
        label="clicks",
    )
    first = ax.runner.process(now=NOW)
    assert first.accounts["impressions"].filtered == 1
    assert first.accounts["clicks"].quarantined == 3  # all three in the future at NOW

    report = replay(ax.settings, ax.lake, ax.landing, Selection(source="clicks"), now=LATER)
    clicks = report.sources["clicks"]
    assert (clicks.accepted, clicks.filtered, clicks.still_quarantined) == (1, 1, 1)
    filtered = ax.query("select event_id, rules from curated.filtered order by 1").to_pylist()
    assert filtered == [
        {"event_id": "crawled", "rules": ["known_crawler_ua"]},
        {"event_id": "k-bot", "rules": ["ivt_user"]},
    ]
    left = ax.query("select reasons from curated.quarantine").to_pylist()
    assert left == [{"reasons": ["unknown_campaign"]}]
    accepted = ax.query("select event_id from curated.clicks").to_pylist()
    assert accepted == [{"event_id": "k-good"}]


def test_an_avro_bid_of_an_unknown_campaign_is_accepted_once_the_campaign_is_loaded(
    tmp_path, open_lake
):
    """A bid rejected after standardize (``unknown_campaign``) is quarantined as its record in
    JSON, which replay reads again: it was its standardized row (``event_time``, no
    ``timestamp``), so after ``dims load`` its replay only added ``required_missing:timestamp``
    and committed a batch that accepted nothing, every time."""
    ax = open_lake(tmp_path / "data")
    (tmp_path / "campaigns.csv").write_text("campaign_id,advertiser\ncmp-1,Acme\n")
    dims.load_file(ax.lake, tmp_path / "campaigns.csv")
    bid = {"auction_id": "a-new", "timestamp": 1795777200000, "user_id": "u1", "exchange": "x"}
    bid |= {"campaign_id": "cmp-2", "bid_price": 1.25, "ad_targeting": {"age": "18-24"}}
    ax.landing.write_segment("bids", _avro_bids([bid]), label="bids")
    assert ax.runner.process(now=NOW).accounts["bids"].quarantined == 1

    (tmp_path / "more.csv").write_text("campaign_id,advertiser\ncmp-2,Bolt\n")
    dims.load_file(ax.lake, tmp_path / "more.csv")
    report = replay(ax.settings, ax.lake, ax.landing, Selection(reason="unknown_campaign"), now=NOW)
    assert report.by_table == {"curated.bid_requests": 1}
    assert report.sources["bids"].still_quarantined == 0
    accepted = ax.query(
        "select auction_id, event_time, bid_price, ad_targeting from curated.bid_requests"
    ).to_pylist()
    assert accepted == [
        {
            "auction_id": "a-new",
            "event_time": datetime(2026, 11, 27, 11, 0, tzinfo=UTC),
            "bid_price": 1.25,
            "ad_targeting": [("age", "18-24")],
        }
    ]
    assert ax.query("select count(*) as n from curated.quarantine").to_pylist() == [{"n": 0}]


def test_a_bid_quarantined_as_its_standardized_row_by_an_earlier_version_replays(
    tmp_path, open_lake, monkeypatch
):
    """Lakes already hold bids quarantined as their standardized row (``event_time``,
    ``payload_hash``, the extras as a text): replay reads them as the record they were, and
    a bid failing again keeps the text it has."""
    import advertisex.kernels.validate as validate
    from advertisex.util import engine

    def earlier(rows):  # type: ignore[no-untyped-def]  # the rendering before the fix
        fields = [
            c for c in rows.column_names if c not in ("raw", "reasons", "frame_error", "segment")
        ]
        packed = ", ".join(f'"{c}"' for c in fields)
        sql = f"SELECT CAST(to_json(struct_pack({packed})) AS VARCHAR) AS j FROM r"
        return engine.run(sql, r=rows.select(fields)).column("j")

    ax = open_lake(tmp_path / "data")
    (tmp_path / "campaigns.csv").write_text("campaign_id,advertiser\ncmp-1,Acme\n")
    dims.load_file(ax.lake, tmp_path / "campaigns.csv")
    bid = {"auction_id": "a-old", "timestamp": 1795777200000, "user_id": "u1", "exchange": "x"}
    other = {**bid, "auction_id": "a-other", "campaign_id": "cmp-3"}
    ax.landing.write_segment("bids", _avro_bids([{**bid, "campaign_id": "cmp-2"}, other]))
    with monkeypatch.context() as patched:
        patched.setattr(validate, "_rendered_records", earlier)
        assert ax.runner.process(now=NOW).accounts["bids"].quarantined == 2
    before = ax.query("select raw from curated.quarantine order by raw").column("raw").to_pylist()
    assert all('"event_time"' in raw and '"timestamp"' not in raw for raw in before)

    (tmp_path / "more.csv").write_text("campaign_id,advertiser\ncmp-2,Bolt\n")
    dims.load_file(ax.lake, tmp_path / "more.csv")
    report = replay(ax.settings, ax.lake, ax.landing, now=NOW)
    bids = report.sources["bids"]
    assert (bids.accepted, bids.still_quarantined, bids.reasons_updated) == (1, 1, 0)
    accepted = ax.query("select auction_id, event_time from curated.bid_requests").to_pylist()
    assert accepted == [
        {"auction_id": "a-old", "event_time": datetime(2026, 11, 27, 11, tzinfo=UTC)}
    ]
    left = ax.query("select raw, reasons from curated.quarantine").to_pylist()
    assert left == [{"raw": before[1], "reasons": ["unknown_campaign"]}]  # untouched


def _racing(monkeypatch, first):  # type: ignore[no-untyped-def]
    """``_commit`` calls, the first of them after ``first()`` committed in between."""
    import advertisex.quarantine.replay as module

    real, calls = module._commit, []

    def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            first()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "_commit", racing)
    return calls


def test_a_processors_batch_between_read_and_commit_does_not_fail_the_replay(
    tmp_path, open_lake, monkeypatch
):
    """The replay deletes its records by landing file, and the quarantine's bounds of
    ``source_file`` were cut at 16 characters (``impressions/2026``): any file a processor
    added meanwhile might have held them, so a batch of ``process --follow`` committed
    between the replay's read and its commit failed it with ``commit_conflict`` (and a hint
    that it had been retried), every time under a follower committing every second."""
    ax = open_lake(tmp_path / "data")
    ax.landing.write_segment("impressions", (_impression("late") + "\n").encode(), label="a")
    assert ax.runner.process(now=NOW).accounts["impressions"].quarantined == 1
    follower = open_lake(tmp_path / "data")  # another process: its own view of the tables

    def batch() -> None:  # one more record quarantined, from another landing file
        follower.landing.write_segment("impressions", (_impression("next") + "\n").encode())
        follower.runner.process(now=NOW)

    calls = _racing(monkeypatch, batch)
    report = replay(ax.settings, ax.lake, ax.landing, Selection(source="impressions"), now=LATER)
    assert len(calls) == 1 and report.sources["impressions"].accepted == 1
    ids = ax.query("select impression_id from curated.impressions").to_pylist()
    assert ids == [{"impression_id": "late"}]
    left = ax.query("select raw from curated.quarantine").column("raw").to_pylist()
    assert len(left) == 1 and '"next"' in left[0]  # landed after the replay read: not taken


def test_a_replay_that_loses_a_race_runs_again_on_fresh_tables(tmp_path, open_lake, monkeypatch):
    """A replay whose commit lost a race (here to another replay of the same records)
    failed with a hint that said it had been retried; it now is, on the tables as they are
    then — where the records already left — and each is accepted once."""
    ax = open_lake(tmp_path / "data")
    ax.landing.write_segment("impressions", (_impression("late") + "\n").encode(), label="a")
    assert ax.runner.process(now=NOW).accounts["impressions"].quarantined == 1
    other = open_lake(tmp_path / "data")
    calls = _racing(
        monkeypatch, lambda: replay(other.settings, other.lake, other.landing, now=LATER)
    )
    report = replay(ax.settings, ax.lake, ax.landing, now=LATER)
    assert len(calls) == 2  # this one's (lost to the other's, made inside it)
    assert not report.changed and report.sources == {}  # tried again: nothing left to take
    ids = ax.query("select impression_id from curated.impressions").to_pylist()
    assert ids == [{"impression_id": "late"}]
    batches = ax.query("select count(*) as n from ops.batches where source like 'replay:%'")
    assert batches.to_pylist() == [{"n": 1}]


def test_a_csv_files_header_is_read_from_its_head_gzipd_or_not(tmp_path):
    """Replay re-frames a quarantined CSV line under its file's header: read from the file's
    first 64 KiB, un-gzipped as far as they go. A gzip'd file was inflated whole for it,
    with no bound (a 200 MB body here)."""
    import gzip
    import tracemalloc
    from types import SimpleNamespace

    from advertisex.quarantine.replay import _csv_header

    header = b"timestamp,user_id,campaign_id,event_type"
    files = {
        "plain.csv": b"\xef\xbb\xbf\r\n" + header + b"\r\n2026-11-27T11:00:00Z,u,c,click\r\n",
        "only-header.csv": header,
        "zipped.csv": gzip.compress(header + b"\n" + b"0" * (200 << 20), compresslevel=1),
        "long.csv": b"x" * (1 << 17) + b"\n",
        "empty.csv": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    landing = SimpleNamespace(root=tmp_path)
    tracemalloc.start()
    found = {name: _csv_header(landing, name) for name in [*files, "gone.csv"]}
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found == {
        "plain.csv": header,
        "only-header.csv": header,
        "zipped.csv": header,
        "long.csv": None,  # no end of its first line in the head: not a header to trust
        "empty.csv": None,
        "gone.csv": None,
    }
    assert peak < 100 << 20


def test_a_record_still_failing_stays_when_another_of_its_line_leaves(tmp_path, open_lake):
    # Two objects back to back on one line share their landing file and position: the one
    # that passes leaves, the one still failing for the same reason stays (it was deleted
    # with it: records matched by file and position alone).
    ax = open_lake(tmp_path / "data")
    later = _impression("later", FUTURE)
    never = _impression("never", "2030-01-01T00:00:00Z")
    ax.landing.write_segment("impressions", f"{later} {never}\n".encode(), label="imps")
    first = ax.runner.process(now=NOW)
    assert first.accounts["impressions"].quarantined == 2

    report = replay(ax.settings, ax.lake, ax.landing, Selection(source="impressions"), now=LATER)
    assert (
        report.sources["impressions"].accepted,
        report.sources["impressions"].left_quarantine,
    ) == (1, 1)
    assert [
        r["impression_id"]
        for r in ax.query("select impression_id from curated.impressions").to_pylist()
    ] == ["later"]
    left = ax.query("select raw, reasons from curated.quarantine").to_pylist()
    assert [json.loads(r["raw"])["impression_id"] for r in left] == ["never"]
    assert left[0]["reasons"] == ["timestamp_in_future"]


def test_what_a_replay_accepts_is_in_the_marts_at_once(tmp_path):
    """The marts kept current take a replay's records as they take a batch's: a click of a
    campaign loaded after it was quarantined counted in no report until the next process."""
    import advertisex

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "imps.ndjson").write_text(
        _impression("i-1", "2026-11-27T10:59:00Z", campaign_id="cmp-2") + "\n"
    )
    (drop / "clicks.csv").write_text(
        "event_timestamp;user_id;ad_campaign_id;event_type;click_id\r\n"
        "2026-11-27T11:00:00Z;u1;cmp-1;click;k-ok\r\n"
        "2026-11-27T11:00:00Z;u1;cmp-2;click;k-unknown\r\n"
    )
    ax = advertisex.open(data_dir=tmp_path / "data")  # the marts kept current (the default)
    (tmp_path / "campaigns.csv").write_text("campaign_id,advertiser\ncmp-1,Acme\n")
    dims.load_file(ax.lake, tmp_path / "campaigns.csv")
    ax.ingest([str(drop)])
    ax.runner.process(now=NOW)
    hourly = "select campaign_id, sum(clicks) n from marts.campaign_hourly group by 1 order by 1"
    assert ax.query(hourly).to_pylist() == [{"campaign_id": "cmp-1", "n": 1}]

    (tmp_path / "more.csv").write_text("campaign_id,advertiser\ncmp-2,Bolt\n")
    dims.load_file(ax.lake, tmp_path / "more.csv")
    report = replay(ax.settings, ax.lake, ax.landing, Selection(reason="unknown_campaign"), now=NOW)
    assert report.changed and report.summary()["marts"] in ("incremental", "rebuild")
    assert ax.query(hourly).to_pylist() == [
        {"campaign_id": "cmp-1", "n": 1},
        {"campaign_id": "cmp-2", "n": 1},
    ]
    # The same as a rebuild from the curated tables.
    rebuilt = ax.refresh_marts(rebuild=True)
    assert rebuilt.mode == "rebuild" and ax.query(hourly).to_pylist()[1]["n"] == 1
