"""Decode bid-request Avro object-container files to Arrow.

Fast path: ``polars-avro`` (Rust, columnar) reads a well-formed container about ten
times faster than fastavro on this machine (300 k records: 0.9 s against 9 s), which
decides whether bid requests keep up with impressions. Its columns are then resolved
by name against the canonical fields: missing fields become nulls, unknown ones are
kept for the ``extras`` column.

Fallback: fastavro, record by record, for what the fast path cannot take — a truncated
or corrupt file (records before the damage are kept and the rest becomes one
``avro_unreadable`` record holding the undecoded bytes), writer schemas it does not
support (unions of several non-null types, such as the canonical reader schema's own
``timestamp``), or records that do not fit the bid-request layout: a record that is not
a record, or whose ``ad_targeting`` is not a map, becomes a ``type_invalid`` row of its
own with its JSON rendering as raw text, and a price that is not a number stays text for
the standardize kernel to quarantine (``number_invalid``) — its neighbours are kept.

:func:`check_avro` is the strict reading the collector applies before it acknowledges a
body: every block's records must decode to exactly the block's bytes, and blocks are
inflated against a byte budget (fastavro inflates a block whole, however large it says
it is, so the container is walked here and only the records are left to fastavro).
"""

from __future__ import annotations

import base64
import bz2
import functools
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.formats.framing import FRAME_ERROR, POSITION, RAW, UNDECODED, Bytes, starts_with
from advertisex.model.contracts import BID_FIELDS

EXTRAS = "extras"
MAGIC = b"Obj\x01"
_TARGETING = pa.map_(pa.string(), pa.string())


def frame_avro(data: Bytes) -> pa.Table:
    """Decode an Avro container into canonical bid columns plus framing columns.

    ``timestamp`` is either a timestamp column (writer used timestamp-millis/micros) or
    text (writer used strings, as the AWS reference does); the kernel handles both.
    """
    if not starts_with(data, MAGIC):
        return _error_table(
            data, 0, "avro_unreadable: not an Avro object container (no 'Obj\\x01' header)"
        )
    try:
        return _fast(data)
    except BaseException as error:  # polars-avro panics surface as pyo3 PanicException
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        return _slow(data)


def salvage_avro(data: Bytes) -> pa.Table:
    """:func:`frame_avro` without its fast path: record by record, whatever the container."""
    if not starts_with(data, MAGIC):
        return frame_avro(data)
    return _slow(data)


def _file(data: Bytes) -> pa.BufferReader:
    """A file over ``data`` for the Avro readers, without a copy (``io.BytesIO`` copies a
    view: the segment twice in the decoder worker)."""
    return pa.BufferReader(data)


def _fast(data: Bytes) -> pa.Table:
    # polars-avro stops quietly at a truncated block; the container's block headers say how
    # many records it holds (checked for framing and sync markers, nothing inflated), so a
    # short count means "use the slow path".
    plan, codec, offset = _planned(data)
    if plan.wide_union:
        # polars-avro panics on these, printing the panic and a Python traceback to stderr
        # (seconds of symbolizing with RUST_BACKTRACE set): ask it nothing it cannot read.
        raise ValueError("a union of several non-null types: polars-avro cannot read it")
    table = _read_native(data, offset, plan, codec)
    if table is None:
        expected = sum(count for _, count, _ in _blocks(data, offset, data[offset - 16 : offset]))
        table = _read_arrow(data)
        if table.num_rows != expected:
            raise ValueError(f"polars-avro read {table.num_rows} of {expected} records")
    return _framed(table)


