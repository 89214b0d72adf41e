"""``raw.impressions``, ``raw.clicks``, ``raw.bid_requests``: landing files not yet processed.

What Redshift Spectrum and Athena do over S3 in the AWS reference: look at data where
it landed, before any processing. Each view covers the landing segments of its source
that no batch has committed yet, read straight from their files — JSON with DuckDB's
``read_json``, CSV with ``read_csv`` (all columns as text: files may disagree on
types), Avro decoded by the project's own decoder (DuckDB's avro extension would have
to be downloaded) and registered as Arrow. Records DuckDB cannot parse are skipped
here; processing quarantines them with a reason. ``filename`` says which file a row
came from. With no pending file a view is empty but has its source contract's fields.

A landing zone on object storage (``scale.landing = "s3://…"``) is read the same way:
its PyArrow filesystem — the client the processor uses, with the same credentials — is
lent to DuckDB through fsspec's ``ArrowFSWrapper``, so no DuckDB extension is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from advertisex.formats.bounded import DecodeLimits
    from advertisex.lake.tables import Lake
    from advertisex.landing.zone import LandingZone, Segment

# Landing source → view name in the ``raw`` schema.
RAW_VIEWS = {"impressions": "impressions", "clicks": "clicks", "bids": "bid_requests"}
_FORMATS = {"ndjson": "json", "json": "json", "jsonl": "json", "csv": "csv", "tsv": "csv"}
_FORMATS["avro"] = "avro"
_DEFAULT = {"impressions": "json", "clicks": "csv", "bids": "avro"}


def register_raw_views(con: Any, lake: Lake) -> list[str]:
    """Create the ``raw`` views on ``con`` over the pending segments of ``lake``'s landing zone.

    Returns the files (paths or URLs) the views read, for the query sandbox to allow.
    """
    import duckdb

    from advertisex.formats.bounded import DecodeLimits
    from advertisex.landing.zone import open_landing

    landing = open_landing(lake.settings)
    limits = DecodeLimits.of(lake.settings.processor)
    where = _locator(con, landing, lake)
    done = lake.done_in(landing, RAW_VIEWS)
    pending = [s for s in landing.segments(RAW_VIEWS) if s.name not in done]
    con.execute('CREATE SCHEMA IF NOT EXISTS "raw"')
    read: list[str] = []
    for source, view in RAW_VIEWS.items():
        groups: dict[tuple[str, bool], list[Segment]] = {}
        for segment in pending:
            if segment.source == source:
                key = (_format(source, segment.name), _gzipped(landing, segment))
                groups.setdefault(key, []).append(segment)
        parts = [
            _part(con, landing, where, source, fmt, gz, segments, limits)
            for (fmt, gz), segments in sorted(groups.items())
        ]
        body = " UNION ALL BY NAME ".join(sql for sql, _ in parts) or _empty(source)
        try:
            con.execute(f'CREATE OR REPLACE VIEW "raw"."{view}" AS {body}')
        except duckdb.Error:  # files DuckDB cannot even sniff must not break every query
            con.execute(f'CREATE OR REPLACE VIEW "raw"."{view}" AS {_empty(source)}')
        else:
            read.extend(path for _, paths in parts for path in paths)
    return read


def _empty(source: str) -> str:
    """No pending file: the source contract's fields, no rows (queries still bind)."""
    from advertisex.model.contracts import BID_FIELDS, CLICK_FIELDS, IMPRESSION_FIELDS

    fields = {"impressions": IMPRESSION_FIELDS, "clicks": CLICK_FIELDS, "bids": BID_FIELDS}
    columns = ", ".join(f'NULL::VARCHAR AS "{f}"' for f in (*fields[source], "filename"))
    return f"SELECT {columns} WHERE false"


def _locator(con: Any, landing: LandingZone, lake: Lake) -> Any:
    """segment → where DuckDB on ``con`` finds its file (see ``storage.duckdb_location``)."""
    from advertisex.landing.zone import ObjectStoreLandingZone
    from advertisex.util.storage import duckdb_location

    if not isinstance(landing, ObjectStoreLandingZone):
        return lambda segment: str(landing.root / segment.name)
    base = landing.url.rstrip("/")
    return lambda segment: duckdb_location(con, f"{base}/{segment.name}", lake.settings.scale)


def _part(
    con: Any,
    landing: LandingZone,
    where: Any,
    source: str,
    fmt: str,
    gzipped: bool,
    segments: list[Segment],
    limits: DecodeLimits,
) -> tuple[str, list[str]]:
    """(the SQL of one part of a view, the files DuckDB reads for it)."""
    paths = [where(s) for s in segments]
    listing = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
    compression = ", compression = 'gzip'" if gzipped else ""
    if fmt == "json":
        return (
            f"SELECT * FROM read_json({listing}, format = 'auto', union_by_name = true, "
            f"filename = true, ignore_errors = true{compression})"
        ), paths
    if fmt == "csv":
        return (
            f"SELECT * FROM read_csv({listing}, union_by_name = true, filename = true, "
            f"all_varchar = true, ignore_errors = true{compression})"
        ), paths
    name = f"__raw_{source}_{len(paths)}_{int(gzipped)}"
    con.register(name, _avro(landing, segments, paths, limits))  # decoded here: no file read
    return f'SELECT * FROM "{name}"', []


def _avro(
    landing: LandingZone, segments: list[Segment], paths: list[str], limits: DecodeLimits
) -> pa.Table:
    """Pending Avro segments decoded (under the processor's decode budget: a file that
    cannot be read within it is left out here and set aside by processing)."""
    from advertisex.formats.avrofmt import frame_avro, salvage_avro
    from advertisex.formats.bounded import DecodeRefused, decode_bounded
    from advertisex.formats.decode import concat_frames

    # In this process (a console query's worker, or decode_isolated off) nothing could stop
    # the fast path spinning on a poison file: the record-by-record path reads every file.
    decoder = frame_avro if limits.isolated else salvage_avro
    frames = []
    for segment, path in zip(segments, paths, strict=True):
        try:
            frame = decode_bounded(decoder, landing.read(segment), limits)
        except DecodeRefused:
            continue
        frames.append(frame.append_column("filename", pa.array([path] * frame.num_rows)))
    if not frames:
        return pa.table({"filename": pa.array([], pa.string())})
    return concat_frames(frames)  # a column typed differently by two files becomes text


def _format(source: str, name: str) -> str:
    suffix = name.rsplit("/", 1)[-1].rpartition(".")[2].lower()
    return _FORMATS.get(suffix, _DEFAULT[source])


def _gzipped(landing: LandingZone, segment: Segment) -> bool:
    return landing.head(segment, 2) == b"\x1f\x8b"
