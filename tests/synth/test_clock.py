"""Timestamps as the sources write them: each kind shows the same instant."""

from __future__ import annotations

import polars as pl

from advertisex.synth.clock import (
    TS_EPOCH_MS,
    TS_NAIVE,
    TS_PLUS_TWO,
    TS_UTC_OFFSET,
    TS_Z,
    iso_by_kind,
)


def test_each_timestamp_kind_renders_the_same_instant() -> None:
    ms = 1_795_698_245_123  # 2026-11-26T13:04:05.123Z
    kinds = [TS_Z, TS_UTC_OFFSET, TS_PLUS_TWO, TS_NAIVE, TS_EPOCH_MS]
    frame = pl.DataFrame({"ms": [ms] * len(kinds), "kind": kinds})
    text = frame.select(iso_by_kind(pl.col("ms"), pl.col("kind"))).to_series().to_list()
    assert text == [
        "2026-11-26T13:04:05.123Z",
        "2026-11-26T13:04:05.123+00:00",
        "2026-11-26T15:04:05.123+02:00",
        "2026-11-26T13:04:05.123",
        None,
    ]
