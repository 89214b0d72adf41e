"""The Spark runner's executor functions, called directly on Arrow (no JVM needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from advertisex.config import load_settings
from advertisex.formats.decode import DECODERS
from advertisex.kernels.standardize import Rules
from advertisex.runners import spark_tasks as tasks


def _keys(rows: list[tuple[str, str, str, int, int]]) -> pa.RecordBatch:
    tbl, key, payload_hash, segment, row_number = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(tbl),
            pa.array(key),
            pa.array(payload_hash),
            pa.array(segment, pa.int32()),
            pa.array(row_number, pa.int64()),
        ],
        schema=tasks._KEYS,
    )


def _duplicates(*batches: pa.RecordBatch) -> set[tuple[str, int, int, bool]]:
    out = pa.Table.from_batches(list(tasks.dedupe(iter(batches))), schema=tasks._DUPLICATES)
    return {(r["tbl"], r["segment"], r["row_number"], r["conflict"]) for r in out.to_pylist()}


def test_dedupe_keeps_the_first_by_segment_and_row_whatever_the_arrival_order() -> None:
    t = "curated.impressions"
    # Shuffled on purpose: a partition's batches come in no particular order.
    rows = [(t, "a", "x", 2, 0), (t, "a", "y", 0, 5), (t, "a", "y", 0, 1), (t, "b", "z", 1, 0)]
    assert _duplicates(_keys(rows[:2]), _keys(rows[2:])) == {
        (t, 0, 5, False),  # same payload as the kept (0, 1): a retry
        (t, 2, 0, True),  # different payload: a conflict
    }


def test_dedupe_against_committed_keys_and_per_table() -> None:
    imp, bid = "curated.impressions", "curated.bid_requests"
    rows = [(imp, "a", "x", -1, -1), (imp, "a", "x", 0, 0), (bid, "a", "q", 0, 1)]
    assert _duplicates(_keys(rows)) == {(imp, 0, 0, False)}
    assert _duplicates() == set()


def exploding(data: bytes) -> pa.Table:
    """Module-level: decoder workers import it by name."""
    raise MemoryError("decoder blew up")


def test_prepare_reports_an_unreadable_segment_instead_of_failing(tmp_path, monkeypatch) -> None:
    settings = load_settings(data_dir=tmp_path)
    from advertisex.landing.zone import open_landing

    segment = open_landing(settings).write_segment("clicks", b"timestamp,user_id\n", label="bad")
    monkeypatch.setitem(DECODERS, ("clicks", "csv"), exploding)
    listing = pa.RecordBatch.from_pylist(
        [{"segment": 3, "source": "clicks", "name": segment.name, "size": segment.size}]
    )
    job = tasks.PrepareJob(settings, Rules(now=datetime(2026, 1, 1, tzinfo=UTC)), None)
    out = pa.Table.from_batches(list(tasks.prepare(iter([listing]), job))).to_pylist()
    assert [(r["kind"], r["segment"]) for r in out] == [("unreadable", 3)]
    assert "MemoryError: decoder blew up" in out[0]["reason"]


def test_mart_buckets_keep_every_key_whole_and_the_parts_add_up_to_the_whole() -> None:
    """Rows cut into buckets by user (nulls included) and reduced part by part give what
    the kernel gives on everything — the property Spark mart maintenance rests on."""
    from advertisex.marts import maintain
    from advertisex.marts import spark as mart_spark
    from advertisex.util.spark_arrow import from_ipc

    users = ["u1", "u2", None, "u3", "u1", "u4", None, "u2"]
    rows = pa.table({"user_id": users, "n": list(range(len(users)))})
    first = list(mart_spark.bucketed(rows, "user_id", 5))
    assert first == list(mart_spark.bucketed(rows, "user_id", 5))  # stable
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

    blobs = [mart_spark._blob_batch(b, "x", blob) for b, blob in first]
    schemas = {"x": rows.schema}
    outputs = [
        from_ipc(batch.column("blob")[0].as_py())
        for half in (blobs[: len(blobs) // 2], blobs[len(blobs) // 2 :])
        for batch in mart_spark.reduce_part(iter(half), schemas=schemas, kernel=count_rows)
    ]
    assert sum(t.column("rows")[0].as_py() for t in outputs) == len(users)
    assert maintain.ORDER.keys() == mart_spark.OUTPUTS.keys()
