"""Mart maintenance on Spark: the embedded runner's kernels, partitioned by the key each needs.

    curated data files ──mapInArrow: read, slice, bucket by key──► blobs ─┐
    mart rows on the driver ──bucket by key──────────────────────► blobs ─┤
              repartition(bucket) ──mapInArrow: the kernel on each part──► driver

Every step of :class:`advertisex.marts.maintain.Kernels` is partitionable by a key —
``user_id`` for correlation, ``auction_id`` for bids, ``campaign_id`` for the rollups —
so a part holding every row of its keys computes exactly the rows a whole run would.
The parts run the very functions the embedded runner calls (``maintain.correlate_part``
and friends); their outputs are concatenated and put in the kernel's own order.

Rows travel as Arrow IPC blobs, one per (bucket, input): Spark never has to know the
nested mart schemas. Curated rows are read only by the executors, straight from the
data files pyiceberg plans for the slice. The kernels' outputs — the marts' new rows —
come back to the driver, which commits them as the embedded runner does
(``IcebergMarts.replace``); so a rebuild needs driver memory for the attributed clicks
and conversions (not for the impressions, which stay on the executors).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from advertisex.kernels.rollup import named_clicks
from advertisex.marts import maintain
from advertisex.marts.iceberg import expression
from advertisex.marts.store import Slice
from advertisex.util import storage
from advertisex.util.spark_arrow import (
    BLOBS,
    BLOBS_SCHEMA,
    blob_batch,
    bucketed,
    collect_arrow,
    from_ipc,
    to_ipc,
)

if TYPE_CHECKING:
    from datetime import datetime

    from pyspark.sql import SparkSession

    from advertisex.config import Settings
    from advertisex.kernels.windows import Windows
    from advertisex.lake.tables import Lake

FILES = "tag string, path string"
BUCKETS_PER_TASK = 4  # more buckets than tasks evens out Spark's hash of the bucket number
OUTPUT_ROWS = 250_000  # rows per output blob (a Spark binary value must stay under 2 GiB)

Kernel = Callable[[dict[str, pa.Table]], dict[str, pa.Table]]


class SparkKernels:
    """``maintain.Kernels`` on a Spark session, reading the lake's curated data files."""

    concurrent = False  # each step is spread over the executors already

    def __init__(self, spark: SparkSession, lake: Lake, settings: Settings | None = None) -> None:
        self.spark = spark
        self.lake = lake
        self.settings = settings or lake.settings

    @property
    def tasks(self) -> int:
        return max(1, self.spark.sparkContext.defaultParallelism)

    def correlate(
        self,
        impressions: maintain.Rows,
        clicks: maintain.Rows,
        conversions: maintain.Rows,
        recheck: Slice,
        rules: maintain.MatchingRules,
    ) -> tuple[pa.Table, pa.Table]:
        kernel = functools.partial(
            maintain.correlate_part,
            recheck=recheck,
            windows=rules.windows,
            campaigns=rules.campaigns,
        )
        reads = {"impressions": impressions, "clicks": clicks, "conversions": conversions}
        out = self.run(reads, {}, "user_id", kernel, ("matched", "attributed"))
        return out["matched"], out["attributed"]

    def bids(self, bids: maintain.Rows, auctions: maintain.Rows, windows: Windows) -> pa.Table:
        kernel = functools.partial(maintain.bids_part, windows=windows)
        return self.run(
            {"bids": bids, "impressions": auctions}, {}, "auction_id", kernel, ("bids",)
        )["bids"]

    def shown(self, impressions: maintain.Rows, counted: Slice) -> pa.Table | None:
        return None  # each part of the rollup counts its own impressions

    def hourly(
        self,
        impressions: maintain.Rows,
        counted: Slice,
        given: dict[str, pa.Table],
        hours: list[datetime] | None,
        shown: pa.Table | None = None,
    ) -> pa.Table:
        kernel = functools.partial(maintain.hourly_part, counted=counted, hours=hours)
        # A click a conversion's postback named goes to the conversion's part too.
        named = named_clicks(given["clicks"], given["conversions"])
        given = given | {"named_clicks": named}
        return self.run({"impressions": impressions}, given, "campaign_id", kernel, ("hourly",))[
            "hourly"
        ]

    def run(
        self,
        reads: dict[str, maintain.Rows],
        given: dict[str, pa.Table],
        key: str,
        kernel: Kernel,
        outputs: tuple[str, ...],
    ) -> dict[str, pa.Table]:
        """``kernel`` over parts of (curated ``reads`` ∪ driver tables ``given``) by ``key``."""
        from pyspark.sql import DataFrame

        buckets = BUCKETS_PER_TASK * self.tasks
        schemas = {tag: r.schema for tag, r in reads.items()}
        schemas |= {tag: table.schema for tag, table in given.items()}
        inputs = []
        files = self._files(reads)
        if files:
            listing = self.spark.createDataFrame(files, FILES)
            reader = functools.partial(
                read_bucketed, reads=reads, key=key, buckets=buckets, settings=self.settings
            )
            inputs.append(
                listing.repartition(min(len(files), 2 * self.tasks)).mapInArrow(reader, BLOBS)
            )
        shipped = [
            (bucket, tag, blob)
            for tag, table in given.items()
            for bucket, blob in bucketed(table, key, buckets)
        ]
        if shipped:
            inputs.append(self.spark.createDataFrame(shipped, BLOBS))
        collected: dict[str, list[pa.Table]] = {tag: [] for tag in outputs}
        if inputs:
            blobs = functools.reduce(DataFrame.unionByName, inputs)
            reducer = functools.partial(reduce_part, schemas=schemas, kernel=kernel)
            parts = blobs.repartition(self.tasks, "bucket").mapInArrow(reducer, BLOBS)
            result = collect_arrow(parts, BLOBS_SCHEMA)
            for tag, blob in zip(
                result.column("tag").to_pylist(), result.column("blob").to_pylist(), strict=True
            ):
                collected[tag].append(from_ipc(blob))
        return {tag: maintain.ordered(tag, collected[tag]) for tag in outputs}

    def _files(self, reads: dict[str, maintain.Rows]) -> list[tuple[str, str]]:
        """(input tag, data file) for every file that may hold rows of each read."""
        files = []
        for tag, request in reads.items():
            table = self.lake.table(request.table)
            if request.where.is_empty or table.current_snapshot() is None:
                continue
            scan = table.scan(
                row_filter=expression(request.where, with_users=False),
                selected_fields=request.columns,
            )
            for task in scan.plan_files():
                if task.delete_files:
                    raise RuntimeError(
                        f"{request.table} has delete files, which Spark mart maintenance "
                        "does not read"
                    )
                files.append((tag, task.file.file_path))
        return files


