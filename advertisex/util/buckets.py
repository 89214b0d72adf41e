"""Rows cut into hash buckets of a key (the same key lands in the same bucket in every
process), and parts of rows joined into bigger ones.

What lets a step whose rules only compare rows sharing a key (every event of a user, every
occurrence of an auction) run one bucket at a time — on Spark executors
(``advertisex.util.spark_arrow``) or here, a bucket after another (``advertisex.marts.local``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa


def bucket_numbers(keys: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """The bucket (0 … ``buckets`` - 1) of each key: Polars' 64-bit hash of the key's value
    (seed 0, as the dedupe's key index hashes keys; a dictionary column as its values)
    modulo ``buckets``; null keys share a bucket too. The same key lands in the same bucket
    in every process running the same package versions (Spark's executors run the
    driver's wheel), which is all partitioning needs; it is never stored. (DuckDB's hash
    of each distinct key, found with Arrow's unique and index_in, cost 1.0-1.6 CPU-s for
    1.1 M impression keys; this 0.14-0.23 s.)

    >>> numbers = bucket_numbers(pa.array(["a", "b", "a", None]), 4)
    >>> bool(numbers[0] == numbers[2]) and all(0 <= n < 4 for n in numbers)
    True
    """
    import polars as pl

    if pa.types.is_dictionary(keys.type):
        keys = keys.cast(keys.type.value_type)
    series = pl.from_arrow(keys)
    assert isinstance(series, pl.Series)
    if len(series) == 0:
        return np.zeros(0, dtype=np.int64)
    return (series.hash(seed=0).to_numpy() % np.uint64(buckets)).astype(np.int64)


def split(rows: pa.Table, key: str, buckets: int) -> Iterator[tuple[int, pa.Table]]:
    """(bucket, its rows) for every bucket of :func:`bucket_numbers` that has rows, in
    bucket order; the rows of a bucket keep their order."""
    if rows.num_rows == 0:
        return
    bucket = bucket_numbers(rows.column(key), buckets)
    order = np.argsort(bucket, kind="stable")
    counts = np.bincount(bucket, minlength=buckets)
    grouped = rows.take(pa.array(order))
    start = 0
    for number, count in enumerate(counts):
        if count:
            yield number, grouped.slice(start, int(count))
        start += int(count)


def regrouped(parts: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """``parts`` joined into tables of at most ``rows`` rows, or one part (never cut).

    >>> t = pa.table({"x": [1, 2, 3]})
    >>> [p.num_rows for p in regrouped(iter([t, t, t]), 6)]
    [6, 3]
    """
    held: list[pa.Table] = []
    count = 0
    for part in parts:
        if held and count + part.num_rows > rows:
            yield pa.concat_tables(held)
            held, count = [], 0
        held.append(part)
        count += part.num_rows
    if held:
        yield pa.concat_tables(held)