def _framed(table: pa.Table, positions: np.ndarray | None = None) -> pa.Table:
    """The frame of a container's records as read (columns as polars-avro types them):
    the canonical bid columns, the others as ``extras``, each record's ``positions`` in
    its container (default 1, 2, …)."""
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    frame_error: pa.Array = pa.nulls(table.num_rows, pa.string())
    # By position: ``table.column_names`` builds its list at every call, and a lookup by
    # name looks it up again (≈ 9 µs each: 0.17 ms of a small container's 0.24 here).
    at = {name: i for i, name in enumerate(table.column_names)}
    for name in BID_FIELDS:
        if name not in at:
            columns[name] = pa.nulls(table.num_rows, _default_type(name))
            continue
        column = table.column(at[name])
        if name == "timestamp" and pa.types.is_timestamp(column.type):
            columns[name], frame_error = _micros(column)
        else:
            columns[name] = _normalize(name, column)
    unknown = [n for n in at if n not in BID_FIELDS]
    columns[EXTRAS] = (
        _extras_from_columns(table.select(unknown))
        if unknown
        else pa.nulls(table.num_rows, pa.string())
    )
    n = table.num_rows
    columns[RAW] = pa.nulls(n, pa.string())
    if positions is None:
        positions = np.arange(1, n + 1, dtype=np.int64)
    columns[POSITION] = pa.array(positions)
    columns[FRAME_ERROR] = frame_error
    return pa.table(columns)


def frame_avro_each(datas: Sequence[Bytes]) -> list[pa.Table | Exception]:
    """:func:`frame_avro` of each of ``datas`` (an exception in the place of one that
    raised), the same frames, read together where they can be: containers of one writer
    schema that the compiled reader reads have their blocks' records read in one call and
    their columns made once, then cut into each container's frame. A collector lands each
    request of bids as a container of its own, and a container's fixed cost (the reader's
    buffers and an Arrow call a column, ≈ 0.5 ms) was most of what a small one cost."""
    framed: list[pa.Table | Exception | None] = [None] * len(datas)
    together: dict[bytes, list[tuple[int, list[tuple[Bytes, int]]]]] = {}
    for i, data in enumerate(datas):
        read = _native_blocks(data)
        if read is None:
            framed[i] = _alone(data)
        else:
            together.setdefault(read[0], []).append((i, read[1]))
    for schema, members in together.items():
        joined = _read_together(_PLANS[schema], members) if len(members) > 1 else None
        for (i, _), frame in zip(members, joined or [None] * len(members), strict=True):
            framed[i] = frame if frame is not None else _alone(datas[i])
    return [frame for frame in framed if frame is not None]


def _alone(data: Bytes) -> pa.Table | Exception:
    try:
        return frame_avro(data)
    except Exception as error:
        return error


def _native_blocks(data: Bytes) -> tuple[bytes, list[tuple[Bytes, int]]] | None:
    """A container's schema text and its blocks inflated, each with its record count,
    when its schema's plan is kept (a container of it was framed before) and the compiled
    reader reads every block as exactly its records; None otherwise (it is framed alone)."""
    from advertisex import native

    if not starts_with(data, MAGIC):
        return None
    header = _header(data)
    plan = _PLANS.get(header[0]) if header is not None else None
    if header is None or plan is None or plan.fields is None or plan.wide_union:
        return None
    schema, codec, offset = header
    if codec not in ("null", "deflate"):
        return None
    layout = [field for _, field in plan.fields]
    blocks = []
    try:
        for _, count, body in _blocks(data, offset, data[offset - 16 : offset]):
            raw = _isal().decompress(body, -15) if codec == "deflate" else body
            if not native.avro_fits(raw, count, layout):
                return None
            blocks.append((raw, count))
    except (AvroInvalid, _inflate_error()):
        return None
    return (schema, blocks) if blocks else None


def _read_together(
    plan: _Plan, members: list[tuple[int, list[tuple[Bytes, int]]]]
) -> list[pa.Table] | None:
    """The frames of containers of ``plan``'s schema, their blocks' records read in one
    call of the compiled reader (each block was checked to be exactly its records, so the
    records follow one another) and framed once; None if the reader does not read them."""
    from advertisex import native

    assert plan.fields is not None and plan.schema is not None
    counts = [sum(count for _, count in blocks) for _, blocks in members]
    joined = b"".join(raw for _, blocks in members for raw, _ in blocks)
    columns = native.avro_block(joined, sum(counts), [field for _, field in plan.fields])
    if columns is None:
        return None
    table = pa.Table.from_batches([pa.record_batch(columns, schema=plan.schema)])
    positions = np.concatenate([np.arange(1, n + 1, dtype=np.int64) for n in counts])
    frame = _framed(table, positions)
    starts = np.concatenate([[0], np.cumsum(counts)])
    return [frame.slice(int(start), n) for start, n in zip(starts, counts, strict=False)]


