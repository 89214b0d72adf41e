import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.formats.jsonfmt import expand_concatenated, frame_json


def test_ndjson_lines_keep_true_line_numbers_and_skip_blank_lines():
    frame = frame_json(b'{"a":1}\n\n   \n{"a":2}\r\n{"a":3}')
    assert frame.column("source_position").to_pylist() == [1, 4, 5]
    assert [orjson.loads(r) for r in frame.column("raw").to_pylist()] == [
        {"a": 1},
        {"a": 2},
        {"a": 3},
    ]


def test_json_array_becomes_one_record_per_element():
    frame = frame_json(b'\xef\xbb\xbf  [{"a": 1}, {"a": 2}, 3]')
    assert frame.num_rows == 3
    assert frame.column("raw").to_pylist() == ['{"a":1}', '{"a":2}', "3"]


def test_broken_array_is_kept_whole_as_one_record():
    frame = frame_json(b'[{"a": 1}, {"a": ')
    assert frame.num_rows == 1
    assert frame.column("raw")[0].as_py().startswith("[")


def test_invalid_utf8_line_is_flagged_not_dropped():
    frame = frame_json(b'{"a":1}\n{"a":"\xff"}\n')
    assert frame.num_rows == 2
    assert frame.column("frame_error").to_pylist()[0] is None
    assert frame.column("frame_error").to_pylist()[1].startswith("encoding_invalid")


def test_concatenated_objects_are_split_only_when_the_line_is_not_json():
    table = pa.table(
        {
            "raw": ['{"a":1}{"b":2}', '{"s":"}{"}'],
            "source_position": pa.array([1, 2], pa.int64()),
            "frame_error": pa.nulls(2, pa.string()),
        }
    )
    out = expand_concatenated(table)
    assert out.column("raw").to_pylist() == ['{"a":1}', '{"b":2}', '{"s":"}{"}']
    assert out.column("source_position").to_pylist() == [1, 1, 2]


def test_empty_input_is_no_records():
    assert frame_json(b"").num_rows == 0


def test_a_record_the_collector_could_not_read_carries_its_reason_as_framing_error():
    from advertisex.model.contracts import INTAKE_ERROR

    data = (
        b'{"a": 1}\n'
        + orjson.dumps({INTAKE_ERROR: "query_too_long: 9000 bytes", "query": "x=1"})
        + b'\n{"note": "{\\"_intake_error\\": 1}"}\n'
    )
    table = frame_json(data)
    assert table.column("frame_error").to_pylist() == [None, "query_too_long: 9000 bytes", None]
    assert table.column("raw").to_pylist()[1].startswith('{"_intake_error"')


# Lines of a file with bad lines among good ones: one-line objects, pretty-printed
# objects (some holding one-line objects in an array), two objects on a line, junk.
_LINE_KINDS = st.sampled_from(["object", "pretty", "nested", "pair", "junk", "truncated", "value"])


def _piece(kind: str, n: int) -> str:
    return {
        "object": f'{{"n": {n}, "s": "é{n}"}}',
        "pretty": f'{{\n  "n": {n},\n  "tags": [\n    "a",\n    "b"\n  ]\n}}',
        "nested": f'{{\n  "items": [\n    {{"a": {n}}},\n    {{"b": {n}}}\n  ],\n  "n": {n}\n}}',
        "pair": f'{{"n": {n}}} {{"m": {n}}}',
        "junk": "not json at all",
        "truncated": f'{{"n": {n}, "s": "cut',
        "value": f'"v{n}"',
    }[kind]


@settings(max_examples=200, deadline=None)
@given(kinds=st.lists(_LINE_KINDS, min_size=1, max_size=12), span_bytes=st.integers(1, 80))
def test_bad_lines_are_read_as_the_whole_file_would_be(kinds: list[str], span_bytes: int) -> None:
    """Only the lines after a bad one are read by the object stream; what comes out is
    what reading the whole file as one stream gives, or, when it is not one, each line.
    However far past its line an object is read first (``_SPAN_BYTES``, growing from there)."""
    from unittest import mock

    from advertisex.errors import FramingError
    from advertisex.formats import jsonfmt
    from advertisex.formats.jsonfmt import _objects

    data = "\n".join(_piece(kind, n) for n, kind in enumerate(kinds)).encode() + b"\n"
    with mock.patch.object(jsonfmt, "_SPAN_BYTES", span_bytes):
        frame = frame_json(data)
    try:
        whole = [(offset, piece.decode()) for offset, piece in _objects(data)]
    except FramingError:
        whole = None
    if all(kind in ("object", "value") for kind in kinds):
        return  # every line valid JSON: framed as lines, no stream read
    if whole is not None:
        numbers = [data[:offset].count(b"\n") + 1 for offset, _ in whole]
        assert frame.column("raw").to_pylist() == [piece for _, piece in whole]
        assert frame.column("source_position").to_pylist() == numbers
    else:  # not one stream: every line a record (pairs split), bad ones kept to quarantine
        expected = [
            part
            for n, kind in enumerate(kinds)
            for part in (
                [f'{{"n": {n}}}', f'{{"m": {n}}}'] if kind == "pair" else [_piece(kind, n)]
            )
        ]
        if all(kind not in ("pretty", "nested") for kind in kinds):  # one line each
            assert [r.strip() for r in frame.column("raw").to_pylist()] == expected
    valid = frame.column("is_json").to_pylist()
    for raw, flag in zip(frame.column("raw").to_pylist(), valid, strict=True):
        if flag is not None:  # where the framer says, it says what JSON says
            try:
                orjson.loads(raw)
                assert flag
            except orjson.JSONDecodeError:
                assert not flag


