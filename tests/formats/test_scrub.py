"""Records that mention a forgotten id leave a file; the rest stays, in the same format."""

from __future__ import annotations

import gzip
import io
from typing import Any

import fastavro
import pyarrow as pa
import pytest

from advertisex.formats.decode import DECODERS
from advertisex.formats.scrub import mention_pattern, mentioned, mentions, scrub, scrub_lines


def test_a_mention_is_a_whole_value_not_part_of_a_longer_one() -> None:
    import pyarrow as pa

    texts = pa.array(['{"user_id":"u1"}', "2026,u1,c", "u12", "xu1", None, "u1"])
    assert mentions(texts, ["u1"]).to_pylist() == [True, True, False, False, False, True]
    assert "u\\.1" in mention_pattern(["u.1"])  # ids are literal text, not patterns


def test_an_id_is_found_however_json_or_csv_escapes_it() -> None:
    # json.dumps writes "jos\u00e9", other writers upper-case hex; CSV doubles a quote.
    lines = (
        b'{"user_id":"jos\\u00e9","n":1}\n{"user_id":"jose"}\n{"user_id":"jos\\u00E9"}\n'
        b'{"note":"friend of \\ud83d\\ude00 and q\\"uote"}\n{"user_id": "a\\\\b"}\n'
    )
    done = scrub(lines, "json", ["jos\u00e9", "\U0001f600", 'q"uote', "a\\b"])
    assert done.data == b'{"user_id":"jose"}\n'
    assert done.by_id == {"jos\u00e9": 2, "\U0001f600": 1, 'q"uote': 1, "a\\b": 1}
    rows = b'user_id,n\n"q""uote",1\nq,2\n'
    assert scrub(rows, "csv", ['q"uote']).data == b"user_id,n\nq,2\n"
    assert scrub_lines(b'{"user_id": "jos\\u00e9", broken\nx\n', ["jos\u00e9"]).data == b"x\n"


def test_json_lines_arrays_and_concatenated_objects() -> None:
    data = b'{"user_id":"u1","n":1}\n{"user_id":"u12"}\r\n\n{"user_id":"u2"}{"user_id":"u1"}\n'
    done = scrub(data, "json", ["u1"])
    assert done.removed == 2 and done.by_id == {"u1": 2}
    assert done.data == b'{"user_id":"u12"}\r\n\n{"user_id":"u2"}\n'  # the rest as it was
    array = scrub(b'[{"user_id":"u1"},{"user_id":"u3"}]', "json", ["u1"])
    assert array.data == b'{"user_id":"u3"}\n'
    untouched = scrub(data, "json", ["nobody"])
    assert untouched.removed == 0 and untouched.data is data


def test_csv_keeps_its_header_bom_and_quoted_newlines() -> None:
    data = (
        b"\xef\xbb\xbftimestamp;user_id;campaign_id;event_type\r\n"
        b'1;u1;c;click\r\n2;"u2\nstill u2";c;click\r\n3;u3;c;conversion\r\n'
    )
    done = scrub(data, "csv", ["u1", "u3"])
    assert done.by_id == {"u1": 1, "u3": 1}
    assert (
        done.data
        == b'\xef\xbb\xbftimestamp;user_id;campaign_id;event_type\n2;"u2\nstill u2";c;click\n'
    )
    frame = DECODERS[("clicks", "csv")](done.data)
    assert frame.column("user_id").to_pylist() == ["u2\nstill u2"]


def _bids_avro(fields: dict[str, object], records: list[dict], codec: str = "null") -> bytes:
    """An Avro container of ``records`` whose schema has ``fields`` (name → type)."""
    schema = {
        "type": "record",
        "name": "Bid",
        "fields": [{"name": name, "type": kind} for name, kind in fields.items()],
    }
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec=codec)
    return out.getvalue()