def _micros(times: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.Array]:
    """A typed time column in microseconds (UTC), and each record's framing error: a time
    no microsecond timestamp holds (4611686018427387904 as timestamp-millis) is null, its
    record ``timestamp_invalid`` with the value in its error's text. The whole column's
    cast failed on such a value, and the file went to the slow path, which stopped at the
    record: every record after it was set aside with the file's unreadable rest."""
    target = pa.timestamp("us", tz="UTC")
    none = pa.nulls(len(times), pa.string())
    try:
        return times.cast(target), none
    except pa.ArrowInvalid:
        if times.type.unit != "ms":  # Avro's other unit is microseconds: never out of range
            raise
    values = np.asarray(pc.fill_null(times.cast(pa.int64()), 0), dtype=np.int64)
    limit = np.iinfo(np.int64).max // _TIME_UNITS["timestamp-millis"]
    beyond = (values > limit) | (values < -limit)
    kept = pc.if_else(pa.array(beyond), pa.scalar(None, times.type), times)
    errors = [
        _beyond_the_calendar(value, "timestamp-millis") if out else None
        for value, out in zip(values.tolist(), beyond.tolist(), strict=True)
    ]
    return kept.cast(target), pa.array(errors, pa.string())


def _beyond_the_calendar(value: int, logical_type: str) -> str:
    """The framing error of a record whose typed time ``value`` no time of the years
    1-9999 is."""
    return f"timestamp_invalid: {value} ({logical_type}) is past the years 1-9999"


@dataclass(frozen=True)
class _Plan:
    """What reading a container of one writer schema takes, worked out once per schema:
    a collector lands each request of bids as a container of its own, and working it out
    again (fastavro's parse of the header's schema, the compiled reader's fields) was
    ≈ 0.2 ms of a small container's 0.8."""

    wide_union: bool  # see _wide_union
    fields: list[tuple[str, Any]] | None  # see _native_fields
    schema: pa.Schema | None  # the compiled reader's columns, as polars-avro types them

    @staticmethod
    def of(writer_schema: Any) -> _Plan:
        fields = _native_fields(writer_schema)
        # Nullable where the writer said so (a union with null), as polars-avro says.
        schema = (
            None
            if fields is None
            else pa.schema([pa.field(n, f.type, f.null_branch >= 0) for n, f in fields])
        )
        return _Plan(_wide_union(writer_schema), fields, schema)


_PLANS: dict[bytes, _Plan] = {}  # by the header's schema text
_MAX_PLANS = 256


def _planned(data: Bytes) -> tuple[_Plan, str, int]:
    """The container's plan, codec and first block's offset: the header read here and its
    schema's plan taken from :data:`_PLANS`, or fastavro's reading of the header (a header
    read first here, or that this reading cannot make out: fastavro then says what is wrong)."""
    import fastavro

    header = _header(data)
    if header is not None and (plan := _PLANS.get(header[0])) is not None:
        return plan, header[1], header[2]
    stream = _file(data)
    read = fastavro.block_reader(stream)  # reads the header only
    plan = _Plan.of(read.writer_schema)
    if header is not None:
        if len(_PLANS) >= _MAX_PLANS:  # a producer making up schemas: keep the latest
            _PLANS.clear()
        _PLANS[header[0]] = plan
    return plan, read.codec, stream.tell()


