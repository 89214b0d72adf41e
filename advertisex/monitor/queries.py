"""The SQL behind the observations: DuckDB over Arrow rows and over the lake's tables.

``arrivals`` and ``batch_sums`` fold per-segment and per-batch rows into 5-minute buckets;
``hourly`` reads the curated tables from ``start`` on and returns per-hour aggregates
(rows and event-time lag per table, counts per campaign, cross-source links, fields
seen). All times are UTC; the hour of a row is the hour of its ``ingest_time``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from advertisex.model.reasons import DAMAGE_REASONS
from advertisex.monitor.model import (
    ARRIVALS,
    BATCHES,
    CAMPAIGN_HOURS,
    FIELDS,
    LINKS,
    SET_ASIDE,
    TABLE_HOURS,
)

if TYPE_CHECKING:
    from advertisex.config import ScaleSettings, Settings
    from advertisex.lake.tables import Lake
    from advertisex.monitor.files import FileIndex

HOURLY: dict[str, pa.Schema] = {
    "tables": TABLE_HOURS,
    "campaigns": CAMPAIGN_HOURS,
    "links": LINKS,
    "fields": FIELDS,
}
CURATED = ("curated.impressions", "curated.clicks", "curated.conversions", "curated.bid_requests")
# Optional columns whose filling the schema-drift check follows (required ones never drift).
OPTIONAL = {
    "curated.impressions": (
        "campaign_id",
        "placement",
        "device_type",
        "user_agent",
        "ip",
        "country",
        "cost",
        "auction_id",
    ),
    "curated.clicks": ("ad_creative_id", "impression_id"),
    "curated.conversions": ("ad_creative_id", "conversion_type", "conversion_value", "currency"),
    "curated.bid_requests": (
        "exchange",
        "site_domain",
        "device_type",
        "country",
        "floor_price",
        "bid_price",
        "campaign_id",
    ),
}


def _run(sql: str, params: dict[str, object] | None = None, **tables: pa.Table) -> pa.Table:
    from advertisex.util import engine

    return engine.run(sql, params, **tables)  # the thread's connection: a new one costs ~40 ms


def _run_on_files(
    sql: str, paths: list[str], scale: ScaleSettings | None, params: dict[str, object] | None = None
) -> pa.Table:
    """``sql`` with ``{files}`` standing for the SQL list of ``paths``. Data files in an
    object store are read through PyArrow's filesystem lent to DuckDB
    (``storage.duckdb_location``): DuckDB's own httpfs extension is a run-time download,
    and without it every observation of a lake whose warehouse is in a bucket failed. That
    takes a connection of its own, its filesystem registered with this lake's credentials
    (a pooled one would keep the first lake's); local files use the pooled connection."""
    from advertisex.util.storage import duckdb_location, is_remote

    if not any(is_remote(p) for p in paths):
        return _run(sql.format(files=_sql_list(paths)), params)
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        located = [duckdb_location(con, p, scale) for p in paths]
        return con.sql(sql.format(files=_sql_list(located)), params=params).to_arrow_table()
    finally:
        con.close()


def _sql_list(paths: list[str]) -> str:
    return ", ".join("'" + p.replace("'", "''") + "'" for p in paths)


def arrivals(segments: pa.Table) -> pa.Table:
    """Per-segment rows (source, landed_at, bytes, records, committed_at) → ARRIVALS."""
    sql = """
    SELECT source, time_bucket(INTERVAL 5 MINUTE, landed_at) AS bucket,
      count(*) AS segments, sum(bytes) AS bytes, sum(records) AS records,
      count(*) FILTER (WHERE committed_at IS NULL) AS pending,
      coalesce(sum(bytes) FILTER (WHERE committed_at IS NULL), 0) AS pending_bytes,
      max(landed_at) AS last_landed_at,
      min(landed_at) FILTER (WHERE committed_at IS NULL) AS oldest_pending_at,
      max(epoch(committed_at) - epoch(landed_at)) AS delay_max_s
    FROM segments GROUP BY ALL ORDER BY bucket
    """
    return _run(sql, segments=segments).cast(ARRIVALS)


_BATCH_SUMS = ", ".join(f"sum({c}) AS {c}" for c in BATCHES.names[2:])


def batch_sums(paths: list[str], scale: ScaleSettings | None = None) -> pa.Table:
    """``ops.batches`` data files → BATCHES sums per file (column ``file``, as named in
    ``paths``), source and 5-minute bucket of commit time."""
    sql = f"""
    SELECT filename AS file, source, time_bucket(INTERVAL 5 MINUTE, committed_at) AS bucket,
      {_BATCH_SUMS}
    FROM read_parquet([{{files}}], union_by_name = true, filename = true) GROUP BY ALL
    """
    sums = _run_on_files(sql, paths, scale)
    named = _named_as(sums.column("file"), paths)
    sums = sums.set_column(0, "file", named)
    return sums.cast(pa.schema([pa.field("file", pa.string()), *BATCHES]))


def _named_as(read: pa.ChunkedArray, paths: list[str]) -> pa.Array:
    """The ``filename`` DuckDB gives each row, as the file is named in ``paths``: an
    object's is the location it was read at (``s3://…`` as ``s3://…``, or through the
    filesystem lent to DuckDB under that filesystem's protocol)."""
    by_tail = {p.split("://", 1)[-1]: p for p in paths}
    return pa.array(
        [by_tail.get(name.split("://", 1)[-1], name) for name in read.to_pylist()], pa.string()
    )


def batch_totals(sums: pa.Table, since: datetime) -> pa.Table:
    """:func:`batch_sums` rows of any files → BATCHES from ``since`` on (an hour: whole
    buckets)."""
    sql = f"""
    SELECT source, bucket, {_BATCH_SUMS} FROM sums WHERE bucket >= $since
    GROUP BY ALL ORDER BY bucket
    """
    return _run(sql, {"since": since}, sums=sums).cast(BATCHES)


_DAMAGED = ", ".join(f"'{reason}'" for reason in DAMAGE_REASONS)  # as SQL's IN list


def set_aside(paths: list[str], since: datetime, scale: ScaleSettings | None = None) -> pa.Table:
    """``curated.quarantine`` data files → SET_ASIDE: per source and reason, the landing
    files set aside whole (``segment_unreadable``) that are still in quarantine, and those
    whose rest past a damage is (``gzip_damaged``, ``avro_unreadable``), landed since
    ``since``."""
    if not paths:
        return SET_ASIDE.empty_table()
    sql = f"""
    SELECT source, reason, count(DISTINCT source_file) AS files, min(ingest_time) AS oldest
    FROM (SELECT source, unnest(reasons) AS reason, source_file, ingest_time
          FROM read_parquet([{{files}}], union_by_name = true) WHERE ingest_time >= $since)
    WHERE starts_with(reason, 'segment_unreadable') OR reason IN ({_DAMAGED})
    GROUP BY ALL ORDER BY source, reason
    """
    return _run_on_files(sql, paths, scale, {"since": since}).cast(SET_ASIDE)


def hourly(
    lake: Lake,
    start: datetime,
    settings: Settings,
    index: FileIndex | None = None,
    until: datetime | None = None,
) -> dict[str, pa.Table]:
    """Per-hour aggregates of the curated tables for rows ingested in [start, until).

    Rows are read from ``recent.<table>``: the files whose ingest times overlap the
    range (each batch writes its own files, so an hour is a handful of files). Links
    between sources look further back, as far as each rule needs (see ``links``).
    """
    import duckdb

    from advertisex.monitor.files import FileIndex
    from advertisex.monitor.links import links

    index = index or FileIndex(lake)
    files = {t: index.files(t) for t in CURATED}
    end = until or datetime(9999, 1, 1, tzinfo=start.tzinfo)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    for table, table_files in files.items():
        recent = [f.path for f in table_files if _overlaps(f.ingest_min, f.ingest_max, start, end)]
        _view(con, "recent", table, recent, settings.scale)
    params = {"start": start, "until": end}
    out = {
        name: con.sql(sql, params=params).to_arrow_table().cast(HOURLY[name])
        for name, sql in (
            ("tables", _TABLES_SQL),
            ("campaigns", _CAMPAIGNS_SQL),
            ("fields", _fields_sql()),
        )
    }

    def view(con: Any, schema: str, table: str, paths: list[str]) -> None:
        _view(con, schema, table, paths, settings.scale)

    out["links"] = links(con, files, start, end, settings.correlation, view)
    return out


def _overlaps(low: datetime | None, high: datetime | None, start: datetime, end: datetime) -> bool:
    """Whether a file whose rows span [low, high] can hold rows in [start, end)."""
    return (high is None or high >= start) and (low is None or low < end)


def _view(con: Any, schema: str, table: str, paths: list[str], scale: ScaleSettings | None) -> None:
    """``schema.<name>``: a view over ``paths`` (or an empty table of the right shape);
    objects of a bucket read through PyArrow's filesystem (see :func:`_run_on_files`)."""
    from advertisex.lake.query import register_view

    register_view(con, table, paths, scale, schema=schema)


def _hour(alias: str = "") -> str:
    return f"date_trunc('hour', {alias}ingest_time)"


_TABLES_SQL = " UNION ALL ".join(
    f"""SELECT '{t}' AS "table", {_hour()} AS hour, count(*) AS rows,
      quantile_cont(epoch(ingest_time) - epoch(event_time), 0.95) AS lag_p95_s
    FROM recent.{t.split(".")[1]} WHERE ingest_time >= $start AND ingest_time < $until GROUP BY ALL"""
    for t in CURATED
)

_CAMPAIGNS_SQL = f"""
SELECT campaign_id, hour, sum(impressions) AS impressions, sum(clicks) AS clicks,
  sum(conversions) AS conversions, sum(spend) AS spend
FROM (
  SELECT campaign_id, {_hour()} AS hour, count(*) AS impressions, 0 AS clicks,
    0 AS conversions, sum(cost) AS spend
  FROM recent.impressions WHERE ingest_time >= $start AND ingest_time < $until GROUP BY ALL
  UNION ALL
  SELECT campaign_id, {_hour()}, 0, count(*), 0, 0 FROM recent.clicks
  WHERE ingest_time >= $start AND ingest_time < $until GROUP BY ALL
  UNION ALL
  SELECT campaign_id, {_hour()}, 0, 0, count(*), 0 FROM recent.conversions
  WHERE ingest_time >= $start AND ingest_time < $until GROUP BY ALL
) GROUP BY ALL
"""


def _fields_sql() -> str:
    parts = []
    for table, columns in OPTIONAL.items():
        short = table.split(".")[1]
        counts = ", ".join(f"count({c}) AS {c}" for c in columns)
        parts.append(
            f"""SELECT '{table}' AS "table", hour, field, 'column' AS type, rows FROM (
              UNPIVOT (SELECT {_hour()} AS hour, {counts} FROM recent.{short}
                       WHERE ingest_time >= $start AND ingest_time < $until GROUP BY ALL)
              ON {", ".join(columns)} INTO NAME field VALUE rows) WHERE rows > 0"""
        )
        parts.append(
            f"""SELECT '{table}' AS "table", hour, key AS field,
              CASE WHEN jt IN ('UBIGINT', 'BIGINT', 'DOUBLE') THEN 'number' ELSE lower(jt) END
                AS type, count(*) AS rows
            FROM (SELECT hour, key, json_type(extras, '$."' || key || '"') AS jt
                  FROM (SELECT {_hour()} AS hour, extras, unnest(json_keys(extras)) AS key
                        FROM recent.{short} WHERE ingest_time >= $start AND ingest_time < $until AND extras IS NOT NULL
                          AND extras <> '{{}}'))
            GROUP BY ALL"""
        )
    return " UNION ALL ".join(parts)