def test_avro_keeps_its_schema_and_codec_and_gzip_stays_gzip() -> None:
    fields = {
        "auction_id": "string",
        "user_id": "string",
        "targeting": {"type": "map", "values": "string"},
    }
    records = [
        {"auction_id": "a1", "user_id": "u1", "targeting": {}},
        {"auction_id": "a2", "user_id": "u2", "targeting": {"ref": "u1"}},
        {"auction_id": "a3", "user_id": "u3", "targeting": {}},
    ]
    done = scrub(gzip.compress(_bids_avro(fields, records, "deflate")), "avro", ["u1"])
    assert done.removed == 2
    reader = fastavro.reader(io.BytesIO(gzip.decompress(done.data)))
    assert reader.codec == "deflate" and [r["auction_id"] for r in reader] == ["a3"]


def test_unframeable_bytes_lose_the_lines_that_mention_the_id() -> None:
    done = scrub_lines(b"garbage u1 here\nother\n\x00u1\x00\n", ["u1"])
    assert done.data == b"other\n" and done.removed == 2


def test_a_gzip_file_that_never_names_the_id_comes_back_as_it_was() -> None:
    data = gzip.compress(b"timestamp,user_id,campaign_id,event_type\n1,u2,c,click\n")
    untouched = scrub(data, "csv", ["u1"])
    assert untouched.removed == 0 and untouched.data is data


def test_json_lines_far_apart_in_a_long_file_and_an_id_at_its_very_end() -> None:
    filler = b"".join(b'{"user_id":"u%d"}\n' % n for n in range(2, 2000))
    data = b'{"user_id":"u1"}\n' + filler + b'{"ref":"x"}{"user_id":"u1"}\n' + filler + b"u1"
    done = scrub(data, "json", ["u1"])
    assert done.removed == 3 and done.by_id == {"u1": 3}
    assert done.data == filler + b'{"ref":"x"}\n' + filler


def test_avro_ids_that_repr_would_escape_are_still_found() -> None:
    schema = fastavro.parse_schema(
        {"type": "record", "name": "R", "fields": [{"name": "user_id", "type": "string"}]}
    )
    ids = ["it's", 'say "hi"', "back\\slash", "tab\there", "héllo"]
    records = [{"user_id": i} for i in [*ids, "keep"]]
    for one in ids:
        out = io.BytesIO()
        fastavro.writer(out, schema, records)
        done = scrub(out.getvalue(), "avro", [one])
        left = [r["user_id"] for r in fastavro.reader(io.BytesIO(done.data))]
        assert done.removed == 1 and one not in left and "keep" in left, one


