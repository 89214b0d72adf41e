"""The regression corpus in the landing zone: a batch with hostile files beside good ones
finishes, keeps every good record, and quarantines a bad-typed record alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile import bad_typed_avro, damaged_gzip, gzip_bomb, not_a_record_avro, poison_avro

pytestmark = pytest.mark.integration

GOOD = b'{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


@pytest.fixture
def ax(tmp_path: Path) -> Any:
    import advertisex

    return advertisex.open(
        data_dir=tmp_path / "data",
        correlation={"update_marts": False},
        processor={"decode_seconds": 5.0, "decode_memory_bytes": 256 << 20},
    )


def test_hostile_segments_cannot_stop_the_batch_around_them(ax: Any) -> None:
    ax.landing.write_segment("impressions", GOOD, label="good")
    ax.landing.write_segment("bids", poison_avro(), label="poison")
    ax.landing.write_segment("bids", bad_typed_avro(n=10, bad=3), label="typed")
    ax.landing.write_segment("bids", not_a_record_avro(), label="string")
    bomb = ax.landing.write_segment("impressions", gzip_bomb(1 << 30), label="bomb")

    report = ax.process()

    assert report.accounts["impressions"].accepted == 1
    assert [(u.segment.name, u.reason.split(":")[0]) for u in report.unreadable] == [
        (bomb.name, "decode_memory")
    ]
    # The bomb is a quarantine entry of its own, counted in its batch; its file stays.
    [entry] = ax.query(
        "select reasons, raw, source_file from curated.quarantine where source = 'impressions'"
    ).to_pylist()
    assert entry["reasons"] == ["segment_unreadable:decode_memory"]
    assert entry["source_file"] == bomb.name and bomb.name in entry["raw"]
    [row] = ax.query(
        "select files, records_in, accepted, quarantined from ops.batches "
        "where source = 'impressions'"
    ).to_pylist()
    assert row == {"files": 2, "records_in": 2, "accepted": 1, "quarantined": 1}
    assert ax.landing.head(bomb, 2) == b"\x1f\x8b"
    bids = report.accounts["bids"]
    assert (bids.records_in, bids.accepted, bids.quarantined) == (1 + 10 + 3, 1 + 9, 1 + 3)
    rows = ax.query(
        "select reasons, raw from curated.quarantine where source = 'bids' order by raw"
    ).to_pylist()
    typed = [r for r in rows if "abc" in r["raw"]]
    assert [r["reasons"] for r in typed] == [["number_invalid:floor_price"]]
    assert '"auction_id":"a3"' in typed[0]["raw"]
    strings = sorted(r["raw"] for r in rows if r["reasons"] == ["type_invalid"])
    assert strings == ['"a"', '"not"', '"record"']
    accepted = ax.query("select auction_id from curated.bid_requests order by 1").to_pylist()
    expected = ["a0", "a1", "a1000", "a2", *[f"a{i}" for i in range(4, 10)]]
    assert [r["auction_id"] for r in accepted] == expected


def aborting_decoder(data: bytes) -> Any:
    """Module-level: decoder workers import it by name."""
    import os

    os.abort()


CLICKS = (
    b"timestamp,user_id,campaign_id,event_type\n"
    b"2026-11-20T10:00:00Z,u1,c1,click\n2026-11-20T10:00:01Z,u2,c1,click\n"
    b"2026-11-20T10:00:02Z,u3,c1,view\n"
)


def test_a_file_set_aside_whole_is_never_hidden_and_replays_exactly_once(
    ax: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.formats.decode import DECODERS

    ax.landing.write_segment("impressions", GOOD, label="good")
    bad = ax.landing.write_segment("clicks", CLICKS, label="crashes")
    with monkeypatch.context() as patch:
        patch.setitem(DECODERS, ("clicks", "csv"), aborting_decoder)
        report = ax.process()
    assert [u.reason.split(":")[0] for u in report.unreadable] == ["decoder_crashed"]
    assert report.accounts["clicks"].quarantined == 1 and report.accounts["clicks"].balanced
    assert ax.process().batches == []  # decided: not pending again, not hidden either
    [entry] = ax.quarantine_records(reason="segment_unreadable").to_pylist()
    assert (entry["source_file"], entry["source_position"]) == (bad.name, 0)
    assert "LandingFilesSetAside" in _alerts(ax)  # and the monitor says so

    replayed = ax.replay_quarantine(reason="segment_unreadable")  # the decoder works again
    clicks = replayed.sources["clicks"]
    assert (clicks.replayed, clicks.accepted, clicks.still_quarantined) == (3, 2, 1)
    assert ax.query("select count(*) n from curated.clicks").to_pylist() == [{"n": 2}]
    left = ax.query(
        "select reasons, source_position from curated.quarantine where source = 'clicks'"
    ).to_pylist()
    assert left == [{"reasons": ["event_type_invalid"], "source_position": 4}]
    assert ax.replay_quarantine(reason="segment_unreadable").batch_id is None  # once only
    assert ax.query("select count(*) n from curated.clicks").to_pylist() == [{"n": 2}]
    assert "LandingFilesSetAside" not in _alerts(ax)


def _alerts(ax: Any) -> set[str]:
    """The alert names the monitors would raise now (one evaluation, no notification)."""
    from advertisex.monitor.checks import evaluate
    from advertisex.monitor.gather import Gatherer
    from advertisex.util.timeutil import utcnow

    observations = Gatherer(ax.settings, ax.lake, utcnow).observe(hourly=False)
    findings, _ = evaluate(observations, ax.settings.monitor, only=frozenset({"set_aside"}))
    return {f.alertname for f in findings}


def test_an_amount_past_any_real_one_cannot_stop_the_marts(tmp_path: Path) -> None:
    """An impression whose cost is 9.3e12 (valid JSON, not negative) beside good ones: it
    is quarantined as ``amount_too_large`` and the marts are brought up to date with the
    others. Accepted, its spend in micro-units passed 64 bits and the marts' update failed
    — in this run and in every run after it."""
    import advertisex

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": True})
    good = (
        b'{"impression_id":"i%d","timestamp":"2026-11-20T10:00:0%dZ","ad_creative_id":"c",'
        b'"campaign_id":"k","user_id":"u","website":"w","cost":%s}\n'
    )
    costs = [b"0.002", b"9.3e12", b"0.003"]
    ax.landing.write_segment("impressions", b"".join(good % (n, n, c) for n, c in enumerate(costs)))

    report = ax.process()

    account = report.accounts["impressions"]
    assert (account.accepted, account.quarantined) == (2, 1)
    assert report.marts is not None
    [row] = ax.query("select reasons, raw from curated.quarantine").to_pylist()
    assert row["reasons"] == ["amount_too_large:cost"] and "9.3e12" in row["raw"]
    [spend] = ax.query(
        "select sum(impressions) as n, sum(spend_micros) as spend from marts.campaign_hourly"
    ).to_pylist()
    assert spend == {"n": 2, "spend": 5000}


def test_a_rollup_sum_past_64_bits_is_a_clear_error_after_the_commit(tmp_path: Path) -> None:
    """9,300 conversions of one campaign's hour, each at the largest conversion value: each
    is accepted, their sum in micro-units (9.3e18) passes 64 bits. The batch is committed,
    and the marts' update stops with an error that says what happened and what to do —
    not a bug report."""
    import advertisex
    from advertisex.errors import MartOverflowError
    from advertisex.model.contracts import MAX_CONVERSION_VALUE

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": True})
    header = b"event_id,timestamp,user_id,campaign_id,event_type,conversion_value\n"
    line = b"v%d,2026-11-20T10:00:00Z,u%d,k,conversion,%d\n"
    count = 9_300
    body = b"".join(line % (n, n, MAX_CONVERSION_VALUE) for n in range(count))
    ax.landing.write_segment("clicks", header + body)

    with pytest.raises(MartOverflowError) as stopped:
        ax.process()

    assert "conversion_value_micros passes 64 bits" in str(stopped.value)
    assert "advertisex forget" in str(stopped.value)
    [row] = ax.query("select count(*) as n from curated.conversions").to_pylist()
    assert row["n"] == count


def test_a_damaged_gzip_file_keeps_its_sound_part_and_quarantines_the_rest(ax: Any) -> None:
    """A gzip'd landing file of any format whose stream is damaged: the records of its sound
    members are kept, the damaged member is one quarantine entry holding its bytes (nothing
    it inflated: a flipped bit inflates to plausible records), and every batch balances.
    Before, the damaged part was dropped without a word, and a single-member file vanished."""
    import base64
    import gzip

    from tests.hostile import avro_file, bid

    line = (
        b'{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"u%d","website":"w"}\n'
    )
    impressions, lost_impressions = damaged_gzip(
        b"".join(line % n for n in range(3)), b"".join(line % n for n in range(100, 400))
    )
    header = b"timestamp,user_id,campaign_id,event_type\n"
    row = b"2026-11-20T10:00:%02dZ,u%d,c1,click\n"
    clicks, lost_clicks = damaged_gzip(
        header + b"".join(row % (n, n) for n in range(2)),
        header + b"".join(row % (n % 60, n) for n in range(100, 400)),
    )
    bids, lost_bids = damaged_gzip(
        avro_file([bid(n) for n in range(4)]), avro_file([bid(n) for n in range(100, 400)])
    )
    names = {
        "impressions": ax.landing.write_segment("impressions", impressions, label="i").name,
        "clicks": ax.landing.write_segment("clicks", clicks, label="c").name,
        "bids": ax.landing.write_segment("bids", bids, label="b").name,
    }
    # Sound bid files beside it, in the same group: Avro containers framed together.
    for n in (10, 20):
        sound = gzip.compress(avro_file([bid(n), bid(n + 1)]))
        ax.landing.write_segment("bids", sound, label=f"sound{n}")

    report = ax.process()

    # The report names each damaged file and where (the CLI prints it).
    assert sorted((d.segment.name, d.reason.split(":")[0]) for d in report.damaged) == sorted(
        (name, "gzip_damaged") for name in names.values()
    )
    accepted = {"impressions": 3, "clicks": 2, "bids": 4 + 4}
    for source, kept in accepted.items():
        account = report.accounts[source]
        assert (account.records_in, account.accepted, account.quarantined) == (kept + 1, kept, 1)
    lost = {"impressions": lost_impressions, "clicks": lost_clicks, "bids": lost_bids}
    entries = ax.query(
        "select source, source_file, reasons, raw, detail from curated.quarantine"
    ).to_pylist()
    assert sorted(e["source"] for e in entries) == sorted(lost)
    for entry in entries:
        assert entry["reasons"] == ["gzip_damaged"]
        assert entry["source_file"] == names[entry["source"]]
        assert entry["detail"].startswith("gzip_damaged: the gzip member at byte")
        assert base64.b64decode(entry["raw"].removeprefix("base64:")) == lost[entry["source"]]
    assert "LandingFilesDamaged" in _alerts(ax)  # the operations team hears of it
    replayed = ax.replay_quarantine(reason="gzip_damaged")  # bytes, not a record to replay
    assert replayed.batch_id is None
    assert {s: r.not_replayable for s, r in replayed.sources.items()} == dict.fromkeys(lost, 1)


def test_forget_finds_a_user_in_a_damaged_gzip_file_and_its_quarantined_bytes(ax: Any) -> None:
    """A user named in a damaged gzip member (its bytes quarantined as ``gzip_damaged``, in
    base64 of compressed bytes: no byte of the id in plain) is erased there too — the
    quarantine entry and the landing file's rest — and another user's damaged part stays."""
    import gzip

    line = (
        b'{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"%s","website":"w"}\n'
    )
    sound = line % b"u-keep" + line % b"u-gone"
    gone, _ = damaged_gzip(sound, b"".join(line % b"u-gone" for _ in range(300)))
    other = b"".join(line % b"u-other" for _ in range(300))
    kept, kept_member = damaged_gzip(line % b"u-other", other)
    segment = ax.landing.write_segment("impressions", gone, label="gone")
    ax.landing.write_segment("impressions", kept, label="kept")
    report = ax.process()
    assert report.accounts["impressions"].quarantined == 2

    ax.forget(["u-gone"])

    users = ax.query("select user_id from curated.impressions order by 1").to_pylist()
    assert [u["user_id"] for u in users] == ["u-keep", "u-other"]
    [left] = ax.query("select reasons, source_file from curated.quarantine").to_pylist()
    assert left["reasons"] == ["gzip_damaged"] and "kept" in left["source_file"]
    assert gzip.decompress(ax.landing.head(segment, 1 << 20)) == line % b"u-keep"
    assert (
        kept_member in (ax.settings.data_dir / "landing").joinpath(left["source_file"]).read_bytes()
    )