_LINES = st.one_of(
    st.dictionaries(st.text(max_size=4), st.text(max_size=6), max_size=3).map(orjson.dumps),
    st.dictionaries(
        st.sampled_from("abc"), st.integers(-(2**31), 2**31), min_size=1, max_size=2
    ).map(
        lambda d: orjson.dumps(d, option=orjson.OPT_INDENT_2)  # an object spanning lines
    ),
    st.sampled_from([b"", b"  ", b"\r", b"[1,2]", b'{"a":1} {"b":"}{"}', b'{"cut":', b"\xff{}"]),
    st.text(max_size=8).map(str.encode),
)


@given(
    lines=st.lists(_LINES, max_size=12),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    part_bytes=st.integers(1, 40),
)
@settings(max_examples=300, deadline=None)
@pytest.mark.slow
def test_the_newline_search_in_parts_frames_what_the_whole_does(lines, newline, part_bytes):
    """Cut anywhere (inside a line, a pretty-printed object, a multi-byte character), the
    parts' newlines frame the same records, positions, reasons and validity marks."""
    from unittest import mock

    from advertisex.formats import jsonfmt

    data = newline.join(lines)
    whole = frame_json(data)
    with mock.patch.object(jsonfmt, "PART_BYTES", part_bytes):
        parts = frame_json(data)
    assert parts.equals(whole)


def test_a_truncated_line_is_not_parsed_to_the_end_of_the_segment(monkeypatch):
    """A line that is not one object is read over the next lines only as far as it may
    still be one (a pretty-printed object): a truncated record's parse failed only after
    the parser had checked every byte of the rest of the segment (≈ 1 ms a bad line in
    8 MB), for each bad line and once more to decide whether the file is one stream."""
    from advertisex.formats import jsonfmt

    line = orjson.dumps({"impression_id": "i" * 150, "user_id": "u1"}) + b"\n"
    data = line * 100 + b'{"impression_id": "cut\n' + line * 20_000 + b"[1]\n" + line * 100
    parsed: list[int] = []
    loads = jsonfmt.jsonutil.loads

    def counted(text: bytes | memoryview | str) -> object:
        parsed.append(len(text))
        return loads(text)

    monkeypatch.setattr(jsonfmt.jsonutil, "loads", counted)
    frame = frame_json(data)
    assert frame.num_rows == 20_202
    assert frame.column("is_json").to_pylist()[100] is False
    assert max(parsed) < len(data) // 8


def test_framing_does_not_hold_a_mask_of_the_whole_segment(monkeypatch):
    """What the newline search allocates beside the segment is bounded by a part (NumPy
    reports its buffers to tracemalloc): a whole-segment mask would be the segment's size."""
    import tracemalloc

    from advertisex.formats import jsonfmt

    monkeypatch.setattr(jsonfmt, "PART_BYTES", 1 << 20, raising=False)
    line = orjson.dumps({"impression_id": "i" * 150, "user_id": "u1"}) + b"\n"
    data = line * ((8 << 20) // len(line))
    frame_json(line * 2)  # first call's imports and engine start-up, not the framing's
    tracemalloc.start()
    try:
        frame = frame_json(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert frame.num_rows == len(data) // len(line)
    assert peak < len(data) // 4


def test_ndjson_whose_first_line_is_an_array_is_framed_line_by_line():
    # Framed as one broken array, the 2 objects after it were neither kept nor counted.
    frame = frame_json(b'["imp-1"]\n{"a": 1}\n{"a": 2}\n')
    assert frame.column("raw").to_pylist() == ['["imp-1"]\n', '{"a": 1}\n', '{"a": 2}\n']
    assert frame.column("source_position").to_pylist() == [1, 2, 3]


def test_pretty_printed_array_is_one_array_whole_or_broken():
    assert frame_json(b'[\n  {"a": 1},\n  {"a": 2}\n]\n').num_rows == 2
    assert frame_json(b'[\n  {"a": 1},\n  {"a": ').num_rows == 1
    assert frame_json(b'[{"a": 1},\n {"a": 2}]').num_rows == 2
