"""A regression corpus of hostile inputs, shared by every test of a path they could hit.

Query escapes: SQL that tries to read a file outside the lake, write anywhere, change the
sandbox, load code or run more than it says. Every path that runs user SQL — ``ax.query``,
``advertisex query``, an HTTP query endpoint — must refuse each one without leaking the
secret or writing a byte. Use it as::

    places = escape_places(tmp_path, data_dir)
    for sql in escape_queries(places):
        answer = run_my_path(sql)             # must be a refusal (error), never rows
        assert_confined(answer, places)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SECRET = "s3cr3t-outside-the-lake"

# {secret}: a readable file outside the lake; {outside}: its folder; {target}: a path
# outside the lake that must never be created; {catalog}: the lake's catalog database;
# {lake_file}: a file inside the lake, which must not be overwritten.
ESCAPE_QUERIES: tuple[str, ...] = (
    # writes, including the comment trick that fooled a first-words check
    "explain /* c */ analyze copy (select 42) to '{target}'",
    "EXPLAIN ANALYZE COPY (SELECT 42) TO '{target}'",
    "explain (analyze) copy (select 42) to '{target}'",
    "explain ( /* ) */ analyze ) copy (select 42) to '{target}'",
    "/* select */ copy (select 42) to '{target}'",
    "copy (select 42) to '{target}'",
    "copy (select 42) to '{catalog}' (format csv, use_tmp_file false)",
    "copy (select 42) to '{lake_file}' (format parquet, use_tmp_file false)",
    "export database '{outside}/export'",
    "select 1; copy (select 42) to '{target}'",
    "select 1;copy(select 42)to'{target}'",
    "prepare p as copy (select 42) to '{target}'; execute p",
    "create table t as select 42",
    "create secret s (type s3, key_id 'k', secret 'v')",
    "create persistent secret s (type s3, key_id 'k', secret 'v')",
    "create macro m() as 1",
    "insert into ops.batches select * from ops.batches",
    "drop view curated.impressions",
    "checkpoint",
    "vacuum",
    # reads outside the lake
    "select * from read_text('{secret}')",
    "select content from read_text(['{secret}'])",
    "select * from read_blob('{secret}')",
    "select * from read_csv('{secret}', header = false)",
    "select * from read_csv_auto('{secret}')",
    "select * from read_json('{secret}')",
    "select * from read_parquet('{secret}')",
    "select * from sniff_csv('{secret}')",
    "select * from '{secret}'",
    'select * from "{secret}"',
    "select * from read_text('file://{secret}')",
    "select * from read_text('{outside}/*')",
    "select * from glob('{outside}/*')",
    "select * from glob('/*')",
    "select * from read_text('{lake_file}/../../../../../../../..{secret}')",
    "with x as (select * from read_text('{secret}')) select * from x",
    "select (select content from read_text('{secret}')) as c",
    "select * from query('select * from read_text(''{secret}'')')",
    "select * from query_table('{secret}')",
    "call glob('{outside}/*')",
    "pragma database_list",
    # the sandbox itself, other databases, code
    "set enable_external_access = true; select * from read_text('{secret}')",
    "reset enable_external_access",
    "set allowed_directories = ['/']",
    "set allowed_paths = ['{secret}']",
    "set lock_configuration = false",
    "set temp_directory = '{outside}'",
    "pragma enable_profiling = 'json'",
    "attach '{target}' as x",
    "attach '{catalog}' as c (type sqlite)",
    "attach ':memory:' as m",
    "detach memory",
    "use memory",
    "install httpfs",
    "load httpfs",
    "load '{target}'",
    "force install sqlite from 'http://127.0.0.1:9/'",
    "begin transaction",
)


@dataclass(frozen=True)
class EscapePlaces:
    secret: Path
    target: Path
    catalog: Path
    lake_file: Path
    fingerprints: dict[Path, str]  # lake files that must stay byte for byte as they were

    def fields(self) -> dict[str, str]:
        return {
            "secret": str(self.secret),
            "outside": str(self.secret.parent),
            "target": str(self.target),
            "catalog": str(self.catalog),
            "lake_file": str(self.lake_file),
        }


def escape_places(outside: Path, data_dir: Path) -> EscapePlaces:
    """A secret file in ``outside`` (not in the lake) and the lake files to watch.

    The lake under ``data_dir`` must hold at least one committed data file.
    """
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    catalog = data_dir / "catalog.db"
    lake_file = min((data_dir / "warehouse").rglob("*.parquet"))
    watched = (catalog, lake_file)
    return EscapePlaces(
        secret=secret,
        target=outside / "written.csv",
        catalog=catalog,
        lake_file=lake_file,
        fingerprints={p: _digest(p) for p in watched},
    )


def escape_queries(places: EscapePlaces) -> list[str]:
    fields = places.fields()
    return [sql.format(**fields) for sql in ESCAPE_QUERIES]


def assert_confined(answer: str, places: EscapePlaces) -> None:
    """Nothing leaked into ``answer`` (the text a path returned), nothing written anywhere."""
    assert SECRET not in answer, answer
    assert not places.target.exists(), f"{places.target} was written"
    assert not (places.secret.parent / "export").exists()
    for path, digest in places.fingerprints.items():
        assert _digest(path) == digest, f"{path} changed"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- hostile bodies and files

BID_SCHEMA = {
    "type": "record",
    "name": "BidRequest",
    "fields": [
        {"name": "auction_id", "type": "string"},
        {"name": "timestamp", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "floor_price", "type": ["null", "double", "string"], "default": None},
    ],
}


_PRICE = {"name": "floor_price", "type": ["null", "double"], "default": None}


def bid(i: int, **fields: object) -> dict[str, object]:
    return {
        "auction_id": f"a{i}",
        "timestamp": "2026-11-20T10:00:00Z",
        "user_id": f"u{i}",
        "floor_price": 0.5,
        **fields,
    }


def avro_file(records: list, schema: object = BID_SCHEMA, codec: str = "null") -> bytes:
    import io

    import fastavro

    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec=codec)
    return out.getvalue()


def poison_avro() -> bytes:
    """One well-formed record, then a stray byte inside its block (the block's size says so).

    Framing checks pass (sync markers in place); polars-avro spins on it at 100 % CPU.
    """
    plain = {**BID_SCHEMA, "fields": [*BID_SCHEMA["fields"][:3], _PRICE]}  # polars-avro reads it
    data = avro_file([bid(1000)], schema=plain)
    header_end = _first_block(data)
    _, after_count = _varint(data, header_end)
    size, body = _varint(data, after_count)
    return (
        data[:after_count]
        + _zigzag(size + 1)
        + data[body : body + size]
        + b"\x00"
        + data[body + size :]
    )


def bad_typed_avro(n: int = 10, bad: int = 3) -> bytes:
    """``n`` bid requests, of which record ``bad`` has ``floor_price = "abc"``."""
    return avro_file([bid(i, floor_price="abc" if i == bad else 1.5) for i in range(n)])


def not_a_record_avro() -> bytes:
    """A valid container whose writer schema is a string, not a record."""
    return avro_file(["not", "a", "record"], schema="string")


def deep_avro(depth: int = 2000) -> bytes:
    """A bid request whose extra field holds a record of its own type, ``depth`` levels deep:
    valid Avro, and more levels than Python renders (the processor's decoder raised
    RecursionError on it)."""
    schema = {
        **BID_SCHEMA,
        "name": "Nested",
        "fields": [*BID_SCHEMA["fields"], {"name": "inner", "type": ["null", "Nested"]}],
    }
    # Each level names its branch of the union, ``("Nested", record)``: left to choose,
    # fastavro checks the whole record below against each branch, at every level — 2,000
    # levels took 5-20 s, in every pytest worker, since the test's parameters hold the bytes
    # and are made when the tests are collected. The bytes are the same.
    inner: tuple[str, dict[str, object]] | None = None
    for i in range(depth):
        inner = ("Nested", {**bid(i), "inner": inner})
    assert inner is not None
    return avro_file([inner[1]], schema=schema)


def avro_deflate_bomb(inflated: int) -> bytes:
    """A small deflate-coded container whose one block inflates to about ``inflated`` bytes.

    Built by hand around a real header (writing the record with fastavro would first make
    the whole string in memory): one bid request whose ``auction_id`` is ``inflated`` bytes.
    """
    template = avro_file([bid(1)], codec="deflate")
    start = _first_block(template)
    sync = template[start - 16 : start]
    rest = avro_file([bid(1)], codec="null")  # the record's other fields, uncompressed
    record_start = _varint(rest, _varint(rest, _first_block(rest))[1])[1]
    first_len, after = _varint(rest, record_start)
    tail = rest[after + first_len : len(rest) - 16]  # fields after auction_id
    size = _chunks(inflated) * _CHUNK
    block = _deflated([_zigzag(size), b"a" * _CHUNK, tail], repeat_middle=size // _CHUNK)
    return template[:start] + _zigzag(1) + _zigzag(len(block)) + block + sync


def damaged_gzip(sound: bytes, lost: bytes) -> tuple[bytes, bytes]:
    """A file of two gzip members, ``sound`` and ``lost`` with a byte flipped in its middle:
    the file, and the damaged member."""
    import gzip

    member = bytearray(gzip.compress(lost))
    member[len(member) // 2] ^= 0xFF
    return gzip.compress(sound) + bytes(member), bytes(member)


def gzip_bomb(inflated: int) -> bytes:
    """One gzip member of about ``inflated`` zero bytes."""
    import struct
    import zlib

    count = _chunks(inflated)
    zeros = bytes(_CHUNK)
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    body = _deflated([b"", zeros, b""], repeat_middle=count)
    return header + body + struct.pack("<II", crc, (count * _CHUNK) & 0xFFFFFFFF)


_CHUNK = 16 << 20


def _chunks(inflated: int) -> int:
    return max(1, inflated // _CHUNK)


def _deflated(parts: list[bytes], repeat_middle: int) -> bytes:
    """Raw deflate of ``head + middle * repeat_middle + tail`` without compressing every copy:
    after a full flush the compressor starts afresh, so the copies compress alike."""
    import zlib

    head, middle, tail = parts
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [deflater.compress(head) + deflater.flush(zlib.Z_FULL_FLUSH)]
    once = deflater.compress(middle) + deflater.flush(zlib.Z_FULL_FLUSH)
    out.append(once * repeat_middle)
    out.append(deflater.compress(tail) + deflater.flush())
    return b"".join(out)


def _first_block(data: bytes) -> int:
    import io

    import fastavro

    stream = io.BytesIO(data)
    fastavro.reader(stream)
    return stream.tell()


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), offset
        shift += 7


def _zigzag(value: int) -> bytes:
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while encoded & ~0x7F:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)
