"""The Spark runner's executor functions, called directly on Arrow (no JVM needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from advertisex.config import load_settings
from advertisex.formats.decode import DECODERS
from advertisex.kernels.standardize import Rules
from advertisex.runners import spark_tasks as tasks
from advertisex.util.spark_arrow import (
    blob_batch,
    bucketed,
    remove_stale_scratch,
    write_scratch,
)


def _keys(folder: Path, rows: list[tuple[str, str, str, int, int]]) -> list[tuple[str, str]]:
    """Key rows as the key files a dedupe task reads: one per table, (table, path)."""
    files = []
    for table in dict.fromkeys(r[0] for r in rows):
        mine = [r[1:] for r in rows if r[0] == table]
        key, payload_hash, segment, row_number = zip(*mine, strict=True)
        keys = pa.table(
            [pa.array(key), pa.array(payload_hash), pa.array(segment), pa.array(row_number)],
            schema=tasks._KEYS,
        )
        path = str(folder / f"{table}-{len(list(folder.glob('*')))}.arrow")
        write_scratch(keys, path, None)
        files.append((table, path))
    return files


def _duplicates(*files: list[tuple[str, str]]) -> set[tuple[str, int, int, bool]]:
    """The duplicates a dedupe task finds among ``files`` (every file of its buckets)."""
    settings = load_settings()
    # No segments: no key here is committed with a version-1 hash, none is standardized again.
    prepared = tasks.PrepareJob(settings, Rules(now=datetime.now(UTC)), None, (), (), 1, "")
    job = tasks.DedupeJob(settings, (tuple(f for group in files for f in group),), prepared)
    found = list(tasks.dedupe(iter([_task(0)]), job))
    out = pa.Table.from_batches(found, schema=tasks._DUPLICATES)
    return {(r["tbl"], r["segment"], r["row_number"], r["conflict"]) for r in out.to_pylist()}


def test_dedupe_keeps_the_first_by_segment_and_row_whatever_the_arrival_order(tmp_path) -> None:
    t = "curated.impressions"
    # Shuffled on purpose: a task's files come in no particular order.
    rows = [(t, "a", "x", 2, 0), (t, "a", "y", 0, 5), (t, "a", "y", 0, 1), (t, "b", "z", 1, 0)]
    assert _duplicates(_keys(tmp_path, rows[:2]), _keys(tmp_path, rows[2:])) == {
        (t, 0, 5, False),  # same payload as the kept (0, 1): a retry
        (t, 2, 0, True),  # different payload: a conflict
    }


def test_dedupe_against_committed_keys_and_per_table(tmp_path) -> None:
    imp, bid = "curated.impressions", "curated.bid_requests"
    rows = [(imp, "a", "x", -1, -1), (imp, "a", "x", 0, 0), (bid, "a", "q", 0, 1)]
    assert _duplicates(_keys(tmp_path, rows)) == {(imp, 0, 0, False)}
    assert _duplicates() == set()


def exploding(data: bytes) -> pa.Table:
    """Module-level: decoder workers import it by name."""
    raise MemoryError("decoder blew up")


def test_prepare_reports_an_unreadable_segment_instead_of_failing(tmp_path, monkeypatch) -> None:
    settings = load_settings(data_dir=tmp_path)
    from advertisex.landing.zone import open_landing

    segment = open_landing(settings).write_segment("clicks", b"timestamp,user_id\n", label="bad")
    monkeypatch.setitem(DECODERS, ("clicks", "csv"), exploding)
    rules = Rules(now=datetime(2026, 1, 1, tzinfo=UTC))
    job = tasks.PrepareJob(settings, rules, None, (segment,) * 4, ((3,),), 4, str(tmp_path / "s"))
    out = pa.Table.from_batches(list(tasks.prepare(iter([_task(0)]), job))).to_pylist()
    assert [(r["kind"], r["segment"]) for r in out] == [("unreadable", 3)]
    assert "MemoryError: decoder blew up" in out[0]["reason"]


def _task(number: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"id": pa.array([number], pa.int64())})


def test_prepared_key_blobs_find_every_repeat_across_tasks_and_buckets(tmp_path) -> None:
    """Two tasks prepare a segment each; their key files, deduplicated bucket by bucket
    (as the dedupe tasks get them), find the repeats of the first segment's clicks in
    the second: every occurrence of a key is in one bucket, whichever task read it."""
    from advertisex.landing.zone import open_landing

    settings = load_settings(data_dir=tmp_path)
    zone = open_landing(settings)
    header = "event_id,timestamp,user_id,campaign_id,event_type\n"
    lines = [f"c{i},2026-01-01T00:00:{i % 60:02d}Z,u{i},cmp-1,click\n" for i in range(40)]
    first = zone.write_segment("clicks", (header + "".join(lines)).encode(), label="a")
    resent = [*lines[:10], lines[10].replace(",u10,", ",u99,")]  # 10 retries, 1 conflict
    second = zone.write_segment("clicks", (header + "".join(resent)).encode(), label="b")
    rules = Rules(now=datetime(2026, 1, 2, tzinfo=UTC))
    job = tasks.PrepareJob(
        settings, rules, None, (first, second), ((1,), (0,)), 8, str(tmp_path / "s")
    )
    out = pa.Table.from_batches(
        [b for n in (0, 1) for b in tasks.prepare(iter([_task(n)]), job)]
    ).to_pylist()
    assert sorted((r["segment"], r["records"]) for r in out if r["kind"] == "rows") == [
        (0, 40),
        (1, 11),
    ]
    keys = [r for r in out if r["kind"] == "keys"]
    assert {r["tbl"] for r in keys} == {"curated.clicks"}
    assert len({r["bucket"] for r in keys}) > 1  # the keys are spread over buckets
    assert {(r["low_us"], r["high_us"]) for r in keys} >= {(1767225600000000, 1767225639000000)}
    found: set[tuple[str, int, int, bool]] = set()
    for bucket in {r["bucket"] for r in keys}:
        found |= _duplicates([(r["tbl"], r["path"]) for r in keys if r["bucket"] == bucket])
    assert found == {("curated.clicks", 1, row, row == 10) for row in range(11)}


def test_mart_buckets_keep_every_key_whole_and_the_parts_add_up_to_the_whole() -> None:
    """Rows cut into buckets by user (nulls included) and reduced part by part give what
    the kernel gives on everything — the property Spark mart maintenance rests on."""
    from advertisex.marts import maintain
    from advertisex.marts import spark as mart_spark
    from advertisex.util.spark_arrow import from_ipc

    users = ["u1", "u2", None, "u3", "u1", "u4", None, "u2"]
    rows = pa.table({"user_id": users, "n": list(range(len(users)))})
    first = list(bucketed(rows, "user_id", 5))
    assert first == list(bucketed(rows, "user_id", 5))  # stable
    owner: dict[object, int] = {}
    seen = []
    for bucket, blob in first:
        part = from_ipc(blob)
        seen += part.column("n").to_pylist()
        for user in part.column("user_id").to_pylist():
            assert owner.setdefault(user, bucket) == bucket  # one bucket per key
    assert sorted(seen) == list(range(len(users)))

    def count_rows(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        return {"hourly": pa.table({"rows": [tables["x"].num_rows]})}

    blobs = [blob_batch(b, "x", blob) for b, blob in first]
    schemas = {"x": rows.schema}
    outputs = [
        from_ipc(batch.column("blob")[0].as_py())
        for half in (blobs[: len(blobs) // 2], blobs[len(blobs) // 2 :])
        for batch in mart_spark.reduce_part(iter(half), schemas=schemas, kernel=count_rows)
    ]
    assert sum(t.column("rows")[0].as_py() for t in outputs) == len(users)
    assert maintain.ORDER.keys() == maintain.OUTPUTS.keys()


def test_stale_scratch_folders_go_and_any_with_a_fresh_file_stays(tmp_path: Path) -> None:
    import os
    from datetime import timedelta

    now = datetime(2026, 12, 5, tzinfo=UTC)
    old = (now - timedelta(days=2)).timestamp()
    for batch, ages in {"a": (old, old), "b": (old, now.timestamp()), "c": ()}.items():
        folder = tmp_path / batch
        folder.mkdir()
        for k, at in enumerate(ages):
            (folder / f"{k}.arrow").write_bytes(b"rows")
            os.utime(folder / f"{k}.arrow", (at, at))
        os.utime(folder, (old, old))
    removed = remove_stale_scratch(str(tmp_path), None, timedelta(days=1), now)
    assert removed == ["a", "c"]  # b holds a file of now: its batch may still run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    assert remove_stale_scratch(str(tmp_path / "none"), None, timedelta(days=1), now) == []
