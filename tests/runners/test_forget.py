"""``forget`` erases a user: no byte of their id anywhere under the data directory, and
tables, marts and reports equal to a run that never saw them."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from advertisex import synth
from advertisex.util.timeutil import parse_date
from tests.table_snapshots import CURATED

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # two lakes processed, marts on

LINEAGE = ("ingest_time", "source_file", "source_position", "batch_id")
MARTS = [
    "marts.attributed_clicks",
    "marts.attributed_conversions",
    "marts.campaign_hourly",
    "marts.campaign_daily",
]


def _without(source: Path, target: Path, user: str) -> None:
    """A copy of the generated files without ``user``'s records (an independent filter)."""
    import fastavro

    for path in source.rglob("*"):
        if not path.is_file():
            continue
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".ndjson":
            lines = path.read_text().splitlines(keepends=True)
            out.write_text("".join(x for x in lines if json.loads(x).get("user_id") != user))
        elif path.suffix == ".csv" and path.parent.name == "clicks":
            rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
            user_at = rows[0].index("user_id")
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(
                [rows[0], *(r for r in rows[1:] if r[user_at] != user)]
            )
            out.write_text(buffer.getvalue())
        elif path.suffix == ".avro":
            with path.open("rb") as handle:
                reader = fastavro.reader(handle)
                schema, records = reader.writer_schema, [r for r in reader if r["user_id"] != user]
            with out.open("wb") as handle:
                fastavro.writer(handle, fastavro.parse_schema(schema), records, codec="deflate")
        else:
            shutil.copy(path, out)


def _tables(ax: Any) -> dict[str, list[Any]]:
    """Every curated table (without lineage: other files, other batches) and mart, sorted."""
    found = {}
    for name in [*CURATED, *MARTS]:
        rows = ax.lake.read(name)
        rows = rows.drop_columns([c for c in LINEAGE if c in rows.column_names])
        found[name] = sorted(map(repr, rows.to_pylist()))
    return found


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_forget_leaves_no_byte_and_equals_a_run_that_never_saw_the_user(tmp_path: Path) -> None:
    import advertisex

    source = tmp_path / "input"
    synth.generate(source, events=3000, seed=4, start=parse_date("2026-11-05"))
    seen = advertisex.open(data_dir=tmp_path / "seen")
    seen.ingest([str(source / s) for s in ("impressions", "clicks", "bids")])
    seen.process()
    user = (
        seen.query(
            "select user_id from curated.clicks group by 1 order by "
            "user_id in (select user_id from curated.conversions) desc, count(*) desc, 1 limit 1"
        )
        .column("user_id")[0]
        .as_py()
    )
    # Rejected records keep their raw text: one of theirs waits in the quarantine.
    broken = json.dumps({"timestamp": "not a time", "user_id": user, "website": "w"})
    seen.landing.write_segment("impressions", (broken + "\n").encode(), label="broken")
    seen.process()
    assert seen.query("select count(*) n from curated.quarantine").column("n")[0].as_py() > 0
    assert _files_holding(seen.settings.data_dir, user.encode())

    report = seen.forget([user])
    assert report.found == {user} and report.segments > 0
    assert report.rows["curated.impressions"] and report.rows["curated.quarantine"] == 1

    never = advertisex.open(data_dir=tmp_path / "never")
    _without(source, tmp_path / "input-without", user)
    never.ingest([str(tmp_path / "input-without" / s) for s in ("impressions", "clicks", "bids")])
    never.process()
    assert _tables(seen) == _tables(never)
    assert seen.report_campaigns().to_pylist() == never.report_campaigns().to_pylist()
    # Data pages, Parquet statistics, manifest bounds, landing segments, the catalog.
    assert _files_holding(seen.settings.data_dir, user.encode()) == []

    audit = seen.query('select user_hash, "table", rows_removed from ops.erasures').to_pylist()
    from advertisex.runners.forget import user_hash

    assert {a["user_hash"] for a in audit} == {user_hash(user)}
    assert {a["table"] for a in audit} >= {"landing", "curated.impressions", "curated.quarantine"}

    again = seen.forget([user])  # a second time: nothing left, nothing written
    assert again.nothing and again.segments == 0
    assert seen.query("select count(*) n from ops.erasures").column("n")[0].as_py() == len(audit)

    # A forgotten user who comes back is a new user: nothing remembers them as seen.
    seen.ingest([str(source / "impressions")])  # the same bytes as before: already landed
    assert seen.process().records_in == 0
    first = next(iter(sorted((source / "impressions").iterdir())))
    back = [x for x in first.read_text().splitlines() if json.loads(x)["user_id"] == user]
    seen.landing.write_segment("impressions", (back[0] + "\n").encode(), label="back")
    assert seen.process().accounts["impressions"].accepted == 1


