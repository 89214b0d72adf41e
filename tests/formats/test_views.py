"""Decoders take a view of a segment's bytes, as a decoder worker has them, and give what
they give for the bytes: a worker no longer copies each segment into ``bytes`` first (a
100 MB segment was held twice while it was framed)."""

from __future__ import annotations

import gzip

import orjson
import pyarrow as pa
import pytest

from advertisex.formats.avrofmt import frame_avro, salvage_avro
from advertisex.formats.bounded import (
    DecodeLimits,
    decode_bounded,
    decode_for_handoff,
    gunzip_and_decode,
)
from advertisex.formats.csvfmt import frame_csv
from advertisex.formats.jsonfmt import frame_json
from advertisex.formats.jsonrecords import frame_json_bids, frame_json_clicks
from advertisex.util.isolate import _argument
from tests.hostile import avro_file, bad_typed_avro, bid, not_a_record_avro, poison_avro

IMPRESSION = {
    "impression_id": "i1",
    "timestamp": "2026-11-20T10:00:00Z",
    "ad_creative_id": "cr-1",
    "user_id": "u-ü",  # not ASCII: the stream salvage counts characters, not bytes
    "website": "e.example",
}
LINE = orjson.dumps(IMPRESSION) + b"\n"
PRETTY = orjson.dumps(IMPRESSION, option=orjson.OPT_INDENT_2) + b"\n"
JSON_SEGMENTS = {
    "lines": LINE * 5,
    "bom, blank and CRLF lines": b"\xef\xbb\xbf" + LINE + b"\n  \n" + LINE.replace(b"\n", b"\r\n"),
    "objects back to back and pretty-printed": LINE + PRETTY + b'{"a":1} {"b":2}\n' + LINE,
    "a truncated object and a line of text": LINE + b'{"user_id": "u2", \n' + b"oops\n" + LINE,
    "an array": b"[" + LINE.strip() + b"," + LINE.strip() + b"]",
    "a broken array": b"[" + LINE.strip() + b",",
    "bad UTF-8": LINE + b'{"user_id": "\xff\xfe"}\n' + LINE,
    "the collector's marker": b'{"_intake_error": "json_invalid: x", "raw": "{"}\n' + LINE,
    "empty": b"",
}
CSV = (
    "timestamp;user_id;campaign_id;event_type;click_id\r\n2026-11-20T10:00:00Z;u-ü;c1;click;k1\r\n"
)
CSV_SEGMENTS = {
    "bom, semicolons, CRLF": b"\xef\xbb\xbf" + CSV.encode(),
    "a short row": CSV.encode() + b"2026-11-20T10:00:00Z;u2;c1\n",
    "bad UTF-8": CSV.encode() + b"2026-11-20T10:00:00Z;u\xff;c1;click;k2\n",
    "no header": b"1;2;3\n4;5;6\n",
}
CLICK_OBJECTS = (
    b'{"timestamp": "2026-11-20T10:00:00Z", "user_id": "u1", "ad_campaign_id": "c1",'
    b' "event_type": "click", "extra": 1}\n[1]\nnot json\n'
)
BID_OBJECTS = orjson.dumps({**bid(1), "ad_targeting": {"age": "25-34"}}) + b"\n{}\n"
full = avro_file([bid(i) for i in range(50)], codec="deflate")
AVRO_SEGMENTS = {
    "a deflated container": full,
    "a null-coded container": avro_file([bid(i) for i in range(5)]),
    "truncated": full[: len(full) - 40],
    "a price that is not a number": bad_typed_avro(),
    "not a record": not_a_record_avro(),
    "not Avro": b"PAR1 not an avro file",
}
CASES = [
    *((frame_json, name, data) for name, data in JSON_SEGMENTS.items()),
    *((frame_csv, name, data) for name, data in CSV_SEGMENTS.items()),
    (frame_json_clicks, "click objects", CLICK_OBJECTS),
    (frame_json_bids, "bid objects", BID_OBJECTS),
    *((frame_avro, name, data) for name, data in AVRO_SEGMENTS.items()),
    *((salvage_avro, name, data) for name, data in AVRO_SEGMENTS.items()),
    (salvage_avro, "a stray byte in a block", poison_avro()),  # polars-avro spins on it
]


def worker_view(data: bytes) -> memoryview:
    """``data`` as a decoder worker gets it: in a buffer of Arrow's pool, read from the pipe
    (:func:`advertisex.util.isolate._argument` of a read-only view of it)."""
    buffer = pa.allocate_buffer(len(data))
    memoryview(buffer).cast("B")[:] = data
    return _argument(memoryview(buffer).toreadonly(), decode_for_handoff)


@pytest.mark.parametrize(
    ("decoder", "name", "data"), CASES, ids=[f"{d.__name__}: {n}" for d, n, _ in CASES]
)
def test_a_view_frames_as_its_bytes(decoder, name, data) -> None:
    assert decoder(worker_view(data)).equals(decoder(data))


@pytest.mark.parametrize("name", ["lines", "objects back to back and pretty-printed"])
def test_a_gzipped_view_frames_as_its_bytes(name) -> None:
    data = gzip.compress(JSON_SEGMENTS[name])
    assert gunzip_and_decode(frame_json, worker_view(data)).equals(frame_json(JSON_SEGMENTS[name]))


def test_a_decoder_worker_hands_a_segment_over_as_a_view_of_what_it_read() -> None:
    """The segment is not copied in the worker: the decoders get a view of the very buffer
    the pipe was read into; a function not marked for views still gets ``bytes``."""
    buffer = pa.py_buffer(LINE * 1000)
    view = _argument(memoryview(buffer), decode_for_handoff)
    assert isinstance(view, memoryview) and view.format == "B"
    assert pa.py_buffer(view).address == buffer.address
    assert type(_argument(memoryview(buffer), len)) is bytes


def test_framing_a_view_copies_nothing_of_it(monkeypatch) -> None:
    """NDJSON's lines stay slices of the worker's buffer (``TextViews``), and framing them
    allocates less than a quarter of the segment (tracemalloc sees ``bytes`` and NumPy's
    buffers): no copy of it is made."""
    import tracemalloc

    from advertisex.formats import jsonfmt

    monkeypatch.setattr(jsonfmt, "PART_BYTES", 1 << 20)  # the newline search's mask: a part
    data = LINE * ((8 << 20) // len(LINE))
    view = worker_view(data)
    frame_json(worker_view(LINE * 2 + b"x\n"))  # first call's imports and engine start-up
    tracemalloc.start()
    try:
        handed = decode_for_handoff(frame_json, view)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not isinstance(handed, pa.Table)  # the texts are slices of the view
    assert handed.over(data).equals(frame_json(data))
    assert peak < len(data) // 4


def test_segments_decoded_in_a_worker_equal_those_decoded_here() -> None:
    isolated = DecodeLimits(seconds=30.0, memory_bytes=1 << 30)
    here = DecodeLimits(isolated=False)
    big = LINE * ((1 << 17) // len(LINE)) + PRETTY  # over the size sent beside the pickle
    for decoder, data in [(frame_json, big), (frame_csv, CSV.encode() * 3000), (frame_avro, full)]:
        assert decode_bounded(decoder, data, isolated).equals(decode_bounded(decoder, data, here))
