import orjson
import pyarrow as pa

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