def test_forget_reaches_archived_copies_and_time_travel(tmp_path: Path) -> None:
    """Rows retention moved to the archive, and rows only older snapshots still hold."""
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    import advertisex
    from advertisex.lake.upkeep import maintain

    archive = tmp_path / "archive"
    retention = {"days": {"curated.clicks": 8}, "landing_days": 8, "archive": str(archive)}
    ax = advertisex.open(
        data_dir=tmp_path / "data", retention=retention, correlation={"update_marts": False}
    )
    old = datetime(2026, 10, 1, tzinfo=UTC)
    clicks = "timestamp,user_id,campaign_id,event_type\n"
    clicks += "2026-10-01T00:00:00Z,gone-user,c,click\n2026-10-01T00:00:01Z,stay-user,c,click\n"
    ax.landing.write_segment("clicks", clicks.encode(), at=old)
    ax.process()
    maintain(ax.lake, ax.landing, now=datetime(2026, 11, 1, tzinfo=UTC))
    assert ax.lake.read("curated.clicks").num_rows == 0  # expired, and archived
    assert len(_files_holding(archive, b"gone-user")) == 2  # the segment, the Parquet file
    assert _files_holding(tmp_path / "data", b"gone-user")  # time travel still reaches it

    report = ax.forget(["gone-user"])
    assert report.found == {"gone-user"}
    assert report.rows["archive/landing"] == 1 and report.rows["archive/curated.clicks"] == 1
    assert report.rows["curated.clicks (time travel)"] == 1
    assert _files_holding(archive, b"gone-user") == []
    assert _files_holding(tmp_path / "data", b"gone-user") == []
    (kept,) = archive.rglob("*.parquet")
    assert pq.read_table(kept).column("user_id").to_pylist() == ["stay-user"]


def _archived(tmp_path: Path, users: list[str]) -> tuple[Any, Path]:
    """A lake whose retention archived a landed segment of one click per user, and the
    curated file of them (``retention.archive``), and that archive's folder."""
    from datetime import UTC, datetime

    import advertisex
    from advertisex.lake.upkeep import maintain

    archive = tmp_path / "archive"
    retention = {"days": {"curated.clicks": 8}, "landing_days": 8, "archive": str(archive)}
    ax = advertisex.open(
        data_dir=tmp_path / "data", retention=retention, correlation={"update_marts": False}
    )
    clicks = "timestamp,user_id,campaign_id,event_type\n" + "".join(
        f"2026-10-01T00:00:{n:02d}Z,{user},c,click\n" for n, user in enumerate(users)
    )
    ax.landing.write_segment("clicks", clicks.encode(), at=datetime(2026, 10, 1, tzinfo=UTC))
    ax.process()
    maintain(ax.lake, ax.landing, now=datetime(2026, 11, 1, tzinfo=UTC))
    return ax, archive


