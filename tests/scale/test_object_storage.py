"""Landing zone and warehouse on S3-compatible storage, through PyArrow's real S3 client.

moto's standalone server (its own process on 127.0.0.1) plays S3; the platform only
gets an endpoint override and credentials from its configuration, as it would for
MinIO or Ceph. Nothing lands or is written on the local disk except the SQLite
catalog: segments, the content-hash index, table metadata and data files are objects.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "advertisex-test"
KEYS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> Any:
    """A boto3 client (test setup and inspection only) once the bucket exists."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    return client


def _keys(client: Any, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _s3_scale(s3_endpoint: str, landing: str) -> dict[str, Any]:
    """The ``scale`` settings of a landing zone at ``s3://<bucket>/<landing>`` on moto."""
    return {
        "landing": f"s3://{BUCKET}/{landing}",
        "s3_endpoint": s3_endpoint,
        "s3_region": "us-east-1",
        **KEYS,
    }


def test_ingest_process_query_with_landing_and_warehouse_on_s3(
    tmp_path: Path, s3_endpoint: str, bucket: Any
) -> None:
    import advertisex
    from advertisex.synth.generator import generate

    client = bucket
    generate(tmp_path / "input", events=3000, seed=4, start=date(2026, 11, 10))
    ax = advertisex.open(
        data_dir=tmp_path / "data",
        lake={"warehouse": f"s3://{BUCKET}/warehouse"},
        scale=_s3_scale(s3_endpoint, "landing"),
    )
    inputs = [str(tmp_path / "input" / s) for s in ("impressions", "clicks")]
    landed = ax.ingest(inputs)
    assert "landed" in {r.status for r in landed} <= {"landed", "already"}
    assert {r.status for r in ax.ingest(inputs)} == {"already"}  # the index is on S3 too
    segments = _keys(client, "landing/impressions/")
    assert len(segments) == sum(r.source == "impressions" and r.status == "landed" for r in landed)
    assert not (tmp_path / "data" / "landing").exists()

    # Analysts see what landed before it is processed: raw.* views read the bucket.
    raw = "select count(*) n, min(filename) f from raw.impressions"
    [pending] = ax.query(raw).to_pylist()
    assert pending["n"] > 0 and pending["f"].startswith(f"s3://{BUCKET}/landing/impressions/")

    report = ax.process()
    accepted = report.accounts["impressions"].accepted
    assert pending["n"] == report.accounts["impressions"].records_in
    assert ax.query(raw).to_pylist() == [{"n": 0, "f": None}]  # processed: no longer raw
    assert accepted > 0 and all(a.balanced for a in report.accounts.values())
    files = ax.lake.data_files("curated.impressions")
    assert files and all(f.startswith(f"s3://{BUCKET}/warehouse/") for f in files)
    assert {f.removeprefix(f"s3://{BUCKET}/") for f in files} <= set(_keys(client, "warehouse/"))
    assert not (tmp_path / "data" / "warehouse").exists()

    count = "select count(*) n from curated.impressions"
    assert ax.query(count).to_pylist() == [{"n": accepted}]
    # DuckDB scans the Parquet objects in place (through PyArrow's S3 client), nothing is
    # copied into memory first.
    from advertisex.lake.query import QueryEngine

    views = (
        QueryEngine(ax.lake, ("curated.impressions",))
        .con.sql("select sql from duckdb_views() where view_name = 'impressions'")
        .fetchall()
    )
    assert f"read_parquet(list_value('s3://{BUCKET}/warehouse/" in views[0][0]
    assert advertisex.open(**_same(ax)).query(count).to_pylist() == [{"n": accepted}]
    assert ax.process().batches == []  # the checkpoint holds: nothing pending

    # A later batch lands on top (the marts catch up incrementally from the new files).
    ax.ingest([str(tmp_path / "input" / "bids")])
    [raw_bids] = ax.query("select count(*) n from raw.bid_requests").to_pylist()  # Avro
    later = ax.process()
    assert raw_bids["n"] == later.accounts["bids"].records_in > 0
    assert later.accounts["bids"].accepted > 0
    assert ax.query("select count(*) n from curated.bid_requests").to_pylist() == [
        {"n": later.accounts["bids"].accepted}
    ]

    # The monitor reads ops.batches, the quarantine and the curated tables in the bucket
    # (through PyArrow's client: DuckDB's httpfs is a download this machine cannot make),
    # two hours on, when this hour is complete and aggregated.
    from datetime import timedelta

    import pyarrow.compute as pc

    from advertisex.monitor.gather import Gatherer
    from advertisex.util.timeutil import utcnow

    later_on = utcnow() + timedelta(hours=2)
    seen = Gatherer(ax.settings, ax.lake, lambda: later_on).observe()
    batches = seen.batches.filter(pc.equal(seen.batches.column("source"), "impressions"))
    assert pc.sum(batches.column("accepted")).as_py() == accepted
    rows = seen.tables.filter(pc.equal(seen.tables.column("table"), "curated.impressions"))
    assert pc.sum(rows.column("rows")).as_py() == accepted
    assert seen.set_aside.num_rows == 0


def test_spark_submit_on_s3(tmp_path: Path, s3_endpoint: str, bucket: Any) -> None:
    """The processor as a Spark application (spark-submit, configured by environment): its
    executors read segments from the bucket and write the tables' data files into it."""
    import json
    import shutil
    import subprocess
    import sys

    pytest.importorskip("pyspark", reason="PySpark is not installed (pip install -e '.[spark]')")
    submit = Path(sys.executable).with_name("spark-submit")
    if shutil.which("java") is None or not submit.exists():
        pytest.skip("no Java runtime (apt-get install openjdk-17-jre-headless) or spark-submit")
    import advertisex
    import advertisex.cli.spark_submit as application
    from advertisex.synth.generator import generate

    generate(tmp_path / "input", events=1500, seed=9, start=date(2026, 11, 10))
    (tmp_path / "empty.toml").touch()  # a config file naming nothing
    env = {
        **os.environ,
        "ADVERTISEX_CONFIG": str(tmp_path / "empty.toml"),
        "ADVERTISEX_DATA_DIR": str(tmp_path / "data"),
        "ADVERTISEX_LAKE__WAREHOUSE": f"s3://{BUCKET}/spark-warehouse",
        "ADVERTISEX_SCALE__LANDING": f"s3://{BUCKET}/spark-landing",
        "ADVERTISEX_SCALE__S3_ENDPOINT": s3_endpoint,
        "ADVERTISEX_SCALE__S3_REGION": "us-east-1",
        "ADVERTISEX_SCALE__S3_ACCESS_KEY_ID": "testing",
        "ADVERTISEX_SCALE__S3_SECRET_ACCESS_KEY": "testing",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    inputs = [str(tmp_path / "input" / s) for s in ("impressions", "bids")]
    cli = [sys.executable, "-m", "advertisex.cli.app"]
    subprocess.run(
        [*cli, "ingest", *inputs, "-f", "json"], env=env, check=True, capture_output=True
    )
    done = subprocess.run(
        [str(submit), "--master", "local[2]", application.__file__],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    bids = report["tables"]["curated.bid_requests"]
    assert bids > 0 and all(s["balanced"] for s in report["sources"])

    ax = advertisex.open(
        data_dir=tmp_path / "data",
        lake={"warehouse": f"s3://{BUCKET}/spark-warehouse"},
        scale={"s3_endpoint": s3_endpoint, "s3_region": "us-east-1", **KEYS},
    )
    files = ax.lake.data_files("curated.bid_requests")
    assert files and all(f.startswith(f"s3://{BUCKET}/spark-warehouse/") for f in files)
    assert {f.removeprefix(f"s3://{BUCKET}/") for f in files} <= set(
        _keys(bucket, "spark-warehouse/")
    )
    # What the stages handed each other (scratch files in the bucket) went with the batch;
    # only the scratch root's folder marker (which PyArrow keeps for a parent) is left.
    assert _keys(bucket, "spark-warehouse/_spark_scratch/") == ["spark-warehouse/_spark_scratch/"]
    assert ax.query("select count(*) n from curated.bid_requests").to_pylist() == [{"n": bids}]


def _same(ax: Any) -> dict[str, Any]:
    """Open arguments for a second platform on the same catalog, landing and warehouse."""
    return {
        "data_dir": ax.settings.data_dir,
        "lake": ax.settings.lake.model_dump(),
        "scale": {
            **ax.settings.scale.model_dump(exclude={"s3_access_key_id", "s3_secret_access_key"}),
            **KEYS,
        },
    }


def _landing_on_s3(tmp_path: Path, s3_endpoint: str, prefix: str) -> Any:
    """A platform whose landing zone is ``s3://<bucket>/<prefix>`` (tables stay local).

    The monitor looks back one day, not eight: each of this test's eight full reads lists
    the window again (a LIST request ≈ 30 ms from moto). Its segments land in the
    current hour; a day still holds hours the monitor takes as final and hours it follows."""
    import advertisex

    return advertisex.open(
        data_dir=tmp_path / "data",
        scale=_s3_scale(s3_endpoint, prefix),
        monitor={"lookback_days": 1},
    )


def test_the_monitor_sees_pending_segments_on_object_storage(
    tmp_path: Path, s3_endpoint: str, bucket: Any
) -> None:
    import pyarrow.compute as pc

    from advertisex.monitor.gather import Gatherer

    ax = _landing_on_s3(tmp_path, s3_endpoint, "monitored")
    line = (
        b'{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'
    )
    for n in range(3):
        ax.landing.write_segment("impressions", line, label=f"s{n}")
    following = Gatherer(ax.settings, ax.lake)  # reads the open hour once, then increments

    def pending(source: str) -> int:
        seen = following.observe().arrivals
        arrivals = Gatherer(ax.settings, ax.lake).observe().arrivals
        assert seen.sort_by([("source", "ascending"), ("bucket", "ascending")]).equals(
            arrivals.sort_by([("source", "ascending"), ("bucket", "ascending")])
        )  # the incremental view equals a full listing
        mine = arrivals.filter(pc.equal(arrivals.column("source"), source))
        return int(pc.sum(mine.column("pending")).as_py() or 0)

    assert pending("impressions") == 3  # listed on the bucket, not in a local folder
    late = ax.landing.write_segment("impressions", line * 2, label="s3")
    assert pending("impressions") == 4  # only the new object is looked up
    assert ax.landing.sizes([late.name, "impressions/none"]) == {late.name: len(line) * 2}
    ax.process()
    assert pending("impressions") == 0  # committed: the lake's checkpoint rows say so
    ax.landing.write_segment("impressions", line, label="s4")
    assert pending("impressions") == 1


def test_the_monitor_lists_each_day_of_a_bucket_once_not_each_hour(
    tmp_path: Path, s3_endpoint: str, bucket: Any, s3_lists: Any
) -> None:
    """A look over two days of hours lists each source's days (a request per day),
    not each hour (a request per hour: 147 for the first look, 51 for every later one
    while the processor is behind); and what a day's listing says of each hour is what
    listing the hour says."""
    from datetime import UTC, datetime, timedelta

    import advertisex
    from advertisex.monitor.gather import SOURCES, Gatherer
    from advertisex.monitor.model import HOUR

    ax = advertisex.open(
        data_dir=tmp_path / "data",
        scale=_s3_scale(s3_endpoint, "daily"),
        monitor={"lookback_days": 2},
    )
    now = datetime(2026, 11, 10, 12, 50, tzinfo=UTC)  # days long closed: listed whole
    since = now.replace(minute=0) - timedelta(days=2)
    hours = [since + n * HOUR for n in range(49)]
    line = b'{"timestamp":"2026-11-10T00:00:00Z","ad_creative_id":"c","user_id":"u",'
    line += b'"website":"w"}\n'
    for n, hour in enumerate(hours):  # a backlog: the processor is down
        ax.landing.write_segment("impressions", line, label=f"h{n}", at=hour + timedelta(minutes=7))
    clock = [now]
    gatherer = Gatherer(ax.settings, ax.lake, lambda: clock[0])

    before = s3_lists()
    first = gatherer.observe(hourly=False).arrivals
    assert s3_lists() - before == 3 * len(SOURCES)  # 3 days (half, whole, half) of 3 sources
    assert first.column("pending").to_pylist().count(1) == 49  # one pending an hour
    clock[0] += timedelta(minutes=1)
    before = s3_lists()
    second = gatherer.observe(hourly=False).arrivals
    assert s3_lists() - before == 3 + 2  # impressions' 3 days; the open hour of the others
    order = [("source", "ascending"), ("bucket", "ascending")]
    assert second.sort_by(order).equals(first.sort_by(order))

    by_day = dict(ax.landing.listings("impressions", hours))
    assert by_day == {hour: ax.landing.listing("impressions", hour) for hour in hours}
    assert all(len(listed) == 1 for listed in by_day.values())


def test_the_lake_files_check_lists_a_large_table_not_a_head_per_file(
    s3_endpoint: str, bucket: Any, s3_lists: Any
) -> None:
    """The monitor looks at every current data file's size each minute: a table's files
    in a bucket are one paged listing, not a HEAD request each (thousands a minute on a
    lake of a year); a missing or cut file is found as before, a small table's looked up
    one by one."""
    from advertisex.config import ScaleSettings
    from advertisex.lake.damage import LIST_FROM, damaged_among

    scale = ScaleSettings(s3_endpoint=s3_endpoint, s3_region="us-east-1", **KEYS)
    root = f"s3://{BUCKET}/looked/curated/impressions/data"
    files = []
    for n in range(40):
        key = f"looked/curated/impressions/data/day={n % 3}/f{n:03d}.parquet"
        bucket.put_object(Bucket=BUCKET, Key=key, Body=b"x" * (n + 1))
        files.append(("curated.impressions", f"s3://{BUCKET}/{key}", n + 1))
    files[5] = (files[5][0], files[5][1], 999)  # cut short, or written over
    files.append(("curated.impressions", f"{root}/day=0/gone.parquet", 10))
    small = [("ops.batches", f"s3://{BUCKET}/{files[0][1].split('/', 3)[3]}", 1)]
    assert len(small) < LIST_FROM

    heads, lists = s3_lists('"HEAD '), s3_lists()
    damaged = damaged_among(files + small, scale)
    assert {(d.url.rsplit("/", 1)[-1], d.problem) for d in damaged} == {
        ("f005.parquet", "6 bytes where the table recorded 999"),
        ("gone.parquet", "missing"),
    }
    assert s3_lists('"HEAD ') - heads == len(small)  # was a HEAD per file
    assert s3_lists() - lists == 1


def test_landing_retention_archives_segments_from_the_bucket(
    tmp_path: Path, s3_endpoint: str, bucket: Any
) -> None:
    # A segment is copied from its object as a stream (LandingZone.location), then deleted.
    from datetime import UTC, datetime, timedelta

    import advertisex
    from advertisex.lake.catalog import SegmentDone
    from advertisex.lake.upkeep import maintain

    ax = advertisex.open(
        data_dir=tmp_path / "data",
        retention={"landing_days": 10, "archive": str(tmp_path / "archive")},
        scale=_s3_scale(s3_endpoint, "retired"),
    )
    now = datetime(2026, 11, 12, 12, tzinfo=UTC)
    old = ax.landing.write_segment("clicks", b"a\n" * 100_000, at=now - timedelta(days=20))
    kept = ax.landing.write_segment("clicks", b"b\n", at=now - timedelta(days=2))
    marks = [SegmentDone(s.name, "clicks", "b", 1, 2, "t") for s in (old, kept)]
    ax.lake.commit_batch({}, marks, {})

    maintain(ax.lake, ax.landing, now=now)
    assert (tmp_path / "archive" / "landing" / old.name).read_bytes() == b"a\n" * 100_000
    # Nor is the emptied hour or day left as a folder marker (PyArrow puts one back after
    # every delete): the zone held that day for ever, and the ledger never folded past it.
    assert _keys(bucket, "retired/clicks/") == ["retired/clicks/", f"retired/{kept.name}"]
    assert ax.landing.lowest_name("clicks") == kept.name.rsplit("/", 2)[0] + "/"
    assert ax.landing.held_ranges("clicks") == [(kept.name.rsplit("/", 2)[0] + "/", "clicks0")]


def test_forget_skips_objects_of_the_bucket_by_their_kept_words(
    tmp_path: Path, s3_endpoint: str, bucket: Any, monkeypatch: Any
) -> None:
    """A landing zone and an archive in a bucket: an erasure keeps the words of each object
    under its ETag (S3's HEAD), and the next reads only the objects they do not rule out,
    and an object put again (the same size, other bytes)."""
    import advertisex
    from advertisex.formats.scrub import Forgotten
    from advertisex.landing.zone import ObjectStoreLandingZone
    from advertisex.runners import forget

    ax = advertisex.open(
        data_dir=tmp_path / "data",
        retention={"archive": f"s3://{BUCKET}/words-archive"},
        scale=_s3_scale(s3_endpoint, "words-landing"),
    )
    name = "impressions/2026-11-10/00/20261110T000000000000Z-a.ndjson"
    for prefix in ("words-landing", "words-archive/landing"):
        bucket.put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=b'{"user_id":"u1"}\n')
    read: list[str] = []
    for kind in (ObjectStoreLandingZone, forget._Archive):
        reading = kind.read
        monkeypatch.setattr(
            kind, "read", lambda self, s, reading=reading: read.append(s.name) or reading(self, s)
        )

    def erase(user: str) -> int:
        read.clear()
        report = forget.ForgetReport("e", 1)
        forget.scrub_landing(ax.landing, Forgotten([user]), report, None)
        forget.scrub_archived_segments(ax.lake.settings, Forgotten([user]), report)
        return len(read)

    assert erase("nobody") == 2  # read, and their words kept
    assert erase("nobody-else") == 0  # ruled out by them
    bucket.put_object(Bucket=BUCKET, Key=f"words-landing/{name}", Body=b'{"user_id":"u2"}\n')
    assert erase("u2") == 1  # put again: read, and the record erased
    assert bucket.get_object(Bucket=BUCKET, Key=f"words-landing/{name}")["Body"].read() == b""
    assert erase("u3") == 1  # rewritten by the erasure: read again next time
    assert erase("u4") == 0
