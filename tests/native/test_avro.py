"""The compiled Avro reader (``native/avro.c``) reads what polars-avro reads, or nothing.

Where it reads a container, its columns must be polars-avro's own — the same types, the
same values — for any flat record schema it takes (hypothesis writes them with fastavro,
in blocks of every size, deflated or not). Where a block is not exactly its records — a
byte short or left over, a text that is not UTF-8, a union branch or a boolean out of
range — it refuses, and the file is read as it was before it existed.
"""

from __future__ import annotations

import io
from pathlib import Path

import fastavro
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advertisex import native
from advertisex.formats import avrofmt
from advertisex.native import AVRO_KINDS, AvroField

pytestmark = pytest.mark.skipif(not native.available(), reason="the helpers were not built")

SEED_BIDS = Path(__file__).resolve().parents[3] / "shared" / "seed-samples" / "bid_requests.avro"

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_VALUES = {
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, width=32),
    "double": st.floats(allow_nan=False),
    "string": _TEXT,
    "map": st.dictionaries(_TEXT, _TEXT, max_size=4),
}
_TIMES = st.integers(-(2**40), 2**40)  # milliseconds or microseconds around 1970


@st.composite
def containers(draw: st.DrawFn) -> tuple[bytes, list[dict]]:
    """An Avro container of a flat record schema the compiled reader takes, and its records."""
    kinds = draw(st.lists(st.sampled_from(AVRO_KINDS[1:]), min_size=1, max_size=7))
    fields, makers = [], {}
    for i, kind in enumerate(kinds):
        name = "timestamp" if kind == "long" and draw(st.booleans()) else f"f{i}"
        if name in makers:
            name = f"f{i}"
        avro_type: object = {"type": "map", "values": "string"} if kind == "map" else kind
        value = _VALUES[kind]
        if name == "timestamp":
            logical = draw(st.sampled_from(["timestamp-millis", "timestamp-micros"]))
            avro_type, value = {"type": "long", "logicalType": logical}, _TIMES
        if draw(st.booleans()):  # a union with null, either way round
            avro_type = ["null", avro_type] if draw(st.booleans()) else [avro_type, "null"]
            value = st.none() | value
        fields.append({"name": name, "type": avro_type})
        makers[name] = value
    records = draw(st.lists(st.fixed_dictionaries(makers), max_size=40))
    schema = {"type": "record", "name": "R", "fields": fields}
    buffer = io.BytesIO()
    codec = draw(st.sampled_from(["null", "deflate"]))
    interval = draw(st.sampled_from([1, 64, 1000, 16000]))  # blocks of a record, or of many
    fastavro.writer(buffer, fastavro.parse_schema(schema), records, codec, interval)
    return buffer.getvalue(), records


def _native(data: bytes) -> pa.Table | None:
    stream = io.BytesIO(data)
    header = fastavro.block_reader(stream)
    plan = avrofmt._Plan.of(header.writer_schema)
    return avrofmt._read_native(data, stream.tell(), plan, header.codec)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(containers())
def test_the_compiled_reader_reads_what_polars_avro_reads(container) -> None:
    data, records = container
    table = _native(data)
    assert table is not None, "a schema of these kinds is the compiled reader's"
    expected = avrofmt._read_arrow(data)
    assert table.num_rows == len(records)
    assert table.schema == expected.schema
    assert table.equals(expected)


def test_the_seed_samples_and_the_generators_bids_are_read_by_it(tmp_path) -> None:
    """The files users bring (the AWS reference's sample) and the synthetic generator's."""
    import numpy as np

    from advertisex.synth.avro_out import writer_schema

    files = [SEED_BIDS.read_bytes()] if SEED_BIDS.exists() else []
    rng = np.random.default_rng(7)
    records = [
        {
            "auction_id": f"a{i}",
            "timestamp": 1_700_000_000_000 + int(rng.integers(0, 10**6)),
            "user_id": None if i % 7 == 0 else f"u{i % 13}",
            "exchange": "x",
            "site_domain": "news.example",
            "device_type": "mobile",
            "country": "US",
            "floor_price": float(rng.random()),
            "ad_targeting": {"age": "18-24", "interests": "tech,ütf"} if i % 3 else None,
            "bid_price": None if i % 5 == 0 else float(rng.random()),
            "campaign_id": "c1",
            "ad_creative_id": "cr1",
        }
        for i in range(500)
    ]
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(writer_schema()), records, "deflate", 4000)
    files.append(buffer.getvalue())
    for data in files:
        table = _native(data)
        assert table is not None
        assert table.equals(avrofmt._read_arrow(data))
    framed = avrofmt.frame_avro(files[-1])
    assert framed.column("auction_id").to_pylist() == [r["auction_id"] for r in records]
    assert framed.column("ad_targeting").to_pylist()[1] == [
        ("age", "18-24"),
        ("interests", "tech,ütf"),
    ]
    assert framed.column("timestamp").type == pa.timestamp("us", tz="UTC")


_STRING = AvroField(AVRO_KINDS.index("string"), -1, pa.string())
_MAYBE_STRING = AvroField(AVRO_KINDS.index("string"), 0, pa.string())
_BOOLEAN = AvroField(AVRO_KINDS.index("boolean"), -1, pa.bool_())
_INT = AvroField(AVRO_KINDS.index("int"), -1, pa.int32())
_MAP = AvroField(AVRO_KINDS.index("map"), -1, avrofmt._NATIVE_TYPES["map"])