def test_an_archived_copy_is_replaced_whole_and_on_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archived segment or Parquet file that holds the user was truncated and written
    again in place, never fsync'd: a crash in between lost the other users' records of
    it, which the archive alone still had. Now the new bytes are written beside it,
    fsync'd and renamed over it, and its folder fsync'd, as the landing zone's rewrite
    does."""
    import os

    ax, archive = _archived(tmp_path, ["gone-user", "stay-user"])
    copies = [Path(p) for p in _files_holding(archive, b"gone-user")]
    assert len(copies) == 2  # the segment, the Parquet file
    events: list[tuple[str, ...]] = []
    fsync, replace = os.fsync, os.replace

    def watched_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def watched_replace(source: str, target: str) -> None:
        replace(source, target)
        events.append(("replace", str(source), str(target)))

    monkeypatch.setattr(os, "fsync", watched_fsync)
    monkeypatch.setattr(os, "replace", watched_replace)
    ax.forget(["gone-user"])
    monkeypatch.undo()
    assert _files_holding(archive, b"gone-user") == []
    for copy in copies:
        replaced = [e for e in events if e[0] == "replace" and e[2] == str(copy)]
        assert len(replaced) == 1, f"{copy} was written again in place"
        at = events.index(replaced[0])
        assert ("fsync", replaced[0][1]) in events[:at] and ("fsync", str(copy.parent)) in events[
            at:
        ]
    assert not [p for p in archive.rglob(".*") if p.is_file()]  # nothing left beside them


def test_a_killed_rewrites_copy_in_the_archive_goes_with_the_next_erasure(
    tmp_path: Path,
) -> None:
    """A process killed while replacing an archived file leaves its hidden copy beside it
    (``.NAME.rewrite``): other users' records that no later erasure looked at — a
    Parquet copy was not even listed. The next erasure deletes such copies, whoever it
    forgets."""
    ax, archive = _archived(tmp_path, ["u-1"])
    copies = [Path(p) for p in _files_holding(archive, b"u-1")]
    assert len(copies) == 2  # the segment, the Parquet file
    leftovers = [c.with_name(f".{c.name}.rewrite") for c in copies]
    for copy, leftover in zip(copies, leftovers, strict=True):
        leftover.write_bytes(copy.read_bytes()[: len(copy.read_bytes()) // 2])  # cut short
    ax.forget(["nobody-at-all"])
    assert not any(leftover.exists() for leftover in leftovers)
    assert all(copy.exists() for copy in copies)  # the copies themselves untouched


def test_forget_takes_the_users_records_and_never_a_value_that_only_looks_like_the_id(
    tmp_path: Path,
) -> None:
    """An id that is also a minute, a price, a device type or a country takes nothing but
    its user's records: erasing ``42`` took every record whose time had minute 42."""
    import hashlib

    import advertisex

    source = tmp_path / "input"
    synth.generate(source, events=1500, seed=5, start=parse_date("2026-11-05"))
    ax = advertisex.open(data_dir=tmp_path / "lake")
    ax.ingest([str(source / s) for s in ("impressions", "clicks", "bids")])
    at = "2026-11-05T10:42:42.042Z"
    records = [
        # The user 42, written as a number (the processor reads it as "42"), and in a
        # record it rejects (its raw text kept in the quarantine).
        {
            "impression_id": "i-42",
            "timestamp": at,
            "ad_creative_id": "cr-1",
            "user_id": 42,
            "website": "w",
            "device_type": "mobile",
            "country": "US",
            "cost": 0.5,
        },
        {"timestamp": "not a time", "user_id": "42", "website": "w"},
        # Another user's record naming them in a field no contract knows: it goes too.
        {
            "impression_id": "i-43",
            "timestamp": at,
            "ad_creative_id": "cr-1",
            "user_id": "u-x",
            "website": "w",
            "referred_by": "user 42",
        },
        # Another user's, holding 42 only in typed fields and as a number: it stays.
        {
            "impression_id": "i-44",
            "timestamp": at,
            "ad_creative_id": "cr-1",
            "user_id": "u-y",
            "website": "https://w.example/42",
            "cost": 42,
            "campaign_id": "42",
            "votes": 42,
        },
    ]
    text = "".join(json.dumps(r) + "\n" for r in records)
    ax.landing.write_segment("impressions", text.encode(), label="typed")
    # Two clicks the processor rejects (no such event type), kept as their rows' text
    # without the header: the user 42's, and another user's whose time has minute 42.
    clicks = (
        "timestamp,user_id,campaign_id,event_type\n"
        "2026-11-05T10:42:00Z,u-z,c1,wink\n2026-11-05T10:43:00Z,42,c1,wink\n"
    )
    ax.landing.write_segment("clicks", clicks.encode(), fmt="csv", label="typed")
    ax.process()
    count = "select count(*) n from curated.{}"

    def landing_digest() -> dict[str, str]:  # the words kept of its files aside
        root = ax.settings.data_dir / "landing"
        return {
            str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "words.db"
        }

    before = landing_digest()
    imps = ax.query(count.format("impressions")).column("n")[0].as_py()
    assert ax.forget(["00", "mobile", "US", "cr-1"]).nothing  # "cr-1" is a creative id
    assert landing_digest() == before
    assert ax.query(count.format("impressions")).column("n")[0].as_py() == imps

    report = ax.forget(["42"])
    assert report.rows["landing"] == 4
    assert report.rows["curated.impressions"] == 2 and report.rows["curated.quarantine"] == 2
    left = ax.query("select raw from curated.quarantine where raw like '%wink%'")
    assert left.column("raw").to_pylist() == ["2026-11-05T10:42:00Z,u-z,c1,wink"]
    kept = ax.query("select impression_id from curated.impressions where impression_id like 'i-4%'")
    assert kept.column("impression_id").to_pylist() == ["i-44"]
    assert ax.query(count.format("impressions")).column("n")[0].as_py() == imps - 2


