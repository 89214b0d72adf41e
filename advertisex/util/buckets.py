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
import pyarrow.compute as pc

from advertisex.util import engine


def bucket_numbers(keys: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """The bucket (0 … ``buckets`` - 1) of each key: DuckDB's ``hash`` of the key modulo
    ``buckets``, worked out once per distinct key (a null key has a bucket of its own too).

    >>> numbers = bucket_numbers(pa.array(["a", "b", "a", None]), 4)
    >>> bool(numbers[0] == numbers[2]) and all(0 <= n < 4 for n in numbers)
    True
    """
    distinct = pc.unique(keys)
    hashed = engine.run(
        "SELECT (hash(key) % $n)::INTEGER AS bucket FROM keys ORDER BY position",
        {"n": buckets},
        keys=pa.table({"key": distinct, "position": pa.array(np.arange(len(distinct)))}),
    )
    of_distinct = hashed.column("bucket").to_numpy()
    position = pc.index_in(keys, value_set=distinct, skip_nulls=False).to_numpy(
        zero_copy_only=False
    )
    return np.asarray(of_distinct[position.astype(np.int64)], dtype=np.int64)


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
