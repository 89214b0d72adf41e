"""Decode bid-request Avro object-container files to Arrow.

Fast path: ``polars-avro`` (Rust, columnar) reads a well-formed container about ten
times faster than fastavro on this machine (300 k records: 0.9 s against 9 s), which
decides whether bid requests keep up with impressions. Its columns are then resolved
by name against the canonical fields: missing fields become nulls, unknown ones are
kept for the ``extras`` column.

Fallback: fastavro, record by record, for what the fast path cannot take — a truncated
or corrupt file (records before the damage are kept and the rest becomes one
``avro_unreadable`` record holding the undecoded bytes), or writer schemas it does not
support (unions of several non-null types, such as the canonical reader schema's own
``timestamp``).
"""

from __future__ import annotations

import base64
import io
from typing import Any

import pyarrow as pa

from advertisex.formats.framing import FRAME_ERROR, POSITION, RAW
from advertisex.model.contracts import BID_FIELDS

EXTRAS = "extras"
MAGIC = b"Obj\x01"
_TARGETING = pa.map_(pa.string(), pa.string())


def frame_avro(data: bytes) -> pa.Table:
    """Decode an Avro container into canonical bid columns plus framing columns.

    ``timestamp`` is either a timestamp column (writer used timestamp-millis/micros) or
    text (writer used strings, as the AWS reference does); the kernel handles both.
    """
    if not data.startswith(MAGIC):
        return _error_table(
            data, 0, "avro_unreadable: not an Avro object container (no 'Obj\\x01' header)"
        )
    try:
        return _fast(data)
    except BaseException as error:  # polars-avro panics surface as pyo3 PanicException
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        return _slow(data)


def _fast(data: bytes) -> pa.Table:
    import fastavro
    import polars_avro

    # polars-avro stops quietly at a truncated block; fastavro's block reader checks every
    # block's framing (cheap: no record decoding), so a short count means "use the slow path".
    expected = sum(block.num_records for block in fastavro.block_reader(io.BytesIO(data)))
    frame = polars_avro.read_avro(io.BytesIO(data))
    if frame.height != expected:
        raise ValueError(f"polars-avro read {frame.height} of {expected} records")
    table = frame.to_arrow()
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in BID_FIELDS:
        if name in table.column_names:
            columns[name] = _normalize(name, table.column(name))
        else:
            columns[name] = pa.nulls(table.num_rows, _default_type(name))
    unknown = [n for n in table.column_names if n not in BID_FIELDS]
    columns[EXTRAS] = (
        _extras_from_columns(table.select(unknown))
        if unknown
        else pa.nulls(table.num_rows, pa.string())
    )
    n = table.num_rows
    columns[RAW] = pa.nulls(n, pa.string())
    columns[POSITION] = pa.array(range(1, n + 1), pa.int64())
    columns[FRAME_ERROR] = pa.nulls(n, pa.string())
    return pa.table(columns)


def _normalize(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    if name == "timestamp":
        if pa.types.is_timestamp(t):
            return column.cast(pa.timestamp("us", tz="UTC"))
        return column if pa.types.is_string(t) else column.cast(pa.string())
    if name == "ad_targeting":
        return column.cast(_TARGETING)
    if name in ("floor_price", "bid_price"):
        return column if t == pa.float64() else column.cast(pa.float64())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return column  # any string layout will do: the kernel reads it in place, no copy
    return column.cast(pa.string())


def _default_type(name: str) -> pa.DataType:
    if name == "ad_targeting":
        return _TARGETING
    if name in ("floor_price", "bid_price"):
        return pa.float64()
    return pa.string()


def _extras_from_columns(table: pa.Table) -> pa.Array:
    from advertisex.util import jsonutil

    rows = table.to_pylist()
    return pa.array([jsonutil.dumps_str(r) if r else None for r in rows], pa.string())


def _slow(data: bytes) -> pa.Table:
    """Record-by-record decoding that salvages everything before a damaged block."""
    import fastavro

    from advertisex.util import jsonutil

    stream = io.BytesIO(data)
    rows: list[dict[str, Any]] = []
    failure: tuple[int, str] | None = None
    try:
        reader = fastavro.reader(stream)
        iterator = iter(reader)
        while True:
            offset = stream.tell()
            try:
                record = next(iterator)
            except StopIteration:
                break
            except Exception as error:  # corrupt block, truncated file, bad schema
                failure = (offset, f"avro_unreadable: {type(error).__name__}: {error}")
                break
            rows.append(record)  # type: ignore[arg-type]
    except Exception as error:  # the header itself is unreadable
        return _error_table(data, 0, f"avro_unreadable: {type(error).__name__}: {error}")

    out: dict[str, list[Any]] = {name: [] for name in BID_FIELDS}
    extras: list[str | None] = []
    for record in rows:
        for name in BID_FIELDS:
            value = record.get(name)
            if name == "timestamp" and value is not None and not isinstance(value, str):
                value = value.isoformat() if hasattr(value, "isoformat") else str(value)
            elif name == "ad_targeting" and isinstance(value, dict):
                value = [(str(k), None if v is None else str(v)) for k, v in value.items()]
            elif name not in ("floor_price", "bid_price", "ad_targeting") and value is not None:
                value = str(value)
            out[name].append(value)
        unknown = {k: v for k, v in record.items() if k not in out}
        extras.append(jsonutil.dumps_str(unknown) if unknown else None)
    n = len(rows)
    table = pa.table(
        {
            **{name: pa.array(values, _default_type(name)) for name, values in out.items()},
            EXTRAS: pa.array(extras, pa.string()),
            RAW: pa.nulls(n, pa.string()),
            POSITION: pa.array(range(1, n + 1), pa.int64()),
            FRAME_ERROR: pa.nulls(n, pa.string()),
        }
    )
    if failure is not None:
        offset, message = failure
        tail = _error_table(data[offset:], n + 1, message)
        table = pa.concat_tables([table, tail.cast(table.schema)])
    return table


def _error_table(data: bytes, position: int, message: str) -> pa.Table:
    """One record standing for bytes that could not be decoded; raw keeps them as base64."""
    columns: dict[str, pa.Array] = {name: pa.nulls(1, _default_type(name)) for name in BID_FIELDS}
    columns[EXTRAS] = pa.nulls(1, pa.string())
    columns[RAW] = pa.array(["base64:" + base64.b64encode(data).decode()], pa.string())
    columns[POSITION] = pa.array([max(position, 1)], pa.int64())
    columns[FRAME_ERROR] = pa.array([message], pa.string())
    return pa.table(columns)
