"""The Spark runner equals the embedded runner, row for row, on the same landing zone.

One generated dataset (with duplicates, conflicts, invalid traffic and malformed
records) is landed once; the landing folder is copied so
both runners see the same segment names. The embedded runner processes one copy in
process, the Spark runner (local[2]) the other, in two batches so that the dedupe
against committed keys runs on the executors too. Every curated table, every mart
(built from scratch, then brought up to date incrementally after late data — both on
Spark, partitioned by user, auction and campaign) and ``ops.batches`` must be equal,
except the wall-clock columns.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.table_snapshots import CURATED, MARTS, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = datetime(2026, 11, 12, 0, 0, tzinfo=UTC)
TABLES = [*CURATED, "ops.batches", *MARTS]


def _open(data: Path, batch_max_bytes: int = 1 << 30, update_marts: bool = True) -> Any:
    import advertisex

    return advertisex.open(
        data_dir=data,
        processor={"batch_max_bytes": batch_max_bytes},
        correlation={"update_marts": update_marts},
    )


def _tables(ax: Any) -> dict[str, list[dict[str, Any]]]:
    return snapshot(ax, TABLES)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """Two data folders holding the same landing zone, nothing processed yet, and a batch
    size that cuts it in two batches (the second dedupes against committed keys)."""
    from advertisex.synth.config import FaultConfig
    from advertisex.synth.generator import generate

    root = tmp_path_factory.mktemp("spark-equal")
    generate(
        root / "input", events=5000, seed=11, start=date(2026, 11, 10), faults=FaultConfig.demo()
    )
    embedded = root / "embedded"
    ax = _open(embedded)
    ax.ingest([str(root / "input" / s) for s in ("impressions", "clicks", "bids")])
    # Lands last, so in the last batch: 60 re-sent impressions of the first batch, which
    # only the dedupe against committed keys (read by the executors) recognises.
    first = sorted((root / "input" / "impressions").iterdir())[0]
    resent = root / "resent.ndjson"
    resent.write_bytes(b"".join(first.read_bytes().splitlines(keepends=True)[:60]))
    ax.ingest([str(resent)], source="impressions")
    shutil.copytree(embedded / "landing", root / "spark" / "landing")
    total = sum(s.size for s in ax.landing.segments())
    return embedded, root / "spark", total // 2 + 1


def test_spark_runner_equals_embedded_runner_row_for_row(
    spark: Any, landed: tuple[Path, Path, int]
) -> None:
    from advertisex.runners.embedded import EmbeddedRunner
    from advertisex.runners.spark import SparkRunner

    embedded_dir, spark_dir, batch_max_bytes = landed
    embedded, on_spark = _open(embedded_dir, batch_max_bytes), _open(spark_dir, batch_max_bytes)
    expected = EmbeddedRunner(embedded.settings, embedded.lake, embedded.landing).process(now=NOW)
    runner = SparkRunner(on_spark.settings, on_spark.lake, on_spark.landing, session=spark)
    report = runner.process(now=NOW)

    assert len(report.batches) >= 2
    assert report.batches == expected.batches  # same batches, same ids
    for source, account in expected.accounts.items():
        assert report.accounts[source] == account, source
        assert report.accounts[source].balanced
    last = embedded.query(
        "select duplicates from ops.batches where source = 'impressions' "
        f"and batch_id = '{expected.batches[-1]}'"
    ).to_pylist()
    assert last and last[0]["duplicates"] >= 50
    assert expected.accounts["impressions"].filtered > 0
    assert sum(a.quarantined for a in expected.accounts.values()) > 0

    want, got = _tables(embedded), _tables(on_spark)
    # The marts were built (conversions are too rare at this size: see the next test).
    assert all(want[name] for name in MARTS if name != "marts.attributed_conversions")
    for name in TABLES:
        assert len(got[name]) == len(want[name]), name
        assert got[name] == want[name], name

    # The rows came from the executors' data files, registered by the driver.
    files = on_spark.lake.data_files("curated.impressions")
    assert files and all(Path(f).name.startswith(tuple(report.batches)) for f in files)
    # Exactly once: nothing is pending any more, a second run commits nothing.
    assert runner.process(now=NOW).batches == []
    assert _tables(on_spark)["ops.batches"] == want["ops.batches"]


def _conversions(ax: Any, path: Path) -> Path:
    """Late conversions (CSV) 10 minutes after some clicks and some impressions — at the
    demo's rates a few thousand events convert too rarely to attribute anything."""
    shown = ax.query(
        "select user_id, campaign_id, event_time from curated.impressions "
        "order by impression_id limit 15"
    ).to_pylist()
    clicked = ax.query(
        "select user_id, campaign_id, event_time from curated.clicks order by event_id limit 15"
    ).to_pylist()
    lines = [
        "event_id,timestamp,user_id,campaign_id,event_type,conversion_type,"
        "conversion_value,currency"
    ]
    for i, row in enumerate(shown + clicked):
        at = (row["event_time"] + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines.append(
            f"cnv-late-{i:04d},{at},{row['user_id']},{row['campaign_id']},conversion,purchase,"
            f"{10 + i}.25,USD"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_incremental_marts_on_spark_equal_the_embedded_ones_after_late_data(
    spark: Any, landed: tuple[Path, Path, int], tmp_path: Path
) -> None:
    """Late events over the same days: correlation and rollups of the slices they touch
    run on Spark and give the marts the embedded runner gives."""
    from advertisex.marts.iceberg import update_marts
    from advertisex.marts.spark import SparkKernels
    from advertisex.runners.embedded import EmbeddedRunner
    from advertisex.runners.spark import SparkRunner
    from advertisex.synth.generator import generate

    embedded_dir, spark_dir, _ = landed
    embedded = _open(embedded_dir, update_marts=False)
    on_spark = _open(spark_dir, update_marts=False)
    settings = embedded.settings.model_copy(
        update={
            "correlation": embedded.settings.correlation.model_copy(update={"update_marts": True})
        }
    )
    embedded_runner = EmbeddedRunner(embedded.settings, embedded.lake, embedded.landing)
    spark_runner = SparkRunner(on_spark.settings, on_spark.lake, on_spark.landing, session=spark)
    if not embedded.lake.read("marts.state").num_rows:  # run alone: the first test's part
        embedded_runner.process(now=NOW)
        spark_runner.process(now=NOW)
        update_marts(embedded.lake, settings)
        update_marts(on_spark.lake, settings, SparkKernels(spark, on_spark.lake))
    generate(tmp_path / "late", events=1500, seed=12, start=date(2026, 11, 10))
    late = [str(tmp_path / "late" / s) for s in ("impressions", "clicks", "bids")]
    embedded.ingest([*late, str(_conversions(embedded, tmp_path / "conversions.csv"))])
    shutil.copytree(embedded_dir / "landing", spark_dir / "landing", dirs_exist_ok=True)
    embedded_runner.process(now=NOW)
    spark_runner.process(now=NOW)

    expected = update_marts(embedded.lake, settings)
    done = update_marts(on_spark.lake, settings, SparkKernels(spark, on_spark.lake))
    assert expected is not None and done is not None
    assert (done.mode, expected.mode) == ("incremental", "incremental")
    assert done.clicks == expected.clicks > 0
    assert done.conversions == expected.conversions > 0
    attribution = "select attribution, count(*) n from marts.attributed_conversions group by 1"
    assert {r["attribution"] for r in embedded.query(attribution).to_pylist()} >= {"click", "view"}
    want, got = _tables(embedded), _tables(on_spark)
    for name in TABLES:
        assert got[name] == want[name], name


def test_stage_one_rows_wait_in_a_scratch_folder_that_goes_with_the_batch(
    spark: Any, tmp_path: Path
) -> None:
    """Stage 1 leaves each segment's standardized rows in the batch's scratch folder under
    the warehouse (stage 3 reads them there); the folder goes when the batch ends, even
    one that fails, and a crashed run's leftovers for the same batch go before it starts."""
    import advertisex
    from advertisex.runners.runner import Batch, batch_id_for
    from advertisex.runners.spark import Prepared, SparkRunner
    from advertisex.runners.spark_tasks import scratch_file

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    line = '{"impression_id":"i-%d","timestamp":"2026-11-11T10:00:00Z","ad_creative_id":"cr-1",'
    line += '"user_id":"u-1","website":"https://example.com/"}\n'
    for n in range(2):
        ax.landing.write_segment("impressions", (line % n).encode(), label=f"s{n}")
    seen: list[list[str]] = []

    class Failing(SparkRunner):
        def transform(self, batch: Batch, framed: Prepared) -> Any:
            files = [scratch_file(framed.scratch, i) for i in sorted(framed.records)]
            seen.append(sorted(Path(f.removeprefix("file://")).name for f in files))
            assert all(Path(f.removeprefix("file://")).is_file() for f in files)
            assert not stale.exists()
            raise RuntimeError("stage 3 failed")

    runner = Failing(ax.settings, ax.lake, ax.landing, session=spark)
    (segments,) = runner.plan(runner.pending())
    scratch = Path(runner.scratch(batch_id_for(segments)).removeprefix("file://"))
    stale = scratch / "segment-7.arrow"  # left by a run killed in this batch
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"torn")
    with pytest.raises(RuntimeError, match="stage 3 failed"):
        runner.process(now=NOW)
    assert seen == [["segment-0.arrow", "segment-1.arrow"]]
    assert not scratch.exists()
    assert ax.lake.read("curated.impressions").num_rows == 0  # nothing committed
    report = SparkRunner(ax.settings, ax.lake, ax.landing, session=spark).process(now=NOW)
    assert report.accounts["impressions"].accepted == 2
    assert list(scratch.parent.iterdir()) == []


def test_the_spark_runners_report_names_a_damaged_file_as_the_embedded_one_does(
    spark: Any, tmp_path: Path
) -> None:
    """A gzip'd landing file damaged past its first member: both runners keep its sound
    records, quarantine the rest as one entry, and their reports name the file and where
    (the CLI's "damaged …" line). The executors frame it, so they tell the driver."""
    from advertisex.runners.embedded import EmbeddedRunner
    from advertisex.runners.spark import SparkRunner
    from tests.hostile import damaged_gzip

    line = (
        b'{"timestamp":"2026-11-11T10:00:00Z","ad_creative_id":"c","user_id":"u%d","website":"w"}\n'
    )
    data, _ = damaged_gzip(
        b"".join(line % n for n in range(3)), b"".join(line % n for n in range(100, 400))
    )
    reports, landed = {}, {}
    for name, make in (("embedded", EmbeddedRunner), ("spark", SparkRunner)):
        ax = _open(tmp_path / name, update_marts=False)
        landed[name] = ax.landing.write_segment("impressions", data, label="damaged").name
        extra = {"session": spark} if name == "spark" else {}
        reports[name] = make(ax.settings, ax.lake, ax.landing, **extra).process(now=NOW)
    damaged = {name: [(d.segment.name, d.reason) for d in r.damaged] for name, r in reports.items()}
    assert damaged["spark"] == [(landed["spark"], damaged["embedded"][0][1])]
    assert damaged["embedded"] == [(landed["embedded"], damaged["embedded"][0][1])]
    assert damaged["spark"][0][1].startswith("gzip_damaged: the gzip member at byte")
    assert reports["spark"].accounts == reports["embedded"].accounts
