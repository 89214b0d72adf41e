import io
import json
from pathlib import Path

import avro.datafile
import avro.io
import avro.schema
import fastavro
import pyarrow as pa
import pytest

from advertisex.formats.avrofmt import frame_avro

CANONICAL = Path(__file__).resolve().parents[2] / "advertisex" / "model" / "bid_request.avsc"


def _fastavro_bytes(records, schema):
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), records)
    return buffer.getvalue()


def test_file_written_by_the_apache_avro_package():
    schema = avro.schema.parse(
        json.dumps(
            {
                "type": "record",
                "name": "BidRequest",
                "fields": [
                    {"name": "user_id", "type": "string"},
                    {"name": "auction_id", "type": "string"},
                    {"name": "timestamp", "type": "string"},
                    {"name": "new_field", "type": "int"},
                ],
            }
        )
    )
    buffer = io.BytesIO()
    writer = avro.datafile.DataFileWriter(buffer, avro.io.DatumWriter(), schema)
    writer.append(
        {"user_id": "u1", "auction_id": "a1", "timestamp": "2026-01-01T00:00:00", "new_field": 7}
    )
    writer.flush()
    frame = frame_avro(buffer.getvalue())
    row = frame.to_pylist()[0]
    assert row["auction_id"] == "a1" and row["timestamp"] == "2026-01-01T00:00:00"
    assert json.loads(row["extras"]) == {"new_field": 7}
    assert row["exchange"] is None


def test_canonical_schema_with_three_way_union_timestamp_uses_the_fallback():
    schema = json.loads(CANONICAL.read_text())
    data = _fastavro_bytes(
        [{"auction_id": "a", "timestamp": 1_700_000_000_000, "user_id": "u"}], schema
    )
    frame = frame_avro(data)
    assert frame.num_rows == 1
    assert frame.column("auction_id").to_pylist() == ["a"]
    assert frame.column("timestamp").to_pylist()[0].startswith("2023-11-14T22:13:20")


def test_a_schema_the_fast_path_cannot_read_goes_to_the_fallback_quietly(capfd):
    """polars-avro panics on a union of several non-null types (even nested in a map),
    printing the panic and a Python traceback; such files are not given to it at all."""
    schema = {
        "type": "record",
        "name": "BidRequest",
        "fields": [
            {"name": "auction_id", "type": "string"},
            {"name": "timestamp", "type": ["long", "string"]},
            {"name": "user_id", "type": "string"},
            {"name": "ad_targeting", "type": {"type": "map", "values": ["null", "long", "string"]}},
        ],
    }
    row = {"auction_id": "a", "timestamp": "2026-11-20T10:00:00Z", "user_id": "u"}
    data = _fastavro_bytes([{**row, "ad_targeting": {"age": "18-24"}}], schema)
    frame = frame_avro(data)
    assert frame.column("auction_id").to_pylist() == ["a"]
    assert frame.column("ad_targeting").to_pylist() == [[("age", "18-24")]]
    err = capfd.readouterr().err
    assert "panicked" not in err and "Traceback" not in err, err


def test_truncated_file_keeps_earlier_blocks_and_flags_the_rest():
    schema = {
        "type": "record",
        "name": "B",
        "fields": [
            {"name": "auction_id", "type": "string"},
            {"name": "user_id", "type": "string"},
            {"name": "timestamp", "type": "string"},
        ],
    }
    buffer = io.BytesIO()
    records = [
        {"auction_id": f"a{i}", "user_id": "u", "timestamp": "2026-01-01"} for i in range(100)
    ]
    fastavro.writer(buffer, fastavro.parse_schema(schema), records, sync_interval=200)
    data = buffer.getvalue()
    frame = frame_avro(data[: len(data) - 30])
    errors = frame.column("frame_error").to_pylist()
    assert errors[-1].startswith("avro_unreadable")
    good = [
        a for a, e in zip(frame.column("auction_id").to_pylist(), errors, strict=True) if e is None
    ]
    assert 0 < len(good) < 100
    assert good == [f"a{i}" for i in range(len(good))]
    assert frame.column("raw").to_pylist()[-1].startswith("base64:")