def _header(data: Bytes) -> tuple[bytes, str, int] | None:
    """The header's schema text, its codec and where its first block begins; None where the
    header is not plainly a container's (each varint read moves on a byte at least, so a
    hostile count ends at the data's end)."""
    try:
        offset, meta = len(MAGIC), {}
        while True:
            count, offset = _varint(data, offset)
            if count == 0:
                break
            if count < 0:  # a block of entries that gives its size first
                count = -count
                _, offset = _varint(data, offset)
            for _ in range(count):
                entry = []
                for _ in range(2):
                    size, offset = _varint(data, offset)
                    if size < 0 or offset + size > len(data):
                        return None
                    entry.append(bytes(data[offset : offset + size]))
                    offset += size
                meta[entry[0]] = entry[1]
        schema = meta.get(b"avro.schema")
        if schema is None or offset + 16 > len(data):
            return None
        return schema, (meta.get(b"avro.codec") or b"null").decode("ascii"), offset + 16
    except (AvroInvalid, UnicodeDecodeError):
        return None


def _read_native(data: Bytes, offset: int, plan: _Plan, codec: str) -> pa.Table | None:
    """The container's records by the compiled helpers (``native/avro.c``), block by block,
    where its writer schema is a flat record they read (:func:`_native_fields`); None where
    it is not, a block does not inflate or is not exactly its records, or the helpers were
    not built: polars-avro reads it then. The columns are typed as polars-avro types them,
    so the rest of the fast path is the same. The 2 M benchmark's 889 k bids: polars-avro's
    reader 0.72 s of CPU (zlib's inflate in it ≈ 0.36 s); ISA-L's inflate 0.18 s and the
    helpers' two passes over the records ≈ 0.1 s each."""
    from advertisex import native

    fields, schema_out = plan.fields, plan.schema
    if fields is None or schema_out is None or codec not in ("null", "deflate"):
        return None
    layout = [field for _, field in fields]
    batches = []
    try:
        for _, count, body in _blocks(data, offset, data[offset - 16 : offset]):
            raw = _isal().decompress(body, -15) if codec == "deflate" else body
            columns = native.avro_block(raw, count, layout)
            if columns is None:
                return None
            batches.append(pa.record_batch(columns, schema=schema_out))
    except (AvroInvalid, _inflate_error()):
        return None
    return pa.Table.from_batches(batches, schema_out)


# Avro's types as polars-avro gives them (the fast path's reader), by ``native.AVRO_KINDS``:
# those the compiled reader reads (a field of type null alone is polars-avro's: a column
# Arrow cannot declare as polars-avro does).
_NATIVE_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "map": pa.map_(
        pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string(), nullable=False)
    ),
}
_NATIVE_TIMES = {
    "timestamp-millis": pa.timestamp("ms", tz="+00:00"),
    "timestamp-micros": pa.timestamp("us", tz="+00:00"),
}


def _native_fields(schema: Any) -> list[tuple[str, Any]] | None:
    """(name, ``native.AvroField``) of each field of a writer schema that ``avro.c`` reads —
    a record of booleans, numbers, strings and maps of strings, each maybe in a union with
    null, a ``long`` maybe a timestamp —, or None. A logical type on an unknown field,
    or any other, is left to polars-avro, as are named types and nested records."""
    from advertisex.native import AVRO_KINDS, AvroField

    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    out: list[tuple[str, Any]] = []
    for field in schema.get("fields", ()):
        name, kind = field.get("name"), field.get("type")
        null_branch = -1
        if isinstance(kind, list):
            if len(kind) != 2 or "null" not in kind or kind[0] == kind[1]:
                return None
            null_branch = kind.index("null")
            kind = kind[1 - null_branch]
        logical = None
        if isinstance(kind, dict):
            logical = kind.get("logicalType")
            if kind.get("type") == "map":
                values = kind.get("values")
                values = values.get("type") if isinstance(values, dict) else values
                if values != "string":
                    return None
            elif set(kind) - {"type", "logicalType"}:
                return None
            kind = kind.get("type")
        if not isinstance(name, str) or kind not in _NATIVE_TYPES:
            return None
        if any(n == name for n, _ in out):
            return None
        arrow = _NATIVE_TYPES[kind]
        if logical is not None:
            if kind != "long" or logical not in _NATIVE_TIMES or name != "timestamp":
                return None
            arrow = _NATIVE_TIMES[logical]
        out.append((name, AvroField(AVRO_KINDS.index(kind), null_branch, arrow)))
    return out