# ------------------------------------------------------------------ executor functions


def read_bucketed(
    batches: Iterator[pa.RecordBatch],
    *,
    reads: dict[str, maintain.Rows],
    key: str,
    buckets: int,
    settings: Settings,
) -> Iterator[pa.RecordBatch]:
    """(tag, data file) rows → the file's rows inside the read's slice, bucketed by key."""
    import pyarrow.parquet as pq

    for batch in batches:
        for item in batch.to_pylist():
            request = reads[item["tag"]]
            filesystem, path = storage.resolve(item["path"], settings.scale)
            schema = request.schema
            present = set(pq.read_schema(path, filesystem=filesystem).names)
            data = pq.read_table(
                path, columns=[c for c in request.columns if c in present], filesystem=filesystem
            )
            # Columns a newer version added read as null in older files (schema evolution).
            rows = pa.table(
                [
                    data.column(f.name).cast(f.type)
                    if f.name in present
                    else pa.nulls(data.num_rows, f.type)
                    for f in schema
                ],
                schema=schema,
            )
            if not request.where.is_everything:
                rows = rows.filter(request.where.mask(rows))
            for bucket, blob in bucketed(rows, key, buckets):
                yield blob_batch(bucket, item["tag"], blob)


def reduce_part(
    batches: Iterator[pa.RecordBatch], *, schemas: dict[str, pa.Schema], kernel: Kernel
) -> Iterator[pa.RecordBatch]:
    """Blobs of some buckets → ``kernel`` over all their rows, its outputs as blobs."""
    parts: dict[str, list[pa.Table]] = {}
    for batch in batches:
        for tag, blob in zip(
            batch.column("tag").to_pylist(), batch.column("blob").to_pylist(), strict=True
        ):
            parts.setdefault(tag, []).append(from_ipc(blob))
    if not parts:
        return
    tables = {
        tag: pa.concat_tables([p.cast(schema) for p in parts[tag]])
        if tag in parts
        else schema.empty_table()
        for tag, schema in schemas.items()
    }
    for tag, out in kernel(tables).items():
        for start in range(0, out.num_rows, OUTPUT_ROWS):
            yield blob_batch(-1, tag, to_ipc(out.slice(start, OUTPUT_ROWS)))
