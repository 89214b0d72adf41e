"""Framing is all or nothing: a body either frames completely or names its first bad spot."""

from __future__ import annotations

import gzip
import io
import time
from functools import partial

import fastavro
import orjson
import pytest

from advertisex.collector.framing import (
    FramingError,
    decode_body,
    frame_avro,
    frame_csv_clicks,
    frame_json_array,
    frame_ndjson,
)
from advertisex.formats.decode import DECODERS
from advertisex.formats.jsonfmt import split_objects
from advertisex.formats.jsonrecords import frame_json_clicks

BID_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Bid",
        "fields": [
            {"name": "auction_id", "type": "string"},
            {"name": "timestamp", "type": "string"},
            {"name": "user_id", "type": "string"},
        ],
    }
)


def avro_body(n: int, codec: str = "null") -> bytes:
    buffer = io.BytesIO()
    records = [
        {"auction_id": f"a{i}", "timestamp": "2026-11-27T10:00:00Z", "user_id": "u"}
        for i in range(n)
    ]
    fastavro.writer(buffer, BID_SCHEMA, records, codec=codec, sync_interval=200)
    return buffer.getvalue()


def code_of(call, *args, **kwargs) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(FramingError) as caught:
        call(*args, **kwargs)
    return caught.value.code, caught.value.message


def test_ndjson_is_stored_as_sent_and_counted() -> None:
    body = b'{"a":1}\n\n{"b":2}\r\n{"c":3}'
    framed = frame_ndjson(body)
    assert framed.records == 3
    assert framed.data == body + b"\n"  # a missing final newline is added, nothing else changes


def test_ndjson_names_the_first_bad_line() -> None:
    code, message = code_of(frame_ndjson, b'{"a":1}\n{"a":2}\n{"a":\n{"a":4}\n')
    assert code == "json_invalid" and message.startswith("line 3:")
    code, message = code_of(frame_ndjson, b'{"a":1}\n[1,2]\n')
    assert code == "json_not_object" and message.startswith("line 2:")
    assert code_of(frame_ndjson, b"\n \n")[0] == "empty_body"
    assert code_of(frame_ndjson, b'{"a":1}{"b":2}\n')[0] == "json_invalid"


def test_ndjson_array_hint_and_lenient_json() -> None:
    _, message = code_of(frame_ndjson, b'[{"a":1},\n{"a":2}]')
    assert "application/json" in message
    array = frame_ndjson(b'[{"a":1}, {"b":2}]', lenient_json=True)
    assert (array.records, array.data) == (2, b'{"a":1}\n{"b":2}\n')
    pretty = frame_ndjson(b'{\n  "a": 1\n}\n', lenient_json=True)
    assert (pretty.records, pretty.data) == (1, b'{"a":1}\n')
    assert code_of(frame_ndjson, b'{"a":1}\n{"a"', lenient_json=True)[1].startswith("line 2:")


def test_gzip_members_one_after_another_are_all_inflated_within_one_limit() -> None:
    # ``cat a.gz b.gz``, as some clients and Firehose-like senders send it, and as ingest
    # and process read it from a file: was refused ("bytes follow the end of the stream").
    first, second = b'{"a":1}\n' * 600, b'{"b":2}\n' * 600
    members = gzip.compress(first) + gzip.compress(second)
    assert decode_body(members, "gzip", 1 << 20) == first + second
    assert decode_body(members + b"\x00" * 8, "gzip", 1 << 20) == first + second  # padding
    empty = gzip.compress(b"")
    assert decode_body(empty * 3 + gzip.compress(first) + empty, "gzip", 1 << 20) == first
    # each member is under the limit, together they are not
    code, _ = code_of(decode_body, members, "gzip", len(first) + len(second) - 1)
    assert code == "body_too_large"
    code, message = code_of(decode_body, members + b"junk", "gzip", 1 << 20)
    assert (code, message) == (
        "gzip_invalid",
        f"byte {len(members)}: bytes that are not gzip follow gzip member 2",
    )
    code, message = code_of(decode_body, members + gzip.compress(first)[:30], "gzip", 1 << 20)
    assert code == "gzip_invalid" and "truncated" in message