def _corrupt_gzip(text: bytes) -> bytes:
    """``text`` gzip'd, a byte flipped three quarters of the way in: zlib fails there."""
    member = bytearray(gzip.compress(text, mtime=0))
    member[len(member) * 3 // 4] ^= 0xFF
    return bytes(member)


def test_bytes_kept_undecoded_are_looked_into_for_the_ids() -> None:
    """A ``gzip_damaged`` record's raw text is its damaged member in base64, an
    ``avro_unreadable`` one's the container's undecoded bytes: a forgotten id in them is
    found in the bytes, in what a damaged gzip inflates to before the damage, and in an
    Avro tail's deflated blocks — not in the base64 text itself."""
    import base64

    import pyarrow as pa

    from advertisex.formats.scrub import mentioned

    lines = b"".join(b'{"user_id":"u%d","n":%d}\n' % (n % 7, n) for n in range(2000))
    damaged = _corrupt_gzip(lines)
    with pytest.raises(OSError):  # BadGzipFile: its CRC fails
        gzip.decompress(damaged)
    from advertisex.formats.avrofmt import _header
    from tests.hostile import avro_file, bid

    container = avro_file([bid(n, user_id="u1") for n in range(50)], codec="deflate")
    first_block = _header(container)[2]
    assert b"u1" not in container[first_block:]  # only in its deflated blocks
    tail = container[first_block:]  # what an avro_unreadable record keeps of a broken block on
    texts = [
        "base64:" + base64.b64encode(damaged).decode(),  # u1 before the damage
        "base64:" + base64.b64encode(_corrupt_gzip(b'{"user_id":"u9"}\n' * 50)).decode(),
        "base64:" + base64.b64encode(container).decode(),  # header and deflated blocks
        "base64:" + base64.b64encode(tail).decode(),  # deflated blocks without a header
        "base64:" + base64.b64encode(b"Obj\x01 garbage u1 here").decode(),
        '{"user_id":"u1"}',
        None,
    ]
    found = mentions(pa.array(texts), ["u1"]).to_pylist()
    assert found == [True, False, True, True, True, True, False]
    assert [mentioned(t, ["u1", "u9"]) for t in texts[:5]] == [
        ["u1"],
        ["u9"],
        ["u1"],
        ["u1"],
        ["u1"],
    ]


def test_a_damaged_gzip_file_loses_the_ids_records_and_a_rest_that_names_them() -> None:
    sound = b'{"user_id":"u1"}\n{"user_id":"u2"}\n'
    naming = _corrupt_gzip(b"".join(b'{"user_id":"u1","n":%d}\n' % n for n in range(2000)))
    other = _corrupt_gzip(b"".join(b'{"user_id":"u3","n":%d}\n' % n for n in range(2000)))

    done = scrub(gzip.compress(sound) + naming, "json", ["u1"])
    assert done.removed == 2 and done.by_id == {"u1": 2}
    assert gzip.decompress(done.data) == b'{"user_id":"u2"}\n'  # the rest named u1: gone

    done = scrub(gzip.compress(sound) + other, "json", ["u1"])
    assert done.removed == 1 and done.data.endswith(other)  # the rest kept as it was
    assert gzip.decompress(done.data[: -len(other)]) == b'{"user_id":"u2"}\n'

    untouched = gzip.compress(b'{"user_id":"u2"}\n') + other
    assert scrub(untouched, "json", ["u1"]).data is untouched


def test_typed_fields_never_name_a_user_and_the_user_field_always_does() -> None:
    import pyarrow as pa

    at = '"timestamp":"2026-11-05T10:42:00Z"'
    lines = (
        b"{" + at.encode() + b',"user_id":42,"cost":42}\n'  # the user 42, as a number
        b"{" + at.encode() + b',"user_id":"u2","cost":42,"device_type":"mobile"}\n'
        b'{"user_id":"u3","note":{"seen with":["mobile", "42"]}}\n'  # a free field names both
        b'{"user_id":"u4","user_id":"42"}\n'  # a key written twice: either value counts
        b'{"user_id":"u5","votes":42}\n'  # a number in a free field names no one
    )
    done = scrub(lines, "json", ["42", "mobile"])
    assert done.by_id == {"42": 3, "mobile": 1} and done.removed == 3
    assert done.data == lines.splitlines(keepends=True)[1] + lines.splitlines(keepends=True)[4]

    rows = (
        b"timestamp,user_id,campaign_id,event_type,conversion_value,ref\n"
        b"2026-11-05T10:42:00Z,u1,42,click,42,\n"  # typed columns only: stays
        b"2026-11-05T10:43:00Z,42,c,click,,\n"  # the user
        b"2026-11-05T10:44:00Z,u2,c,click,,friend 42\n"  # an unknown column names them
        b"2026-11-05T10:45:00Z,u3,c,42\n"  # columns cannot be told: its text's words
    )
    csv_done = scrub(rows, "csv", ["42"])
    assert csv_done.removed == 3 and csv_done.by_id == {"42": 3}
    assert csv_done.data.splitlines()[1:] == [rows.splitlines()[1]]

    texts = pa.array([f'{{{at},"user_id":"u9"}}', "2026,42,c", '{"user_id":" 42 "}'])
    assert mentions(texts, ["42"]).to_pylist() == [False, True, True]


def test_avro_records_kept_are_copied_as_their_bytes_not_encoded_again(monkeypatch) -> None:
    """A block holding an id: only the records whose bytes hold it are decoded, the others
    copied as they were (``avro.c`` tells where each starts, else fastavro reading them) —
    the same records either way, the untouched blocks byte for byte."""
    from advertisex import native
    from advertisex.formats import scrub as scrubbing

    fields = {
        "auction_id": "string",
        "user_id": ["null", "string"],
        "bid_price": ["double", "null"],
        "ts": "long",
        "segment": "string",
        "targeting": {"type": "map", "values": "string"},
    }
    records = [
        {
            "auction_id": f"a{n}",
            "user_id": None if n % 7 == 0 else ("u1" if n in (0, 1, 250, 499) else f"v{n}"),
            "bid_price": None if n % 5 == 0 else n / 3,
            "ts": n * 1_000_003,
            "segment": "fans of u1" if n == 333 else "x",
            "targeting": {"k": "v"} if n % 2 else {},
        }
        for n in range(1000)
    ]
    out = io.BytesIO()
    schema = {
        "type": "record",
        "name": "Bid",
        "fields": [{"name": n, "type": t} for n, t in fields.items()],
    }
    fastavro.writer(
        out, fastavro.parse_schema(schema), records, codec="deflate", sync_interval=4000
    )
    data = out.getvalue()
    blocks = [b.num_records for b in fastavro.block_reader(io.BytesIO(data))]
    assert len(blocks) > 4
    monkeypatch.setattr(native, "avro_record_starts", lambda *a: None)  # fastavro's reading
    slow = scrub(data, "avro", ["u1"])
    monkeypatch.undo()
    if not native.available():
        pytest.skip("the compiled helpers are not built here")

    monkeypatch.setattr(scrubbing, "named_in_fields", _counted(scrubbing.named_in_fields))
    fast = scrub(data, "avro", ["u1"])
    assert fast.removed == slow.removed == 4 and fast.by_id == slow.by_id == {"u1": 4}
    assert _judged.count <= 6  # the records u1's bytes are in, not 1,000
    kept = list(fastavro.reader(io.BytesIO(fast.data)))
    assert kept == list(fastavro.reader(io.BytesIO(slow.data)))
    assert [r["auction_id"] for r in kept] == [
        f"a{n}" for n in range(1000) if n not in (1, 250, 333, 499)
    ]  # a0's user is null (n % 7 == 0): only its bytes are not u1's
    # The header, its sync marker and every block without u1 are the bytes they were.
    header = fastavro.block_reader(io.BytesIO(data))
    first = len(data) - sum(len(b) for b in _block_bytes(data))
    assert fast.data[:first] == data[:first] and header.codec == "deflate"
    kept_whole = [b for b in _block_bytes(data) if b in _block_bytes(fast.data)]
    assert len(_block_bytes(fast.data)) == len(blocks) and len(kept_whole) == len(blocks) - 4


def test_an_avro_block_of_only_the_users_records_goes_whole() -> None:
    fields = {"auction_id": "string", "user_id": "string"}
    records = [{"auction_id": f"a{n}", "user_id": "u1" if n < 3 else "u2"} for n in range(6)]
    for codec in ("null", "deflate", "bzip2"):
        out = io.BytesIO()
        schema = fastavro.parse_schema(
            {
                "type": "record",
                "name": "Bid",
                "fields": [{"name": n, "type": t} for n, t in fields.items()],
            }
        )
        fastavro.writer(out, schema, records[:3], codec=codec)
        fastavro.writer(out, schema, records[3:], codec=codec)  # appended: a second block
        done = scrub(out.getvalue(), "avro", ["u1"])
        assert done.removed == 3 and len(_block_bytes(done.data)) == 1
        reader = fastavro.reader(io.BytesIO(done.data))
        assert reader.codec == codec and [r["auction_id"] for r in reader] == ["a3", "a4", "a5"]


def _block_bytes(container: bytes) -> list[bytes]:
    """Each block of an Avro container as its bytes (count, size, body, sync marker)."""
    from advertisex.formats.avrofmt import _blocks, _header

    header = _header(container)
    assert header is not None
    first = header[2]
    read = list(_blocks(container, first, container[first - 16 : first]))
    ends = [start for start, _, _ in read[1:]] + [len(container)]
    return [container[start:end] for (start, _, _), end in zip(read, ends, strict=True)]


class _judged:
    count = 0


def _counted(function):  # type: ignore[no-untyped-def]
    _judged.count = 0

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        _judged.count += 1
        return function(*args, **kwargs)

    return counted


def test_avro_typed_fields_never_name_a_user() -> None:
    fields = dict.fromkeys(("auction_id", "user_id", "device_type", "segment"), "string")
    records = [
        {"auction_id": "a1", "user_id": "u1", "device_type": "mobile", "segment": "x"},
        {"auction_id": "a2", "user_id": "mobile", "device_type": "ctv", "segment": "x"},
        {"auction_id": "a3", "user_id": "u3", "device_type": "ctv", "segment": "mobile fans"},
    ]
    done = scrub(_bids_avro(fields, records), "avro", ["mobile"])
    assert done.removed == 2
    assert [r["auction_id"] for r in fastavro.reader(io.BytesIO(done.data))] == ["a1"]


def test_many_ids_are_found_as_few_are_whatever_their_characters() -> None:
    """An erasure of thousands of ids finds them by one pass over each file and a look-up
    per word (formats.scrub.Forgotten): the same records as an erasure of one."""
    from advertisex.formats.scrub import Forgotten

    odd = ["jos\u00e9", "a b", 'q"uote', "x.y@z"]
    many = Forgotten([*(f"u{k}" for k in range(5000)), *odd])
    lines = b"".join(
        [
            b'{"user_id":"u17"}\n',  # plain, the user field
            b'{"user_id":"u5000"}\n',  # not one of them (u500 and u5000 differ)
            b'{"user_id":"jos\\u00e9"}\n',  # non-ASCII, as JSON escapes it
            b'{"user_id":"nobody","note":"met a b"}\n',  # a free field, an id with a space
            b'{"user_id":"q\\"uote"}\n',
            b'{"user_id":"x.y@z","cost":17}\n',
            b'{"user_id":"w","campaign_id":"u17"}\n',  # a typed field: stays
        ]
    )
    done = scrub(lines, "json", many)
    assert done.by_id == {"u17": 1, "jos\u00e9": 1, "a b": 1, 'q"uote': 1, "x.y@z": 1}
    assert done.data == b'{"user_id":"u5000"}\n{"user_id":"w","campaign_id":"u17"}\n'
    texts = ["2026,u42,c", "u42x", "jos\u00e9 was here", None, '{"user_id":"u4999"}']
    import pyarrow as pa

    assert mentions(pa.array(texts), many).to_pylist() == [True, False, True, False, True]


def test_a_text_columns_rows_are_judged_the_same_however_its_buffers_lie() -> None:
    """The column's bytes are searched at once (formats.scrub._candidates): a slice, nulls,
    large strings, an id across two rows' bytes and one that repr would escape find the
    rows a text-by-text look does."""
    texts = ["x u1", None, "u", "1 y", "u1u1", "say 'hé u1'", "u10", "", '{"ref":"u1"}', "a b"]
    column = pa.array(["pad u1", *texts], pa.string()).slice(1)
    expected = [bool(t) and bool(mentioned(t, ["u1", "hé u1"])) for t in texts]
    for kind in (pa.string(), pa.large_string()):
        chunked = pa.chunked_array([column.cast(kind).slice(0, 4), column.cast(kind).slice(4)])
        assert mentions(chunked, ["u1", "hé u1"]).to_pylist() == expected
        assert mentions(column.cast(kind), ["u1", "hé u1"]).to_pylist() == expected  # sliced
    assert expected == [True, False, False, False, False, True, False, False, True, False]


def test_an_avro_block_that_inflates_past_the_bound_is_never_inflated_whole() -> None:
    """A deflate block of 128 MiB of zeros in a container of a few KiB: the erasure's copy
    path stops at the bound decoding keeps (64 MiB here) and says so, and the file is then
    searched as bytes (``runners.forget``), not handed to an unbounded decoder."""
    from advertisex.formats.avrofmt import AvroInvalid
    from advertisex.landing.zone import Segment
    from advertisex.runners.forget import _scrub_segment
    from tests.hostile import _CHUNK, _deflated, _first_block, _zigzag, avro_file, bid

    container = avro_file([bid(1, user_id="u1")], codec="deflate")
    first = _first_block(container)
    sync = container[-16:]
    body = _deflated([b"", bytes(_CHUNK), b""], repeat_middle=8)
    bomb = container[:first] + _zigzag(1) + _zigzag(len(body)) + body + sync
    assert len(bomb) < 1 << 20
    with pytest.raises(AvroInvalid):
        scrub(bomb, "avro", ["u1"])
    assert (
        _scrub_segment(Segment("bids", "bids/x.avro", len(bomb)), bomb, _forgotten("u1"))
        is not None
    )


def test_a_file_read_without_memory_is_not_searched_as_lines(monkeypatch: Any) -> None:
    """Memory running out while an Avro file's blocks inflate is no fault of the file: its
    lines as they are (deflated bytes) hide the user's record, and forget said it erased
    them. The erasure stops, to be run again, instead."""
    from advertisex.errors import TransientError
    from advertisex.landing.zone import Segment
    from advertisex.runners.forget import _scrub_segment
    from tests.hostile import avro_file, bid

    container = avro_file([bid(1, user_id="u1")], codec="deflate")
    segment = Segment("bids", "bids/x.avro", len(container))
    assert _scrub_segment(segment, container, _forgotten("u1")).removed == 1  # type: ignore[union-attr]

    def no_memory(data: bytes) -> Any:
        raise MemoryError

    monkeypatch.setattr("advertisex.formats.scrub._avro_blocks", no_memory)
    with pytest.raises(TransientError, match=r"no memory to read the landing file bids/x\.avro"):
        _scrub_segment(segment, container, _forgotten("u1"))


def _forgotten(*ids: str):  # type: ignore[no-untyped-def]
    from advertisex.formats.scrub import Forgotten

    return Forgotten(ids)


def test_an_avro_block_claiming_more_records_than_bytes_is_refused_not_allocated() -> None:
    """A block header of 2**60 records over a few bytes: refused before anything is sized
    by the count (the caller then searches the file as bytes)."""
    from advertisex.formats.avrofmt import AvroInvalid
    from tests.hostile import _first_block, _varint, _zigzag, avro_file, bid

    container = avro_file([bid(1, user_id="u1")])
    first = _first_block(container)
    _, after_count = _varint(container, first)
    forged = container[:first] + _zigzag(1 << 60) + container[after_count:]
    with pytest.raises(AvroInvalid, match="records declared"):
        scrub(forged, "avro", ["u1"])


def test_a_text_that_only_begins_like_undecoded_bytes_is_judged_by_its_words() -> None:
    """A producer's line ``base64:u1`` is no base64: it made ``forget -u u1`` fail with
    "Incorrect padding" (a bug report), in the landing zone and in the quarantine alike."""
    import base64

    assert mentioned("base64:u1", ["u1"]) == ["u1"]
    assert mentioned("base64:x,u1\n", ["u1"]) == ["u1"]
    assert mentioned("base64:jos\u00e9 u1", ["u1"]) == ["u1"]  # not even ASCII
    assert mentioned("base64:" + base64.b64encode(b"\x00u1\x00").decode(), ["u1"]) == ["u1"]
    assert mentions(pa.array(["base64:u1", "base64:u2"]), ["u1"]).to_pylist() == [True, False]
    done = scrub(b'{"user_id":"u2"}\nbase64:u1\n', "json", ["u1"])
    assert done.data == b'{"user_id":"u2"}\n' and done.removed == 1
    assert scrub_lines(b"base64:u1\nkept\n", ["u1"]).data == b"kept\n"