def test_a_segment_landed_while_forget_runs_and_erased_from_the_tables_leaves_the_landing_zone_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``up`` the collector lands and the processor commits while ``forget`` runs. A
    segment landed after the landing pass and processed before the tables' erasure had its
    rows erased, but kept the user's records in the landing zone: the id still on the disk,
    and a ``replay`` of the day would bring back rows the erasure removed."""
    import advertisex
    from advertisex.runners import forget as forget_module

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    line = '{{"timestamp": "2026-11-05T10:00:0{n}Z", "user_id": "{u}", "ad_creative_id": "cr-1", "website": "w", "impression_id": "{u}-{n}"}}\n'
    seen = "".join(line.format(n=n, u=u) for n, u in enumerate(["gone-user", "stay-user"]))
    ax.landing.write_segment("impressions", seen.encode())
    ax.process()

    erase_tables, raced = forget_module._erase_tables, []

    def racing(*args: Any, **kwargs: Any) -> Any:
        if not raced:  # the collector and the processor, between the landing pass and this
            later = line.format(n=5, u="gone-user") + line.format(n=6, u="stay-user")
            raced.append(ax.landing.write_segment("impressions", later.encode()))
            assert ax.process().accounts["impressions"].accepted == 2
        return erase_tables(*args, **kwargs)

    monkeypatch.setattr(forget_module, "_erase_tables", racing)
    report = ax.forget(["gone-user"])
    assert raced and report.rows["curated.impressions"] == 2 and report.rows["landing"] == 2
    assert _files_holding(tmp_path / "data", b"gone-user") == []
    assert b"stay-user-6" in ax.landing.read(raced[0])  # the other user's record stays
    audit = ax.query("""select sum(rows_removed) n from ops.erasures where "table" = 'landing'""")
    assert audit.column("n")[0].as_py() == 2


def _one_user_pending(tmp_path: Path) -> Any:
    """A lake with one processed impression of ``stay-user`` and a segment pending that
    holds one of ``gone-user`` and another of ``stay-user``."""
    import advertisex

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    line = '{{"timestamp": "2026-11-05T10:00:0{n}Z", "user_id": "{u}", "ad_creative_id": "cr-1", "website": "w", "impression_id": "{u}-{n}"}}\n'
    ax.landing.write_segment("impressions", line.format(n=1, u="stay-user").encode())
    ax.process()
    later = line.format(n=2, u="gone-user") + line.format(n=3, u="stay-user")
    ax.landing.write_segment("impressions", later.encode())
    return ax


def test_a_batch_that_read_the_users_records_before_their_rewrite_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A processor's batch read a pending segment, then ``forget`` rewrote it without the
    user and looked at the tables, finding nothing (the batch had not committed), and said
    it was done; the batch then committed the user's rows, read before the rewrite. Now
    ``forget`` waits, while a processor runs, for the segments it rewrote pending, and
    looks at the tables again once they are processed."""
    import threading

    import advertisex
    from advertisex.runners import forget as forget_module

    ax = _one_user_pending(tmp_path)

    read, rewritten = threading.Event(), threading.Event()
    write_files = ax.lake.write_files

    def after_the_rewrite(*args: Any, **kwargs: Any) -> Any:
        read.set()  # the batch read the segment before forget rewrote it
        assert rewritten.wait(60)
        return write_files(*args, **kwargs)

    monkeypatch.setattr(ax.lake, "write_files", after_the_rewrite)
    scrub_landing = forget_module.scrub_landing

    def scrubbing(*args: Any, **kwargs: Any) -> Any:
        removed = scrub_landing(*args, **kwargs)
        rewritten.set()
        return removed

    monkeypatch.setattr(forget_module, "scrub_landing", scrubbing)
    processing = threading.Thread(target=ax.process)  # holds the processor lock meanwhile
    processing.start()
    assert read.wait(60)
    other = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    report = other.forget(["gone-user"])
    processing.join(60)
    assert report.rows["landing"] == 1 and report.rows["curated.impressions"] == 1
    assert report.unsettled == 0
    users = ax.query("select user_id from curated.impressions").column("user_id").to_pylist()
    assert sorted(users) == ["stay-user", "stay-user"]
    assert _files_holding(tmp_path / "data", b"gone-user") == []