def _read_arrow(data: Bytes) -> pa.Table:
    """The container's records as Arrow, straight from polars-avro's reader (arrow-rs).

    ``polars_avro.read_avro`` builds a polars frame of each batch (its strings converted to
    string views) and ``to_arrow`` converts them back: a quarter of the decode's CPU (the
    2 M benchmark's 889 k bids: 0.85 s against 0.63 read here). Strings are read as
    ``read_avro`` reads them (``utf8_view=False``: a null stays null, a UUID stays bytes).
    """
    from polars_avro._avro_rs import AvroSource  # what read_avro reads with (version pinned)

    source = AvroSource([functools.partial(_Rewound, _file(data))], False, False)
    batches = [pa.record_batch(batch) for batch in source.batch_iter(_AVRO_BATCH_ROWS, None)]
    if batches:
        return pa.Table.from_batches(batches)
    return pa.record_batch(source.schema()).schema.empty_table()


_AVRO_BATCH_ROWS = 32768  # read_avro's own batch size


class _Rewound:
    """How polars-avro's reader opens a source: a context manager giving a seekable file
    at its start (it may open a source more than once)."""

    def __init__(self, file: pa.BufferReader) -> None:
        self.file = file

    def __enter__(self) -> pa.BufferReader:
        self.file.seek(0)
        return self.file

    def __exit__(self, *exc: object) -> None:
        return None


def _wide_union(schema: Any) -> bool:
    """Whether a union of two or more non-null types appears anywhere in ``schema`` (a
    parsed writer schema: a name, a union list, or a dict that may nest others)."""
    if isinstance(schema, list):
        return sum(branch != "null" for branch in schema) > 1 or any(map(_wide_union, schema))
    if not isinstance(schema, dict):
        return False
    nested = [field["type"] for field in schema.get("fields", ())]
    nested += [schema[key] for key in ("items", "values") if key in schema]
    if isinstance(schema.get("type"), list | dict):
        nested.append(schema["type"])
    return any(map(_wide_union, nested))