def test_not_avro_at_all():
    frame = frame_avro(b"hello")
    assert frame.num_rows == 1
    assert frame.column("frame_error")[0].as_py().startswith("avro_unreadable")


def test_the_fast_path_reads_what_polars_avro_read_avro_read(monkeypatch):
    """The fast path reads polars-avro's Arrow batches directly; every column, and the
    unknown fields' JSON (part of the payload hash), must be what ``read_avro().to_arrow()``
    gave — known fields of every layout, unknown fields of every Avro type."""
    import datetime as dt
    import decimal

    import polars_avro
    import pyarrow as pa

    from advertisex.formats import avrofmt

    schema = {
        "type": "record",
        "name": "Bid",
        "fields": [
            {"name": "auction_id", "type": "string"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "user_id", "type": ["null", "string"]},
            {"name": "exchange", "type": {"type": "enum", "name": "Ex", "symbols": ["a", "b"]}},
            {"name": "floor_price", "type": ["null", "int"]},
            {"name": "bid_price", "type": "float"},
            {"name": "ad_targeting", "type": {"type": "map", "values": ["null", "string"]}},
            {"name": "x_uuid", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "x_enum", "type": {"type": "enum", "name": "E", "symbols": ["p", "q"]}},
            {"name": "x_fixed", "type": {"type": "fixed", "name": "F", "size": 4}},
            {"name": "x_bytes", "type": "bytes"},
            {"name": "x_date", "type": {"type": "int", "logicalType": "date"}},
            {
                "name": "x_record",
                "type": {
                    "type": "record",
                    "name": "R",
                    "fields": [
                        {"name": "a", "type": "int"},
                        {"name": "b", "type": ["null", "string"]},
                    ],
                },
            },
            {"name": "x_array", "type": {"type": "array", "items": "string"}},
            {"name": "x_map", "type": {"type": "map", "values": "long"}},
            {
                "name": "x_decimal",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
            },
            {"name": "x_millis", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "x_bool", "type": ["null", "boolean"]},
            {"name": "x_double", "type": "double"},
            {"name": "x_time", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "x_local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
            {"name": "x_records", "type": {"type": "array", "items": "R"}},
            {"name": "x_maybe", "type": ["null", "R"]},
        ],
    }
    at = dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.UTC)
    records = [
        {
            "auction_id": f"a{i}",
            "timestamp": at,
            "user_id": None if i % 2 else f"u{i}",
            "exchange": "b",
            "floor_price": i if i % 3 else None,
            "bid_price": 1.5,
            "ad_targeting": {"k": "v", "n": None} if i % 2 else {},
            "x_uuid": f"12345678-1234-5678-1234-56781234567{i}",
            "x_enum": "q",
            "x_fixed": b"abcd",
            "x_bytes": b"\x00\x7f",
            "x_date": dt.date(2026, 1, 2),
            "x_record": {"a": i, "b": None},
            "x_array": ["a", "b"],
            "x_map": {"z": i},
            "x_decimal": decimal.Decimal("12.34"),
            "x_millis": at,
            "x_bool": None if i else True,
            "x_double": 2.0,
            "x_time": dt.time(1, 2, 3),
            "x_local": dt.datetime(2026, 1, 1, 1, 0, 0, 5),
            "x_records": [{"a": 2, "b": "c"}],
            "x_maybe": None if i else {"a": 3, "b": None},
        }
        for i in range(5)
    ]
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), records, codec="deflate")
    data = buffer.getvalue()

    def plain_strings(table):
        return table.cast(
            pa.schema(
                pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type)
                for f in table.schema
            )
        )

    direct = avrofmt._fast(data)  # the fast path itself: no fallback in between
    monkeypatch.setattr(
        avrofmt, "_read_arrow", lambda d: polars_avro.read_avro(pa.BufferReader(d)).to_arrow()
    )
    through_polars = avrofmt._fast(data)
    assert plain_strings(direct).equals(plain_strings(through_polars))
    extras = json.loads(direct.column("extras")[0].as_py())
    assert extras["x_record"] == {"a": 0, "b": None} and extras["x_enum"] == "q"
    assert direct.column("exchange").to_pylist() == ["b"] * 5


