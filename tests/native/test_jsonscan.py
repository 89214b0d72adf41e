"""The native JSON scanner decides only what DuckDB decides the same way.

Every text it scans must be valid JSON to DuckDB, an object, with the known fields DuckDB's
``json_transform`` gives and as many keys as ``json_keys`` lists; and the impressions'
standardize must give the same rows with the scanner as without it — on records built to
sit on every edge the scanner draws, and on random and randomly broken ones.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex import native
from advertisex.formats import jsonfmt
from advertisex.formats.jsonfmt import frame_json
from advertisex.kernels.standardize import Rules, standardize_impressions
from advertisex.model.contracts import IMPRESSION_FIELDS
from advertisex.native import jsonscan
from advertisex.util import engine

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NUMBERS = ("cost",)

pytestmark = pytest.mark.skipif(
    not native.available(), reason="the native scanner was not built (no C compiler)"
)

GOOD = (
    '{"impression_id":"imp-1","timestamp":"2026-11-27T11:00:00Z","ad_creative_id":"cr-1",'
    '"campaign_id":"cmp-1","user_id":"u-1","website":"https://a.example/x","placement":"Top",'
    '"device_type":"Mobile","user_agent":"Mozilla/5.0 (X11; Linux x86_64)","ip":"10.0.0.1",'
    '"country":"us","cost":0.0025,"auction_id":"auc-1"}'
)


def _with(field: str, value: str) -> str:
    """GOOD with one field's JSON value spelled ``value`` (or the field added)."""
    record = json.loads(GOOD)
    record[field] = "@@"
    return json.dumps(record, separators=(",", ":")).replace('"@@"', value)


# Records on the edges the scanner draws; each comment says which way it should go.
EDGES = [
    GOOD,
    " \t" + GOOD.replace(",", " ,\t").replace(":", " : ") + " \r",  # JSON's whitespace
    _with("cost", "1.50"),  # a fraction, where only a double is read: as written
    _with("cost", "-0"),  # the integer 0 to DuckDB, -0.0 as text: undecided
    _with("cost", "-0.0"),
    _with("cost", "-2.5"),
    _with("cost", "1e-3"),  # exponent: undecided
    _with("cost", "1E5"),
    _with("cost", "00"),  # not JSON
    _with("cost", "01.5"),
    _with("cost", "1."),
    _with("cost", ".5"),
    _with("cost", "+1"),
    _with("cost", "-"),
    _with("cost", "NaN"),  # DuckDB reads NaN and Infinity
    _with("cost", "-Infinity"),
    _with("cost", "0.12345678901234567890123456789"),
    _with("cost", "123456789012345678.5"),
    _with("cost", "1234567890123456789.5"),
    _with("cost", "12345678901234567890123"),
    _with("cost", '"0.5"'),
    _with("cost", "true"),
    _with("impression_id", "123"),  # an integer where text is read: as written
    _with("impression_id", "-17"),
    _with("impression_id", "-0"),
    _with("impression_id", "2.50"),  # a fraction where text is read: DuckDB's "2.5"
    _with("impression_id", "123456789012345678901"),
    _with("impression_id", "true"),
    _with("impression_id", "false"),
    _with("impression_id", "null"),
    _with("impression_id", "nul"),
    _with("impression_id", '{"a": 1}'),
    _with("impression_id", "[1, 2]"),
    _with("impression_id", "[]"),
    _with("impression_id", '""'),
    _with("impression_id", '"   "'),
    _with("impression_id", '" a "'),
    _with("impression_id", '"\u00a0a"'),  # non-ASCII: undecided
    _with("impression_id", '"é"'),
    _with("impression_id", '"\\u00e9"'),  # escapes: undecided
    _with("impression_id", '"a\\"b"'),
    _with("impression_id", '"\\ud800"'),  # a lone surrogate: not JSON to DuckDB
    _with("impression_id", '"a\x01b"'),  # a control character: not JSON
    _with("impression_id", '"a\tb"'),
    _with("extra", '{"nested": [1, "x", {"deeper": null}], "n": -1.5e3}'),  # unknown fields
    _with("extra", '"\\n"'),
    _with("extra", "[1, 2,]"),  # a trailing comma (DuckDB allows it)
    _with("extra", "[" * 31 + "]" * 31),
    _with("extra", "[" * 40 + "]" * 40),  # deeper than the scanner goes
    _with("extra", "1e999"),
    _with("é", '"x"'),
    GOOD[:-1] + ',"impression_id":"twice"}',  # a known key twice: undecided
    GOOD[:-1] + ',"x":1,"x":2}',  # an unknown key twice
    GOOD.replace('"impression_id"', '"Impression_ID"'),  # keys are case-sensitive
    GOOD.replace('"impression_id"', '"impression_\\u0069d"'),  # an escaped known key
    GOOD.replace('"impression_id"', '"impression_id "'),
    GOOD[:-1] + ",}",
    GOOD[:-1],  # cut short
    GOOD + "x",
    GOOD + GOOD,  # two objects on a line (the framer splits them)
    GOOD.replace('"', "'"),
    "{}",
    " {} ",
    "{ }",
    "{,}",
    '{"a"}',
    '{"a":}',
    '{"a" 1}',
    '{"a":1 "b":2}',
    "[]",
    "[1]",
    '"text"',
    "5",
    "null",
    "",
    "   ",
    "{",
    "}",
    '{"cost":0.001}',
]


