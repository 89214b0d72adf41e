"""Erasure finds the data files that hold a user by their manifest statistics first, and
opens only those (the rest of a large lake is never read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from advertisex.config import load_settings
from advertisex.lake import erasure
from advertisex.lake.tables import Lake
from advertisex.model.schemas import CLICKS

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _clicks(users: list[str], extras: str | None = None) -> pa.Table:
    rows = [
        {
            "event_id": f"e-{user}-{i}",
            "event_time": T0 + timedelta(minutes=i),
            "user_id": user,
            "campaign_id": "c1",
            "payload_hash": f"h-{user}-{i}",
            "extras": extras,
            "ingest_time": T0,
            "source_file": "f",
            "source_position": i,
            "batch_id": "b",
        }
        for i, user in enumerate(users)
    ]
    return pa.Table.from_pylist(rows, schema=CLICKS)


def test_only_files_whose_statistics_reach_the_user_are_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(load_settings(data_dir=tmp_path, correlation={"update_marts": False}))
    lake.commit_batch({"curated.clicks": _clicks(["a1", "a2"])}, [], {})  # bounds a1..a2
    lake.commit_batch({"curated.clicks": _clicks(["m1", "z9"])}, [], {})  # m1..z9: reaches x
    lake.commit_batch({"curated.clicks": _clicks(["b1"], extras='{"ref":"x"}')}, [], {})
    opened: list[str] = []
    hit_in = erasure._hit_in

    def spy(path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(path)
        return hit_in(path, *args, **kwargs)

    monkeypatch.setattr(erasure, "_hit_in", spy)
    found = erasure.plan(lake, "curated.clicks", ["x"])
    # The a-file is skipped unread; the m..z file may hold "x" (it does not); the b-file's
    # extras are text that may mention it (it does: that row goes).
    assert len(opened) == 2 and found.rows == 1 and len(found.files) == 1
    assert found.removed_rows().column("user_id").to_pylist() == ["b1"]
    opened.clear()
    assert erasure.plan(lake, "curated.clicks", ["a2"]).rows == 1
    assert len(opened) == 2  # the a-file, and the b-file for its text
    # Many ids (a month of requests): past the 200 values pyiceberg's In prunes by, the
    # files are told by the range the ids span — n00..n99 reaches the m..z file only.
    opened.clear()
    many = [f"n{k:03d}" for k in range(300)]
    assert erasure.plan(lake, "curated.clicks", many).rows == 0
    assert len(opened) == 2  # the m..z file, and the b-file for its text
    opened.clear()
    assert erasure.plan(lake, "curated.clicks", [*many, "z9"]).rows == 1


def test_the_rows_left_are_the_others_in_order_streamed_whatever_the_files_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file is rewritten a bounded slice of rows at a time (a compacted file is several
    GiB in memory): the rows left are the others in file order, and those that went are
    returned, wherever in the file they are and whether few, many or all go."""
    import pyarrow.parquet as pq

    from advertisex.lake import rewrite

    monkeypatch.setattr(rewrite, "STREAM_ROWS", 16)
    read: list[int] = []
    batches = pq.ParquetFile.iter_batches

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        for batch in batches(self, *args, **kwargs):
            read.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    schema = pa.schema([("n", pa.int64()), ("added_later", pa.string())])
    source = tmp_path / "data.parquet"
    pq.write_table(pa.table({"n": list(range(200))}), source, row_group_size=70)
    for gone in ([], [0], [5, 6, 199], list(range(0, 200, 3)), list(range(200))):
        read.clear()
        flags = pa.chunked_array([pa.array([n in gone for n in range(200)])])
        removed, written = rewrite.rewrite_without(str(source), flags, schema, "erased", None)
        assert read and max(read) <= 16 and sum(read) == 200
        assert removed.schema == schema and removed.column("n").to_pylist() == gone
        if len(gone) == 200:
            assert written is None
            continue
        assert written is not None
        left = pq.read_table(written)
        assert left.schema.names == schema.names
        assert left.column("n").to_pylist() == [n for n in range(200) if n not in gone]
        assert set(left.column("added_later").to_pylist()) == {None}
    assert len(list(tmp_path.glob("erased-*.parquet"))) == 4


def test_a_mention_is_found_in_the_texts_however_json_escaped_it(tmp_path: Path) -> None:
    lake = Lake(load_settings(data_dir=tmp_path, correlation={"update_marts": False}))
    lake.commit_batch({"curated.clicks": _clicks(["b1"], extras='{"ref":"jos\\u00e9"}')}, [], {})
    lake.commit_batch({"curated.clicks": _clicks(["b2"], extras='{"ref":"jose"}')}, [], {})
    found = erasure.plan(lake, "curated.clicks", ["jos\u00e9"])
    assert found.rows == 1 and found.by_user == {"jos\u00e9": 1}