@pytest.mark.parametrize("canonical", [False, True])
def test_a_typed_time_past_the_microsecond_range_is_its_record_alone(canonical: bool) -> None:
    """A timestamp-millis of 2**62 (or -2**62) among good records: every record is framed,
    that one with no time and a ``timestamp_invalid`` framing error naming the value — in
    a time-or-null schema (the fast path: the column's cast to microseconds failed on it)
    and in the canonical schema (time, text or null: record by record, where fastavro's
    conversion of the time raised). Either way the file went on record by record and
    stopped there: every record after it set aside with the file's unreadable rest."""
    schema = json.loads(CANONICAL.read_text())
    if not canonical:  # as the generator and most producers write it
        for field in schema["fields"]:
            if field["name"] == "timestamp":
                field["type"] = ["null", {"type": "long", "logicalType": "timestamp-millis"}]
    good = {"auction_id": "a", "timestamp": 1_795_179_845_123, "user_id": "u"}
    stamps = [1_795_179_845_123, 2**62, 1_795_179_845_124, -(2**62), 1_795_179_845_125]
    records = [good | {"auction_id": f"a{n}", "timestamp": t} for n, t in enumerate(stamps)]
    frame = frame_avro(_fastavro_bytes(records, schema))
    assert frame.num_rows == 5
    errors = frame.column("frame_error").to_pylist()
    assert [e is None for e in errors] == [True, False, True, False, True]
    assert errors[1].startswith("timestamp_invalid: 4611686018427387904 ")
    assert errors[3].startswith("timestamp_invalid: -4611686018427387904 ")
    times = frame.column("timestamp").cast(pa.timestamp("us", tz="UTC")).to_pylist()
    assert times[1] is None and times[3] is None
    assert [times[n].timestamp() for n in (0, 2, 4)] == [
        1_795_179_845.123,
        1_795_179_845.124,
        1_795_179_845.125,
    ]


def test_a_truncated_file_of_typed_times_keeps_earlier_blocks_record_by_record() -> None:
    """The canonical schema with typed times, read block by block (times as numbers): a
    file cut short keeps every record of its whole blocks, in order, and the rest is one
    ``avro_unreadable`` record holding the bytes from the first block not read whole."""
    import base64

    schema = json.loads(CANONICAL.read_text())
    records = [
        {"auction_id": f"a{i}", "timestamp": 1_795_179_845_000 + i, "user_id": "u"}
        for i in range(100)
    ]
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), records, sync_interval=200)
    data = buffer.getvalue()
    frame = frame_avro(data[: len(data) - 30])
    errors = frame.column("frame_error").to_pylist()
    assert errors[-1].startswith("avro_unreadable") and all(e is None for e in errors[:-1])
    good = frame.column("auction_id").to_pylist()[:-1]
    assert 0 < len(good) < 100 and good == [f"a{i}" for i in range(len(good))]
    times = frame.column("timestamp").cast(pa.timestamp("us", tz="UTC")).to_pylist()[:-1]
    assert [t.timestamp() * 1000 for t in times] == [
        1_795_179_845_000 + i for i in range(len(good))
    ]
    rest = base64.b64decode(frame.column("raw").to_pylist()[-1].removeprefix("base64:"))
    assert data[: len(data) - 30].endswith(rest) and len(rest) < len(data) // 2