def _frame(lines: list[str]) -> pa.Table:
    framed = frame_json("\n".join(lines).encode())
    return framed.append_column("segment", pa.array([0] * framed.num_rows, pa.int32()))


def _without_scanner(monkeypatch: pytest.MonkeyPatch, frame: pa.Table) -> pa.Table:
    with monkeypatch.context() as patched:
        patched.setattr(jsonscan, "scan_objects", lambda *args, **kwargs: None)
        return standardize_impressions(frame, Rules(NOW))


def _same_rows(monkeypatch: pytest.MonkeyPatch, frame: pa.Table) -> None:
    scanned = standardize_impressions(frame, Rules(NOW))
    parsed = _without_scanner(monkeypatch, frame)
    assert scanned.schema == parsed.schema
    for name in parsed.column_names:
        assert scanned.column(name).to_pylist() == parsed.column(name).to_pylist(), name


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:  # a text, not a number (the field given as a string)
        return None


def _agrees_with_duckdb(texts: list[str]) -> int:
    """Every text the scanner decides, as DuckDB reads it; returns how many it decided."""
    column = pa.array(texts, pa.string())
    found = jsonscan.scan_objects(column, IMPRESSION_FIELDS, NUMBERS)
    assert found is not None
    struct = "{" + ", ".join(f'"{f}": "VARCHAR"' for f in IMPRESSION_FIELDS) + "}"
    truth = engine.run(
        f"""WITH v AS (
              SELECT raw, coalesce(json_valid(raw), false) AS valid FROM t
            ), k AS (SELECT *, CASE WHEN valid THEN json_type(raw) END AS kind FROM v)
            SELECT valid, kind,
              CASE WHEN kind = 'OBJECT' THEN len(json_keys(raw)) END AS keys,
              CASE WHEN kind = 'OBJECT' THEN json_transform(raw, '{struct}') END AS j
            FROM k""",
        t=pa.table({"raw": column}),
    ).to_pylist()
    decided = np.flatnonzero(~found.undecided)
    for row in decided.tolist():
        expected = truth[row]
        assert expected["valid"] and expected["kind"] == "OBJECT", texts[row]
        assert found.key_counts[row] == expected["keys"], texts[row]
        for name in IMPRESSION_FIELDS:
            value, wanted = found.fields[name][row].as_py(), expected["j"][name]
            if name in NUMBERS and _number(value) is not None:  # a number as written
                value, wanted = _number(value), _number(wanted)
            assert value == wanted, (texts[row], name)
    return len(decided)


