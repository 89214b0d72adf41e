import io
import json
from pathlib import Path

import avro.datafile
import avro.io
import avro.schema
import fastavro

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