def test_the_header_is_read_as_fastavro_reads_it_and_its_plan_kept_per_schema() -> None:
    """A collector lands each request of bids as a container of its own: the header is
    read here and the schema's plan kept (fastavro parsed it again for every container);
    a header this reading cannot make out goes to fastavro, which says what is wrong."""
    import fastavro
    import pyarrow as pa

    from advertisex.formats import avrofmt
    from tests.hostile import avro_file, bid

    for codec in ("null", "deflate"):
        data = avro_file([bid(1), bid(2)], codec=codec)
        stream = pa.BufferReader(data)
        read = fastavro.block_reader(stream)
        schema, got_codec, offset = avrofmt._header(data)  # type: ignore[misc]
        assert (got_codec, offset) == (read.codec, stream.tell())
        assert read.metadata["avro.schema"].encode() == schema
        avrofmt._PLANS.clear()
        fresh = avrofmt.frame_avro(data)
        assert schema in avrofmt._PLANS
        assert avrofmt.frame_avro(data).equals(fresh)  # from the kept plan
    assert avrofmt._header(b"Obj\x01") is None
    assert avrofmt._header(b"Obj\x01\xfe\xff\xff\xff\x0f" + b"\x00" * 64) is None  # 2^31 entries
    assert avrofmt._header(b"Obj\x01\x02\x7f") is None  # a key longer than the data


def _flat(extra: str | None = None, logical: str | None = None) -> dict:
    """A flat bid schema the compiled reader reads (maybe a typed time, an unknown field)."""
    time: object = {"type": "long", "logicalType": logical} if logical else "string"
    fields = [
        {"name": "auction_id", "type": ["null", "string"]},
        {"name": "timestamp", "type": ["null", time]},
        {"name": "user_id", "type": ["null", "string"]},
        {"name": "floor_price", "type": ["null", "double"]},
        {"name": "ad_targeting", "type": ["null", {"type": "map", "values": "string"}]},
    ]
    if extra:
        fields.append({"name": extra, "type": ["null", "long"]})
    return {"type": "record", "name": "Bid", "fields": fields}


def test_containers_framed_together_are_framed_as_each_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``frame_avro_each``: containers of one schema read in one call of the compiled reader
    and cut apart give each container's own frame (positions from 1 in each, a time past
    the calendar a framing error of its record, unknown fields as extras); the others —
    another codec's blocks, a schema it does not read, not Avro at all, a truncated one —
    are framed alone, in their places."""
    import gzip

    from advertisex import native
    from advertisex.formats import avrofmt
    from tests.hostile import avro_file, bad_typed_avro, not_a_record_avro

    at = 1_763_632_800_000  # 2025-11-20T10:00:00Z in ms
    typed = _flat(logical="timestamp-millis")
    with_extra = _flat(extra="score")

    def typed_bids(k: int, n: int, codec: str = "null") -> bytes:
        rows = [
            {"auction_id": f"t{k}-{i}", "timestamp": at + i, "user_id": f"u{i}",
             "floor_price": 0.5 * i, "ad_targeting": {"seg": str(i)} if i % 2 else None}
            for i in range(n)
        ]  # fmt: skip
        return avro_file(rows, schema=typed, codec=codec)

    past = avro_file(
        [{"auction_id": "x", "timestamp": 4611686018427387904, "user_id": "u"}], schema=typed
    )
    extra = avro_file(
        [
            {"auction_id": f"e{i}", "timestamp": "2026-11-20T10:00:00Z", "score": i}
            for i in range(3)
        ],
        schema=with_extra,
        codec="deflate",
    )
    datas = [
        typed_bids(0, 5),
        typed_bids(1, 3, "deflate"),
        extra,
        past,
        bad_typed_avro(),  # a union the compiled reader does not read
        typed_bids(2, 1),
        not_a_record_avro(),
        b"not avro at all",
        typed_bids(3, 4)[:-20],  # truncated
        extra,
        typed_bids(4, 2, "deflate"),
        gzip.compress(typed_bids(5, 2)),  # framed alone: not un-gzipped here
    ]
    avrofmt._PLANS.clear()
    calls: list[int] = []
    read = native.avro_block
    monkeypatch.setattr(native, "avro_block", lambda raw, n, f: calls.append(n) or read(raw, n, f))
    together = avrofmt.frame_avro_each(datas)
    # The first typed container alone (its plan kept), then the other four in one call.
    assert calls.count(3 + 1 + 1 + 2) == 1
    monkeypatch.setattr(native, "avro_block", read)
    assert len(together) == len(datas)
    for data, frame in zip(datas, together, strict=True):
        assert isinstance(frame, pa.Table)
        assert frame.to_pylist() == avrofmt.frame_avro(data).to_pylist()