def test_it_decides_the_plain_records_and_leaves_the_rest():
    found = jsonscan.scan_objects(pa.array(EDGES), IMPRESSION_FIELDS, NUMBERS)
    assert found is not None
    decided = dict(zip(EDGES, (~found.undecided).tolist(), strict=True))
    assert decided[GOOD] and decided[_with("cost", "1.50")] and decided["{}"]
    assert decided[_with("impression_id", "123")] and decided[_with("extra", "[" * 31 + "]" * 31)]
    for undecided in (
        _with("cost", "-0"),
        _with("cost", "1e-3"),
        _with("impression_id", "2.50"),
        _with("impression_id", '"é"'),
        _with("impression_id", '"\\u00e9"'),
        _with("extra", "[" * 40 + "]" * 40),
        GOOD[:-1] + ',"impression_id":"twice"}',
        GOOD.replace('"impression_id"', '"impression_\\u0069d"'),
        GOOD[:-1] + ",}",
        "[]",
        "",
    ):
        assert not decided[undecided], undecided
    assert found.fields["cost"][0].as_py() == "0.0025"
    assert found.key_counts[EDGES.index(GOOD[:-1] + ',"x":1,"x":2}')] == 15


# What may follow plain text inside a JSON string, written raw into it, and whether the
# scanner decides the string: the closing quote (the string ends there), an escape, a raw
# control character (not JSON), a multi-byte character — and DEL, plain ASCII to JSON.
AFTER_PLAIN_TEXT = {
    '"': True,
    "\\n": False,
    "\n": False,
    "\x1f": False,
    "\u00e9": False,
    "\x7f": True,
}


def test_a_string_ends_where_its_stop_is_wherever_it_falls_in_a_step():
    """Each of those bytes at every place of a string 0-40 bytes long — the string a known
    field's value or an unknown one's, the record ending right after it or further on:
    the scanner (sixteen bytes a step where it can, a byte at a time at a text's end)
    decides what it should, and what it decides DuckDB reads the same."""
    texts, expected, user_ids = [], [], []
    for length in range(41):
        for at in range(length + 1):
            for stop, plain in AFTER_PLAIN_TEXT.items():
                content = "a" * at + (stop + "b" * (length - at) if stop != '"' else "")
                value = '"' + content + '"'
                for text, user_id in (
                    (_with("user_id", value), content),
                    ('{"padding":' + value + "}", None),
                    ('{"user_id":' + value + ',"tail":"' + "t" * 20 + '"}', content),
                ):
                    texts.append(text)
                    expected.append(plain)
                    user_ids.append(user_id if plain else None)
    found = jsonscan.scan_objects(pa.array(texts), IMPRESSION_FIELDS, NUMBERS)
    assert found is not None
    assert (~found.undecided).tolist() == expected
    assert found.fields["user_id"].to_pylist() == user_ids
    assert _agrees_with_duckdb(texts[::13]) == sum(expected[::13])  # DuckDB's word on a part


def test_what_it_decides_duckdb_reads_the_same():
    assert _agrees_with_duckdb(EDGES) > 20


def test_the_kernel_gives_the_same_rows_with_and_without_it(monkeypatch):
    _same_rows(monkeypatch, _frame(EDGES))


def test_same_rows_over_chunks_slices_and_without_the_framers_word(monkeypatch):
    frame = _frame(EDGES)
    chunked = pa.concat_tables([frame.slice(0, 7), frame.slice(7, 30), frame.slice(37)])
    _same_rows(monkeypatch, chunked)
    _same_rows(monkeypatch, frame.slice(3))
    _same_rows(monkeypatch, frame.drop_columns(["is_json"]))


def test_texts_scanned_a_part_at_a_time_as_all_at_once(monkeypatch):
    whole = jsonscan.scan_objects(pa.array(EDGES), IMPRESSION_FIELDS, NUMBERS)
    monkeypatch.setattr(jsonscan, "_PART_BYTES", 700)  # GOOD is ≈ 330 bytes: parts of 1-5 texts
    parts = jsonscan.scan_objects(pa.array(EDGES), IMPRESSION_FIELDS, NUMBERS)
    assert whole is not None and parts is not None
    assert parts.fields["user_agent"].num_chunks > 10
    assert (parts.undecided == whole.undecided).all()
    assert (parts.key_counts == whole.key_counts).all()
    for name in IMPRESSION_FIELDS:
        assert parts.fields[name].to_pylist() == whole.fields[name].to_pylist(), name
    _same_rows(monkeypatch, _frame(EDGES))