def test_a_body_of_many_empty_gzip_members_is_inflated_in_linear_time() -> None:
    # Each member's trailing bytes were copied whole: 4 MiB of them took 100 s.
    empty = gzip.compress(b"")
    started = time.perf_counter()
    assert decode_body(empty * ((4 << 20) // len(empty)), "gzip", 1 << 20) == b""
    assert time.perf_counter() - started < 10


def test_json_array_errors_name_offset_or_item() -> None:
    code, message = code_of(frame_json_array, b'[{"a":1}, {"b":')
    assert code == "json_invalid" and message.startswith("byte ")
    code, message = code_of(frame_json_array, b'[{"a":1}, 7]')
    assert code == "json_not_object" and message.startswith("item 2:")


def test_gzip_decoding_refuses_truncated_and_oversize_streams() -> None:
    raw = b'{"a":1}\n' * 1000
    packed = gzip.compress(raw)
    assert decode_body(packed, "gzip", 1 << 20) == raw
    assert decode_body(raw, None, 10) == raw  # identity is not bounded here (the wire limit is)
    assert code_of(decode_body, packed[: len(packed) // 2], "gzip", 1 << 20)[0] == "gzip_invalid"
    assert code_of(decode_body, b"not gzip at all", "gzip", 1 << 20)[0] == "gzip_invalid"
    with pytest.raises(FramingError) as caught:
        decode_body(packed, "gzip", 100)
    assert (caught.value.code, caught.value.status) == ("body_too_large", 413)
    with pytest.raises(FramingError) as caught:
        decode_body(raw, "br", 100)
    assert (caught.value.code, caught.value.status) == ("unsupported_encoding", 415)


def test_csv_rows_become_json_objects_the_clicks_decoder_takes() -> None:
    body = (
        b"\xef\xbb\xbfTimestamp;user_id;ad_campaign_id;event_type;click_id;note\r\n"
        b"2026-11-27T10:00:00Z;u1;c1;click;k1;\r\n"
        b'2026-11-27T10:00:05Z;u2;c1;conversion;k2;"semi;colon"\r\n'
    )
    framed = frame_csv_clicks(body)
    assert framed.records == 2
    rows = [orjson.loads(line) for line in framed.data.splitlines()]
    assert rows[0] == {
        "timestamp": "2026-11-27T10:00:00Z",
        "user_id": "u1",
        "campaign_id": "c1",
        "event_type": "click",
        "event_id": "k1",
    }
    assert rows[1]["note"] == "semi;colon"
    decoded = frame_json_clicks(framed.data)
    assert decoded.column("campaign_id").to_pylist() == ["c1", "c1"]
    assert decoded.column("frame_error").null_count == 2
    assert DECODERS[("clicks", "json")] is frame_json_clicks


def test_csv_errors() -> None:
    code, message = code_of(frame_csv_clicks, b"2026-11-27T10:00:00Z,u1,c1,click\n")
    assert code == "csv_header_missing" and message.startswith("line 1:")
    code, message = code_of(
        frame_csv_clicks, b"timestamp,user_id,campaign_id,event_type\nx,u,c,click\nx,u\n"
    )
    assert code == "csv_column_count" and message.startswith("line 3:")
    code, message = code_of(
        frame_csv_clicks, b"\ntimestamp,user_id,campaign_id,event_type,USER_ID\nx,u,c,click,v\n"
    )
    assert code == "csv_header_duplicate" and message.startswith("line 2: the header names user_id")
    code, message = code_of(
        frame_csv_clicks, b"timestamp,user_id,campaign_id,event_type\nx,u,c,cl\xffck\n"
    )
    assert code == "encoding_invalid" and message.startswith("line 2:")
    assert (
        code_of(frame_csv_clicks, b"timestamp,user_id,campaign_id,event_type\n")[0] == "empty_body"
    )


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_avro_containers_are_checked_block_by_block(codec: str) -> None:
    body = avro_body(300, codec)
    framed = frame_avro(body)
    assert (framed.records, framed.data) == (300, body)
    assert code_of(frame_avro, body[:-7])[0] == "avro_invalid"
    assert code_of(frame_avro, body[: len(body) // 2])[0] == "avro_invalid"
    code, message = code_of(frame_avro, b"PK\x03\x04 a zip file")
    assert code == "avro_invalid" and message.startswith("byte 0:")


def test_firehose_records_split_into_objects() -> None:
    assert split_objects(b'{"a":1}') == [b'{"a":1}']
    assert split_objects(b'{"a":1}\n') == [b'{"a":1}']
    assert split_objects(b'{"a":1}{"b":"}{"}\n {"c":3}') == [b'{"a":1}', b'{"b":"}{"}', b'{"c":3}']
    assert split_objects(b'{\n "a": 1\n}') == [b'{"a":1}']  # a segment line may not span lines
    assert code_of(split_objects, b'{"a":1} 7')[0] == "json_not_object"
    assert code_of(split_objects, b'{"a":1} {"b"')[0] == "json_invalid"
    assert code_of(split_objects, b"  ")[0] == "empty_body"


def test_an_avro_body_with_a_time_past_the_years_1_to_9999_frames() -> None:
    """A bid whose timestamp-millis is 2**62, in the canonical schema (time, text or null):
    the body frames — the processor quarantines that record (``timestamp_invalid``), as any
    other field's bad value — where the strict check's fastavro raised on the time and the
    whole request was refused as ``avro_invalid``."""
    import json
    from pathlib import Path

    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "advertisex/model/bid_request.avsc").read_text()
    )
    records = [
        {"auction_id": f"a{n}", "timestamp": t, "user_id": "u"}
        for n, t in enumerate([1_795_179_845_123, 2**62, 1_795_179_845_124])
    ]
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), records, codec="deflate")
    framed = frame_avro(buffer.getvalue())
    assert framed.records == 3


def test_the_text_framers_stop_counting_past_the_records_limit() -> None:
    # Framing runs on the event loop: a 4 MiB CSV of 524,000 short rows was framed whole
    # (1.3 s, every other request waiting) before the limit refused it. Each framer now
    # stops at the first record past it: the bad record after it is never read.
    csv_body = b"timestamp,user_id,campaign_id,event_type\n" + b"t,u,c,click\n" * 11 + b"x\n"
    ndjson_body = b'{"a":1}\n' * 11 + b"{bad\n"
    for framer, body in [
        (frame_csv_clicks, csv_body),
        (frame_ndjson, ndjson_body),
        (partial(frame_ndjson, lenient_json=True), ndjson_body),
        (frame_json_array, b"[" + b'{"a":1},' * 10 + b'{"a":1}]'),
    ]:
        code, message = code_of(partial(framer, max_records=10), body)
        assert (code, message) == (
            "too_many_records",
            "more than 10 records in one request; split the batch",
        )


def test_blank_lines_are_skipped_without_a_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each blank line was a failed parse (≈ 1.4 µs, an exception): a 4 MiB body of "\n"
    # held the event loop, and every other request, for 6 s before it was refused.
    from advertisex.util import jsonutil

    parsed: list[bytes] = []
    loads = jsonutil.loads
    monkeypatch.setattr(jsonutil, "loads", lambda text: parsed.append(text) or loads(text))
    framed = frame_ndjson(b"\n \n\t\r\n" * 1000 + b'{"a":1}\n' + b"\n" * 1000)
    assert framed.records == 1 and parsed == [b'{"a":1}']
    assert code_of(frame_ndjson, b" \n" * 1000)[0] == "empty_body"