def _normalize(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    t = column.type
    if name == "timestamp":  # a typed time is :func:`_micros`'
        return column if pa.types.is_string(t) else column.cast(pa.string())
    if name == "ad_targeting":
        return column.cast(_TARGETING)
    if name in ("floor_price", "bid_price"):
        if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
            return column if t == pa.float64() else column.cast(pa.float64())
        return column.cast(pa.string())  # not a number: the kernel quarantines the record
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


def _slow(data: Bytes) -> pa.Table:
    """Record-by-record decoding that salvages everything before a damaged block."""
    import fastavro

    stream = _file(data)
    rows: list[Any] = []
    failure: tuple[int, str] | None = None
    unit = None
    try:
        reader = fastavro.reader(stream)
        schema, unit = _times_as_numbers(reader.writer_schema)
        if unit is not None and reader.codec in _INFLATE:
            offset = stream.tell()
            failure = _records_by_block(
                data, offset, fastavro.parse_schema(schema), reader.codec, rows
            )
        else:
            unit = None
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
                rows.append(record)
    except Exception as error:  # the header itself is unreadable
        return _error_table(data, 0, f"avro_unreadable: {type(error).__name__}: {error}")

    laid_out = [_layout(record, unit) for record in rows]
    out: dict[str, list[Any]] = {name: [] for name in BID_FIELDS}
    extras: list[str | None] = []
    raws: list[str | None] = []
    errors: list[str | None] = []
    for record, (values, misfit) in zip(rows, laid_out, strict=True):
        for name in BID_FIELDS:
            out[name].append(values.get(name))
        unknown = {k: v for k, v in record.items() if k not in out} if not misfit else {}
        extras.append(_json(unknown) if unknown else None)
        raws.append(_json(record) if misfit else None)
        errors.append(misfit)
    n = len(rows)
    table = pa.table(
        {
            **{name: _column(name, values) for name, values in out.items()},
            EXTRAS: pa.array(extras, pa.string()),
            RAW: pa.array(raws, pa.string()),
            POSITION: pa.array(range(1, n + 1), pa.int64()),
            FRAME_ERROR: pa.array(errors, pa.string()),
        }
    )
    if failure is not None:
        offset, message = failure
        tail = _error_table(data[offset:], n + 1, message)
        table = pa.concat_tables([table, tail.cast(table.schema)])  # the tail's columns are null
    return table


def _records_by_block(
    data: Bytes, offset: int, parsed: Any, codec: str, rows: list[Any]
) -> tuple[int, str] | None:
    """The container's records from ``offset`` on, block by block, into ``rows`` (decoded
    with ``parsed``: the writer schema, its typed time read as a number), and where and why
    the first block that does not read stops them (None: none)."""
    import fastavro

    blocks = _blocks(data, offset, data[offset - 16 : offset])
    resume = offset  # where the blocks not read whole begin: the unreadable rest's bytes
    try:
        for start, count, block in blocks:
            body = io.BytesIO(_INFLATE[codec](block, _SALVAGE_BLOCK_BYTES, start))
            for _ in range(count):
                rows.append(fastavro.schemaless_reader(body, parsed))
            resume = _block_end(data, start)
    except Exception as error:  # a corrupt or truncated block, a record that does not decode
        return resume, f"avro_unreadable: {type(error).__name__}: {error}"
    return None


def _block_end(data: Bytes, start: int) -> int:
    """Where the block that begins at ``start`` ends (after its sync marker)."""
    _, at = _varint(data, start)
    size, at = _varint(data, at)
    return at + size + 16


# An inflated block's most bytes on the record-by-record path (the decoder worker's memory
# budget bounds it before this does).
_SALVAGE_BLOCK_BYTES = 1 << 40


def _times_as_numbers(schema: Any) -> tuple[Any, str | None]:
    """``schema`` with its ``timestamp`` field's typed times read as their numbers, and
    their logical type (None: the field has no typed time, and ``schema`` is as it was).
    fastavro's own conversion raises on a time past the years 1-9999, and the salvage
    stopped at that record: every record after it set aside with the file's unreadable
    rest. Read as a number, :func:`_layout` makes the time, or quarantines the record."""
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        return schema, None
    units: list[str] = []

    def plain(kind: Any) -> Any:
        if isinstance(kind, list):
            return [plain(branch) for branch in kind]
        if isinstance(kind, dict) and kind.get("logicalType") in _TIME_UNITS:
            units.append(kind["logicalType"])
            return {k: v for k, v in kind.items() if k != "logicalType"}
        return kind

    fields = [
        field | {"type": plain(field["type"])}
        if isinstance(field, dict) and field.get("name") == "timestamp" and "type" in field
        else field
        for field in schema["fields"]
    ]
    if len(set(units)) != 1:  # none, or two units in one union: fastavro reads it as it was
        return schema, None
    return schema | {"fields": fields}, units[0]


# A typed time's microseconds a unit, and the times a bid may hold (the years 1-9999, as
# fastavro's datetimes and the kernel read them), in microseconds from 1970.
_TIME_UNITS = {"timestamp-millis": 1_000, "timestamp-micros": 1}
_FIRST_MICROS, _LAST_MICROS = -62_135_596_800_000_000, 253_402_300_799_999_999


def _time_text(value: int, unit: str) -> str | None:
    """A typed time (``value`` in ``unit`` from 1970) as ISO text, as fastavro's datetime
    prints it; None past the years 1-9999."""
    from datetime import UTC, datetime, timedelta

    micros = value * _TIME_UNITS[unit]
    if not _FIRST_MICROS <= micros <= _LAST_MICROS:
        return None
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)).isoformat()