def _validity_agrees(texts: list[str]) -> None:
    """The framer's validity check (scanner first) says of each text what DuckDB alone says."""
    column = pa.array(texts, pa.string())
    valid, objects = jsonfmt._validity(column)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(jsonscan, "json_kinds", lambda *args, **kwargs: None)
        by_duckdb = jsonfmt._validity(column)
    assert valid.tolist() == by_duckdb[0].tolist()
    assert objects.tolist() == by_duckdb[1].tolist()


FRAMED = [
    *EDGES,
    " " + GOOD + "\r\n",
    "\t{}\n",
    '{"a":1}{"b":2}',
    '{"a":1} {"b":2}',
    "[1]",
    "3",
    '"x"',
    "{",
    # Values alone, and texts cut short: decided without the engine where sure.
    '[{"a": [1, 2.5, "x"]}, null, true, false, -0, []]',
    "  [] ",
    '""',
    "-12.75",
    "1795133363929007",
    '{"impression_id":"imp-1","timestamp":"2026-11-20T03:04:16.089Z","user_id":"u-00',
    '{"a": {"b": [1, 2',
    '{"a": "x\\',
    '["a"',
    "[",
    '"abc',
    "tru [",
    '{"a": "}"',
    '{"a": "\\"}',
    # What stays the engine's: escapes, exponents, comments, trailing commas, extras.
    '{"a":1}}',
    "[1, 2,]",
    '{"a": 1,}',
    "[NaN]",
    "NaN",
    "1e5",
    "[1e5",
    '{"a": 1} // {',
    '/* { */ {"a": 1}',
    '{"a": "\\u00e9"',
    '["é"',
    "0123",
    "12345678901234567890",
    '{"a": 1} {',
]


def test_the_framers_validity_check_says_what_duckdb_says():
    _validity_agrees(FRAMED)
    kinds = jsonscan.json_kinds(pa.array(FRAMED))
    assert kinds is not None and (kinds != jsonscan.UNDECIDED).sum() > 30  # most without the engine
    # The usual faults of a file — a value alone, a line cut short — all decided.
    faults = ["[1]", "3", '"x"', "{", '["a"', '{"a": {"b": [1, 2', '"abc']
    assert (jsonscan.json_kinds(pa.array(faults)) != jsonscan.UNDECIDED).all()


def test_a_file_frames_the_same_with_and_without_the_scanner(monkeypatch: pytest.MonkeyPatch):
    # Objects back to back on a line, a bad line: the framer's other paths run too.
    data = "\n".join(t.replace("\n", " ") for t in FRAMED).encode()
    framed = frame_json(data)
    monkeypatch.setattr(jsonscan, "scan_objects", lambda *args, **kwargs: None)
    monkeypatch.setattr(jsonscan, "json_kinds", lambda *args, **kwargs: None)
    assert framed.equals(frame_json(data))
    assert framed.num_rows > len(FRAMED)  # the objects written back to back were split


_ascii = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _ascii
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ascii, inner, max_size=3),
    max_leaves=6,
)
_records = st.dictionaries(
    st.sampled_from([*IMPRESSION_FIELDS, "extra", "Cost", ""]) | _ascii, _values, max_size=8
)
_layouts = st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :\t")])


@st.composite
def _texts(draw: st.DrawFn) -> str:
    text = json.dumps(draw(_records), separators=draw(_layouts), ensure_ascii=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 2))):  # a few random edits: cut, doubled, replaced
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["cut", "insert"]))
        piece = draw(st.sampled_from([*'{}[]",:\\ -.0123e', "\x01", "é", "null", "1e9"]))
        text = text[:at] + ("" if edit == "cut" else piece) + text[at + (edit == "cut") :]
    return text


@settings(max_examples=40, deadline=None)
@given(st.lists(_texts(), min_size=1, max_size=40))
@pytest.mark.slow
def test_random_and_broken_records_read_the_same(texts):
    texts = [t.replace("\n", " ") for t in texts]
    _agrees_with_duckdb(texts)
    _validity_agrees(texts)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _same_rows(monkeypatch, _frame(texts))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.builds(lambda v, at: json.dumps(v)[:at], _values, st.integers(0, 60)),
        min_size=1,
        max_size=20,
    )
)
def test_values_cut_anywhere_are_judged_as_duckdb_judges_them(texts):
    _validity_agrees(texts)
