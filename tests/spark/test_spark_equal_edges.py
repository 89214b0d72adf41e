"""Spark equals the embedded runner on the edges the generated data never reaches:

* a conversion whose postback named a click of *another* campaign (``click_ref``): the
  rollup's credit rows take that click's creative, country and device, although Spark
  splits the rollup by campaign;
* a lake written with version-1 payload hashes (MD5): a retry or an id-less repeat
  against it is a duplicate, not a conflict, on the executors too
  (``tests/runners/test_fingerprint_versions.py`` is the embedded side).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.table_snapshots import MARTS, snapshot
from tests.version_1_lake import land_repeats, write_version_1_lake

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
CAMPAIGNS = 8  # more than Spark's parts (local[2]): some named clicks are in another part


def _open(data: Path) -> Any:
    import advertisex

    return advertisex.open(data_dir=data, processor={"ivt_filter": False})


def _crossing_events() -> tuple[bytes, bytes]:
    """User u-i sees and clicks an ad of campaign i, then converts in campaign i+1 with a
    postback naming that click."""
    impressions = []
    lines = [
        "event_id,timestamp,user_id,campaign_id,event_type,impression_id,ad_creative_id,"
        "conversion_type,conversion_value,currency,click_ref"
    ]
    for i in range(CAMPAIGNS):
        other = (i + 1) % CAMPAIGNS
        impressions.append(
            f'{{"impression_id": "imp-{i}", "timestamp": "2026-11-20T10:0{i}:00Z", '
            f'"campaign_id": "cmp-{i}", "ad_creative_id": "cr-{i}", "user_id": "u-{i}", '
            f'"website": "example.com", "country": "FR", "device_type": "mobile"}}\n'
        )
        lines.append(f"clk-{i},2026-11-20T10:1{i}:00Z,u-{i},cmp-{i},click,imp-{i},cr-{i},,,,")
        lines.append(
            f"cnv-{i},2026-11-20T11:0{i}:00Z,u-{i},cmp-{other},conversion,,cr-{other},"
            f"purchase,{i + 1}.5,USD,clk-{i}"
        )
    return "".join(impressions).encode(), ("\n".join(lines) + "\n").encode()


def test_a_conversion_credited_to_another_campaigns_click_rolls_up_alike(
    spark: Any, tmp_path: Path
) -> None:
    from advertisex.runners.embedded import EmbeddedRunner
    from advertisex.runners.spark import SparkRunner

    embedded = _open(tmp_path / "embedded")
    impressions, clicks = _crossing_events()
    embedded.landing.write_segment("impressions", impressions, fsync=False)
    embedded.landing.write_segment("clicks", clicks, fsync=False)
    shutil.copytree(tmp_path / "embedded" / "landing", tmp_path / "spark" / "landing")
    on_spark = _open(tmp_path / "spark")
    EmbeddedRunner(embedded.settings, embedded.lake, embedded.landing).process(now=NOW)
    SparkRunner(on_spark.settings, on_spark.lake, on_spark.landing, session=spark).process(now=NOW)

    credited = embedded.query(
        "select campaign_id, ad_creative_id, country from marts.campaign_hourly "
        "where conv_last > 0 order by all"
    ).to_pylist()
    # The embedded rollup credits each conversion's campaign on its named click's creative.
    assert sorted(credited, key=lambda r: r["ad_creative_id"]) == [
        {"campaign_id": f"cmp-{(i + 1) % CAMPAIGNS}", "ad_creative_id": f"cr-{i}", "country": "FR"}
        for i in range(CAMPAIGNS)
    ]
    want, got = snapshot(embedded, MARTS), snapshot(on_spark, MARTS)
    for name in MARTS:
        assert got[name] == want[name], name


def test_spark_dedupes_against_a_lake_written_with_version_1_hashes(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.kernels import fingerprint
    from advertisex.runners.spark import SparkRunner

    ax = _open(tmp_path / "data")
    write_version_1_lake(ax, monkeypatch)  # processed by the embedded runner
    hashes = ax.query("select payload_hash h from curated.impressions").column("h")
    assert all(fingerprint.is_legacy(hashes).to_pylist())
    land_repeats(ax)
    report = SparkRunner(ax.settings, ax.lake, ax.landing, session=spark).process(now=NOW)
    impressions, clicks = report.accounts["impressions"], report.accounts["clicks"]
    assert (impressions.accepted, impressions.duplicates, impressions.conflicts) == (1, 2, 1)
    assert (clicks.accepted, clicks.duplicates, clicks.conflicts) == (1, 1, 0)
    new = ax.query("select payload_hash h from curated.impressions where impression_id = 'c'")
    assert new.column("h").to_pylist()[0].startswith(fingerprint.VERSION_2)


def test_a_crashed_batchs_scratch_is_removed_once_past_the_orphan_margin(
    spark: Any, tmp_path: Path
) -> None:
    """A batch that crashed and ran again under another id (more segments pending by then)
    never removed its scratch folder: the runner does, once nothing in it is newer than the
    orphan margin; a fresh one (a batch running on another machine) stays."""
    import os
    import time

    from advertisex.runners.spark import SCRATCH, SparkRunner
    from advertisex.util.storage import local_path

    ax = _open(tmp_path / "data")
    impressions, _ = _crossing_events()
    ax.landing.write_segment("impressions", impressions, fsync=False)
    root = Path(local_path(ax.settings.warehouse_uri) or "") / SCRATCH
    stale, fresh = root / "20261101T000000Z-crashed", root / "20261121T000000Z-elsewhere"
    for folder in (stale, fresh):
        (folder / "impressions").mkdir(parents=True)
        (folder / "impressions" / "rows-0.arrow").write_bytes(b"rows")
    two_days_ago = time.time() - 2 * 86400  # the margin: 1,440 minutes
    for path in (stale / "impressions" / "rows-0.arrow", stale / "impressions", stale):
        os.utime(path, (two_days_ago, two_days_ago))
    SparkRunner(ax.settings, ax.lake, ax.landing, session=spark).process(now=NOW)
    assert not stale.exists() and fresh.exists()


def _impressions(*events: tuple[str, str]) -> bytes:
    return "".join(
        f'{{"impression_id": "{impression_id}", "timestamp": "{at}", "campaign_id": "cmp-1", '
        f'"ad_creative_id": "cr-1", "user_id": "u-1", "website": "example.com"}}\n'
        for impression_id, at in events
    ).encode()


def test_events_decades_apart_dedupe_alike_within_each_horizon(spark: Any, tmp_path: Path) -> None:
    """A batch holding an event of 1970-01-01 (a producer's "no time") among this month's
    is compared with the keys committed within the dedupe horizon of each
    (``runners.committed.horizon_spans``), on the executors as in process: a repeat of an
    event committed near either is a duplicate; an id committed in 1990, between both
    horizons, is new when it comes again timed this month."""
    from advertisex.runners.embedded import EmbeddedRunner
    from advertisex.runners.spark import SparkRunner

    committed = _impressions(
        ("near-epoch", "1970-01-02T00:00:00Z"),
        ("in-1990", "1990-06-01T00:00:00Z"),
        ("near-now", "2026-11-20T10:00:00Z"),
    )
    again = _impressions(
        ("near-epoch", "1970-01-02T00:00:00Z"),
        ("at-epoch", "1970-01-01T00:00:00Z"),
        ("near-now", "2026-11-20T10:00:00Z"),
        ("in-1990", "2026-11-20T11:00:00Z"),
    )
    reports = {}
    for engine in ("embedded", "spark"):
        ax = _open(tmp_path / engine)

        def run(ax: Any = ax, engine: str = engine) -> Any:
            if engine == "spark":
                return SparkRunner(ax.settings, ax.lake, ax.landing, session=spark).process(now=NOW)
            return EmbeddedRunner(ax.settings, ax.lake, ax.landing).process(now=NOW)

        ax.landing.write_segment("impressions", committed, fsync=False)
        run()
        ax.landing.write_segment("impressions", again, fsync=False)
        account = run().accounts["impressions"]
        reports[engine] = (account.accepted, account.duplicates, account.conflicts)
        rows = ax.query(
            "select impression_id, event_time from curated.impressions order by all"
        ).to_pylist()
        assert [r["impression_id"] for r in rows] == [
            "at-epoch", "in-1990", "in-1990", "near-epoch", "near-now"
        ], engine  # fmt: skip
    assert reports["embedded"] == reports["spark"] == (2, 2, 0)