@pytest.mark.parametrize(
    ("block", "count", "fields", "why"),
    [
        (b"\x06abc", 1, [_STRING], None),  # the one well-formed block here
        (b"\x06ab", 1, [_STRING], "a byte short"),
        (b"\x06abcd", 1, [_STRING], "a byte left over"),
        (b"\x06abc", 2, [_STRING], "fewer records than declared"),
        (b"\x05abc", 1, [_STRING], "a negative length"),
        (b"\x06a\xffc", 1, [_STRING], "not UTF-8"),
        (b"\x06\xed\xa0\x80", 1, [_STRING], "a surrogate"),
        (b"\x08\xc0\xaf\x41\x41", 1, [_STRING], "an overlong form"),
        (b"\x04\x06abc", 1, [_MAYBE_STRING], "a union's third branch"),
        (b"\x02", 1, [_BOOLEAN], "a boolean of 2"),
        (b"\x80\x80\x80\x80\x20", 1, [_INT], "an int past 32 bits"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 1, [_INT], "a varint past 64 bits"),
        (b"\x02\x02k\x02v", 1, [_MAP], "a map without its end"),
        (b"\x7f", 1, [_MAP], "a map of more items than bytes"),
        (b"\x06abc", 2**62, [_STRING], "more records than bytes"),
        (b"", 2**62, [], "records of no field"),
        (b"\x00", 1, [AvroField(0, -1, pa.null())], "a field of type null alone"),
    ],
)
def test_a_block_that_is_not_exactly_its_records_is_refused(block, count, fields, why) -> None:
    columns = native.avro_block(block, count, fields)
    if why is None:
        assert columns is not None and columns[0].to_pylist() == ["abc"]
    else:
        assert columns is None, why


def _container(fields: list[dict], blocks: list[tuple[int, bytes]]) -> bytes:
    """An uncompressed container of ``blocks`` (records, their bytes) written by hand, so
    that they may be what no Avro writer writes."""
    header = io.BytesIO()
    fastavro.writer(header, {"type": "record", "name": "R", "fields": fields}, [], "null")
    data = header.getvalue()
    sync = data[-16:]
    for count, body in blocks:
        data += _long(count) + _long(len(body)) + body + sync
    return data


def _long(value: int) -> bytes:
    zigzag, out = (value << 1) ^ (value >> 63), b""
    while zigzag > 0x7F:
        out, zigzag = out + bytes([zigzag & 0x7F | 0x80]), zigzag >> 7
    return out + bytes([zigzag])


def test_a_refused_file_is_read_as_it_was_before(monkeypatch) -> None:
    """A text that is not UTF-8 in the second block: the compiled reader refuses the file,
    which is framed exactly as without it (polars-avro refuses it too; the record-by-record
    path keeps the first block's records and flags the rest)."""
    data = _container(
        [{"name": "auction_id", "type": "string"}],
        [(2, b"\x04a1\x04a2"), (1, b"\x04\xff\xfe")],
    )
    assert _native(data) is None
    framed = avrofmt.frame_avro(data)
    monkeypatch.setattr(avrofmt, "_read_native", lambda *args: None)
    assert framed.equals(avrofmt.frame_avro(data))
    assert framed.column("auction_id").to_pylist()[:2] == ["a1", "a2"]
    assert framed.column("frame_error").to_pylist()[-1].startswith("avro_unreadable")


def test_the_collectors_strict_check_reads_blocks_by_the_compiled_reader(monkeypatch) -> None:
    """A well-formed body is checked without fastavro's record-by-record reading; a block
    the compiled reader refuses is read by fastavro, which says why it is not well-formed."""
    fields = [{"name": "auction_id", "type": "string"}, {"name": "n", "type": ["null", "long"]}]
    good = _container(fields, [(2, b"\x04a1\x00\x04a2\x02\x06"), (1, b"\x04a3\x00")])
    bad = _container(fields, [(2, b"\x04a1\x00\x04\xff\xfe\x00")])

    def no_fastavro(*args: object) -> None:
        raise AssertionError("read by fastavro")

    with monkeypatch.context() as patched:
        patched.setattr(fastavro, "schemaless_reader", no_fastavro)
        assert avrofmt.check_avro(good, 1 << 20) == 3
    with pytest.raises(avrofmt.AvroInvalid, match="a record does not decode"):
        avrofmt.check_avro(bad, 1 << 20)


def test_schemas_it_does_not_read_are_polars_avros() -> None:
    """A field of type null alone, an enum, a nested record, a logical type on an unknown
    field: left to polars-avro, which frames them as before."""
    others = [
        {"name": "x", "type": "null"},
        {"name": "x", "type": {"type": "enum", "name": "E", "symbols": ["a"]}},
        {"name": "x", "type": {"type": "record", "name": "N", "fields": []}},
        {"name": "x", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ]
    values = [None, "a", {}, 5]
    for field, value in zip(others, values, strict=True):
        schema = {
            "type": "record",
            "name": "R",
            "fields": [{"name": "auction_id", "type": "string"}, field],
        }
        buffer = io.BytesIO()
        fastavro.writer(buffer, schema, [{"auction_id": "a1", "x": value}])
        data = buffer.getvalue()
        assert _native(data) is None, field
        assert avrofmt.frame_avro(data).column("auction_id").to_pylist() == ["a1"]