def test_the_files_of_a_batch_whose_commit_failed_lose_the_user_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that failed at its commit leaves its data files unreferenced until
    maintenance deletes them, a day later (``maintenance.orphan_min_age_minutes``). When
    they hold a user forgotten meanwhile, ``forget`` found nothing in the tables, left them,
    and the id stayed on the disk. No processor can still commit them: they go now."""
    import advertisex
    from advertisex.errors import StorageError
    from advertisex.lake.tables import Lake
    from advertisex.runners import forget as forget_module
    from advertisex.runners.lock import processor_lock

    ax = _one_user_pending(tmp_path)

    def failing(*args: Any, **kwargs: Any) -> None:
        raise StorageError("the catalog went away")

    with monkeypatch.context() as patched:
        patched.setattr(Lake, "commit_files", failing)
        with pytest.raises(StorageError):
            ax.process()
    warehouse = tmp_path / "data" / "warehouse"
    strays = _files_holding(warehouse, b"gone-user")  # the failed batches' files
    assert len(strays) > 1

    # Under a processor running now, a file written after it started and after the erasure
    # began may be a batch in flight's, which its commit will name: kept for the next one.
    in_flight = strays[0]
    later = time.time() + 3600
    os.utime(in_flight, (later, later))
    monkeypatch.setattr(forget_module, "WAIT_FOR_BATCHES", 0.5)  # for the rewritten segment
    time.sleep(1.1)  # the lock says since when to the second: the failed batches' before it
    with processor_lock(tmp_path / "data"):
        report = advertisex.open(data_dir=tmp_path / "data").forget(["gone-user"])
    assert report.found == {"gone-user"} and report.files_deleted == len(strays) - 1
    assert _files_holding(tmp_path / "data", b"gone-user") == [in_flight]
    os.utime(in_flight)  # its batch failed too
    again = advertisex.open(data_dir=tmp_path / "data").forget(["gone-user"])
    assert again.files_deleted == 1  # no processor now: nothing can commit it
    assert _files_holding(tmp_path / "data", b"gone-user") == []
    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    ax.process()  # the rewritten segment: the other user's record, once
    users = ax.query("select user_id from curated.impressions").column("user_id").to_pylist()
    assert sorted(users) == ["stay-user", "stay-user"]