def _layout(record: Any, unit: str | None = None) -> tuple[dict[str, Any], str | None]:
    """One decoded record's canonical values, or (nothing, why it is not a bid request);
    ``unit``: its typed time's, read as a number (:func:`_times_as_numbers`)."""
    if not isinstance(record, dict):
        kind = type(record).__name__
        return {}, f"type_invalid: an Avro {kind} value, not a bid-request record"
    values: dict[str, Any] = {}
    for name in BID_FIELDS:
        value = record.get(name)
        if value is None:
            values[name] = None
        elif name == "timestamp" and unit and type(value) is int:
            values[name] = _time_text(value, unit)
            if values[name] is None:
                return {}, _beyond_the_calendar(value, unit)
        elif name == "timestamp" and not isinstance(value, str):
            values[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        elif name == "ad_targeting":
            if not isinstance(value, dict) or not all(_scalar(v) for v in value.values()):
                return {}, "type_invalid: ad_targeting is not a map of strings"
            values[name] = [(str(k), None if v is None else str(v)) for k, v in value.items()]
        elif name in ("floor_price", "bid_price"):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            values[name] = float(value) if number else str(value)
        elif not _scalar(value):
            return {}, f"type_invalid: {name} is a {type(value).__name__}, not text"
        else:
            values[name] = str(value)
    return values, None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _column(name: str, values: list[Any]) -> pa.Array:
    """A canonical column; a price column with any non-number in it stays text."""
    if name in ("floor_price", "bid_price") and any(isinstance(v, str) for v in values):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.array(values, _default_type(name))


def _json(value: Any) -> str:
    from advertisex.util import jsonutil

    try:
        return jsonutil.dumps_str(value)
    except TypeError:
        return jsonutil.dumps_str(repr(value))


def _error_table(data: Bytes, position: int, message: str) -> pa.Table:
    """One record standing for bytes that could not be decoded; raw keeps them as base64."""
    columns: dict[str, pa.Array] = {name: pa.nulls(1, _default_type(name)) for name in BID_FIELDS}
    columns[EXTRAS] = pa.nulls(1, pa.string())
    columns[RAW] = pa.array([UNDECODED + base64.b64encode(data).decode()], pa.string())
    columns[POSITION] = pa.array([max(position, 1)], pa.int64())
    columns[FRAME_ERROR] = pa.array([message], pa.string())
    return pa.table(columns)


# ------------------------------------------------------------------ strict check


class AvroInvalid(ValueError):
    """The container is not a well-formed file of bid-request records; says where and why."""


def check_avro(data: bytes, max_decoded: int) -> int:
    """Records in ``data`` if it is a well-formed container of records; else :class:`AvroInvalid`.

    Well-formed: the header reads, the writer schema is a record, every block ends with the
    file's sync marker, inflates to at most ``max_decoded`` bytes in all (``null``,
    ``deflate`` and ``bzip2`` codecs) and holds exactly its declared records — no byte
    missing, none left over.
    """
    import fastavro

    from advertisex import native

    if not data.startswith(MAGIC):
        raise AvroInvalid("byte 0: not an Avro object container (no 'Obj\\x01' header)")
    stream = io.BytesIO(data)
    try:
        reader = fastavro.reader(stream)  # reads the header only
    except Exception as error:
        raise AvroInvalid(f"byte 0: unreadable Avro header ({error})") from None
    schema = reader.writer_schema
    if not isinstance(schema, dict) or schema.get("type") != "record":
        kind = schema.get("type") if isinstance(schema, dict) else schema
        raise AvroInvalid(f"the writer schema is {kind!r}, not a record of bid-request fields")
    inflate = _INFLATE.get(reader.codec)
    if inflate is None:
        accepted = ", ".join(_INFLATE)
        raise AvroInvalid(f"codec {reader.codec!r} is not accepted; write with {accepted}")
    # A time past the years 1-9999 is the processor's to quarantine (timestamp_invalid),
    # as any other field's value: read as its number, it frames.
    parsed = fastavro.parse_schema(_times_as_numbers(schema)[0])
    # Blocks of a schema the compiled reader takes are checked by it (≈ 1 µs a record
    # against fastavro's ≈ 12); one it refuses is read by fastavro, which says why.
    native_fields = _native_fields(schema)
    layout = None if native_fields is None else [field for _, field in native_fields]
    offset = stream.tell()
    sync = data[offset - 16 : offset]
    records = decoded = 0
    for start, count, block in _blocks(data, offset, sync):
        raw = inflate(block, max_decoded - decoded, start)
        decoded += len(raw)
        if count > len(raw):  # every bid-request record takes at least one byte
            raise AvroInvalid(f"byte {start}: {count} records declared in {len(raw)} bytes")
        if layout is not None and native.avro_fits(raw, count, layout):
            records += count
            continue
        body = io.BytesIO(raw)
        try:
            for _ in range(count):
                fastavro.schemaless_reader(body, parsed)
        except Exception as error:
            raise AvroInvalid(f"byte {start}: a record does not decode ({error})") from None
        if body.tell() != len(raw):
            left = len(raw) - body.tell()
            raise AvroInvalid(
                f"byte {start}: {left} byte(s) left after the block's {count} records"
            )
        records += count
    return records


def _blocks(data: Bytes, offset: int, sync: Bytes) -> Iterator[tuple[int, int, Bytes]]:
    """(byte offset, declared record count, body) of each block from ``offset`` on;
    :class:`AvroInvalid` for a truncated block, a corrupt header or a missing sync marker."""
    while offset < len(data):
        start = offset
        count, offset = _varint(data, offset)
        size, offset = _varint(data, offset)
        if count < 0 or size < 0 or offset + size + 16 > len(data):
            raise AvroInvalid(f"byte {start}: block is truncated or its header is corrupt")
        block, offset = data[offset : offset + size], offset + size
        if data[offset : offset + 16] != sync:
            raise AvroInvalid(f"byte {offset}: the block's sync marker is missing")
        offset += 16
        yield start, count, block


def _varint(data: Bytes, offset: int) -> tuple[int, int]:
    """A zig-zag varint ``long`` at ``offset`` (Avro's block header fields) and the offset after it."""
    value = shift = 0
    for index in range(offset, min(offset + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), index + 1
        shift += 7
    raise AvroInvalid(f"byte {offset}: block header is truncated or corrupt")


def long_bytes(value: int) -> bytes:
    """``value`` as Avro writes a ``long`` (zig-zag, then 7 bits a byte): :func:`_varint`
    the other way."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _isal() -> Any:
    """ISA-L's zlib module (the ``isal`` package): zlib's interface at twice its speed here
    (the 2 M benchmark's bid blocks: 0.36 → 0.18 s of CPU)."""
    from isal import isal_zlib

    return isal_zlib


def _inflate_error() -> type[Exception]:
    error: type[Exception] = _isal().error  # its stub declares an instance, not the class
    return error


def _inflate_null(block: Bytes, budget: int, start: int) -> bytes:
    return _within(bytes(block), budget, start)  # bytes of bytes is the same object


def _inflate_deflate(block: Bytes, budget: int, start: int) -> bytes:
    inflater = _isal().decompressobj(-15)
    try:
        return _within(inflater.decompress(block, max(budget, 0) + 1), budget, start)
    except _inflate_error() as error:
        raise AvroInvalid(f"byte {start}: deflate block is corrupt ({error})") from None


def _inflate_bzip2(block: Bytes, budget: int, start: int) -> bytes:
    try:
        return _within(bz2.BZ2Decompressor().decompress(block, max(budget, 0) + 1), budget, start)
    except (OSError, EOFError) as error:
        raise AvroInvalid(f"byte {start}: bzip2 block is corrupt ({error})") from None


def _within(raw: bytes, budget: int, start: int) -> bytes:
    if len(raw) > budget:
        raise AvroTooLarge(f"byte {start}: blocks inflate to more than the decoded-size limit")
    return raw


class AvroTooLarge(AvroInvalid):
    """The blocks inflate past the byte budget (a decompression bomb, or just too much)."""


_INFLATE = {"null": _inflate_null, "deflate": _inflate_deflate, "bzip2": _inflate_bzip2}
# A block's bytes as each codec above stores them (a rewritten block: formats.scrub).
COMPRESS = {
    "null": bytes,
    "deflate": lambda raw: bytes(_isal().compress(raw, wbits=-15)),  # a raw deflate stream
    "bzip2": bz2.compress,
}
