"""The batch's dedupe step (``runners.batch.BatchDedupe``) over a piece's rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from advertisex.runners import batch


def test_the_candidates_keys_are_picked_chunk_by_chunk_with_the_same_verdicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A piece's rows come in a chunk per segment: the candidates' key columns are picked
    by a filter, which keeps those chunks (a take joined every chunk first, then copied
    nearly all of it again); the verdicts are those of the rows in one chunk."""
    at = datetime(2026, 11, 10, tzinfo=UTC)
    ids = ["a", "b", "a", "c", "b", "d"]

    def segment(rows: slice) -> pa.Table:
        return pa.table(
            {
                "impression_id": ids[rows],
                "payload_hash": ["x1", "x2", "x1", "x3", "x9", "x4"][rows],
                "event_time": pa.array([at] * len(ids[rows]), pa.timestamp("us", tz="UTC")),
                "reasons": pa.array([[], [], [], ["bad"], [], []][rows], pa.list_(pa.string())),
            }
        )

    chunked = pa.concat_tables([segment(slice(0, 3)), segment(slice(3, 6))])
    seen_chunks: list[int] = []
    key_column = batch.key_column

    def spied(table_name: str, rows: pa.Table) -> pa.ChunkedArray:
        seen_chunks.append(rows.column("impression_id").num_chunks)
        return key_column(table_name, rows)

    def nobody(positions: np.ndarray) -> pa.ChunkedArray:
        raise AssertionError("no version-1 key here")

    whole = batch.BatchDedupe(lambda *_: None).verdicts(
        "impressions", chunked.combine_chunks(), nobody
    )
    monkeypatch.setattr(batch, "key_column", spied)
    pieces = batch.BatchDedupe(lambda *_: None).verdicts("impressions", chunked, nobody)
    assert seen_chunks[0] == 2  # the segments' chunks, not one joined copy
    repeated, count, conflicts = pieces["curated.impressions"]
    assert repeated.tolist() == [False, False, True, False, True, False]  # "c" is rejected
    assert (count, conflicts) == (2, 1)
    assert repeated.tolist() == whole["curated.impressions"][0].tolist()
