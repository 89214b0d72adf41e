"""Frame JSON records: NDJSON, a JSON array, or concatenated objects (Firehose style).

Framing only splits records and keeps their text; parsing the fields is the
standardize kernel's job (DuckDB's JSON reader, vectorized). NDJSON — the bulk
path — is framed without a Python loop: newline offsets found with NumPy become
the offsets buffer of an Arrow string array over the file's own bytes.

:func:`split_objects` is the one splitter of JSON objects written back to back (with or
without whitespace or newlines between them, pretty-printed or not): the collector
frames every Firehose record with it, and :func:`frame_json` uses it on the lines of a
file that are not one JSON value, so a stream of objects yields the same records
whether it arrived over HTTP or as a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex import native
from advertisex.errors import FramingError
from advertisex.formats.framing import FRAME_ERROR, IS_JSON, POSITION, RAW, Bytes, strip_bom
from advertisex.model.contracts import INTAKE_ERROR
from advertisex.native import jsonscan
from advertisex.util import engine, jsonutil
from advertisex.util.arrays import column_ascending

_SPACE = re.compile(rb"[ \t\r\n]*")  # JSON's whitespace
_NEWLINE = re.compile(rb"\n")  # a view has no find()
_TRAILING = "unexpected content after document"  # orjson: where the next document starts
_ENDS_EARLY = "unexpected end of data"  # orjson: the text ended inside the document
_SPAN_BYTES = 64 << 10  # how far past its line an object spanning lines is read first
# How much of a span an object is looked for in first: a parser reads (checks the UTF-8
# of) all it is given, so objects back to back on one long line, or with no line break at
# all, each read against the rest of it cost the square of its length.
_FIRST_BYTES = 4 << 10
# The newline search goes over a segment this many bytes at a time, so what it holds beside
# the segment does not grow with it (DuckDB's validity check streams the lines already).
PART_BYTES = 8 << 20


def frame_json(data: Bytes) -> pa.Table:
    """Split JSON bytes into records: ``raw`` text (trailing newline kept), 1-based position.

    >>> frame_json(b'{"a":1}\\n\\n{"a":2}\\n').column("source_position").to_pylist()
    [1, 3]
    >>> frame_json(b'{"a":1} {"b":2}{"c":3}').column("raw").to_pylist()
    ['{"a":1}', '{"b":2}', '{"c":3}']
    """
    data = strip_bom(data)
    head = bytes(data[:64]).lstrip()
    if head.startswith(b"[") and not _lines_of_values(data):
        return _frame_array(data)
    return _intake_errors(_split_concatenated(data, *_frame_lines(data)))


def _lines_of_values(data: Bytes) -> bool:
    """Whether text that begins with ``[`` is lines of values (NDJSON whose first record is
    an array: a producer's fault, quarantined as ``json_not_object``) rather than one array:
    its first line is a whole JSON value and the text is not. Framed as one array, such a
    file was one ``json_invalid`` record — its other lines never reached the tables nor
    the accounting (689 impressions of one hour's file of a generated month)."""
    first = _first_line(data)
    if first is None:
        return False  # one line: an array, whole or broken
    after = bytes(data[len(first) : len(first) + _FIRST_BYTES + 1])
    if not after.strip() and len(after) <= _FIRST_BYTES:
        return False  # one line and blanks: not parsed three times (a big Firehose array)
    try:
        jsonutil.loads(first)
    except jsonutil.JSONDecodeError:
        return False  # "[" alone on its line, or a broken first record: one array
    try:
        jsonutil.loads(data)  # (fails at the second line's value when they are lines)
    except jsonutil.JSONDecodeError:
        return True
    return False


def _first_line(data: Bytes, step: int = 1 << 16) -> bytes | None:
    """The text before the first newline (None: there is none), without copying the rest."""
    for at in range(0, len(data), step):
        end = bytes(data[at : at + step]).find(b"\n")
        if end >= 0:
            return bytes(data[: at + end])
    return None


_INTAKE_MARK = '{"' + INTAKE_ERROR + '":'


def _intake_errors(table: pa.Table) -> pa.Table:
    """Records the collector could not read carry their reason as first key: make it the
    record's framing error (one vectorized prefix test; only marked lines are parsed)."""
    marked = pc.starts_with(table.column(RAW), _INTAKE_MARK)
    if not pc.any(marked).as_py():
        return table
    errors = table.column(FRAME_ERROR).to_pylist()
    raws = table.column(RAW)
    for i in np.flatnonzero(marked.to_numpy(zero_copy_only=False)):
        try:
            errors[i] = str(jsonutil.loads(raws[int(i)].as_py())[INTAKE_ERROR])
        except (jsonutil.JSONDecodeError, TypeError, KeyError):
            continue  # not the collector's marker after all: the line is judged as it is
    index = table.schema.get_field_index(FRAME_ERROR)
    return table.set_column(index, FRAME_ERROR, pa.array(errors, pa.string()))


def split_objects(data: bytes, limit: int | None = None) -> list[bytes]:
    """The JSON objects in ``data``, written back to back: one compact line each.

    One object, newline-terminated or not, or several with or without whitespace or
    newlines between them; a pretty-printed object is re-encoded on one line. Raises
    :class:`~advertisex.errors.FramingError` (``json_invalid``, ``json_not_object``,
    ``empty_body``) for anything else, and ``too_many_records`` (413) as soon as there
    are more than ``limit`` objects.

    >>> split_objects(b'{"a":1} {"b":"}{"}\\n{\\n "c": 3\\n}')
    [b'{"a":1}', b'{"b":"}{"}', b'{"c":3}']
    """
    objects = []
    for _, piece in _objects(data):
        objects.append(piece)
        if limit is not None and len(objects) > limit:
            raise FramingError(
                "too_many_records", f"more than {limit} JSON objects; split them", status=413
            )
    if not objects:
        raise FramingError("empty_body", "the record holds no JSON object")
    return objects


def _objects(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(byte offset, object text) of each object back to back in ``data``.

    orjson reports where content after a document starts, which is where the next object
    begins, so objects are split without a hand-written scanner. Slices are views (no
    copy of the rest per object) and orjson's position, counted in characters, becomes a
    byte offset.
    """
    stream = _ObjectStream(data)
    start = stream.skip_space(0)
    while start < len(data):
        end, piece = stream.object_at(start)
        yield start, piece
        start = stream.skip_space(end)


def _object_at(
    view: memoryview, start: int, stop: int, final: bool, utf8: bool = False
) -> tuple[object, int] | None:
    """(value, end) of the JSON document starting at ``start`` within ``view[start:stop]``;
    ``None`` when it may end further on (try a longer span), unless ``final``: then not
    valid JSON is a :class:`FramingError`.

    ``utf8``: the whole text is known to be valid UTF-8 and ``stop`` is a line's end. Then
    only a text that ends too early may be read further: a parser fails at the first byte
    no JSON text can have there, so any other error is where a longer span fails too.
    """
    try:
        return jsonutil.loads(view[start:stop]), stop
    except jsonutil.JSONDecodeError as error:
        if not error.msg.startswith(_TRAILING) or not error.pos:
            if not final and (not utf8 or error.msg.startswith(_ENDS_EARLY)):
                return None
            raise FramingError("json_invalid", f"not valid JSON ({error.msg})") from None
        end = start + _bytes_of(view[start:stop], error.pos)
        return jsonutil.loads(view[start:end]), end


def _bytes_of(view: memoryview, characters: int) -> int:
    """How many bytes the first ``characters`` characters of UTF-8 ``view`` take."""
    if bytes(view[:characters]).isascii():
        return characters
    prefix = bytes(view[: 4 * characters]).decode("utf-8", errors="ignore")
    return len(prefix[:characters].encode())


def json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's words (``array``, ``string``, ``number`` …)."""
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _split_concatenated(data: Bytes, lines: pa.Table, line_starts: np.ndarray) -> pa.Table:
    """Lines that are not one JSON value may hold objects back to back: split them.

    Every line's validity is checked once here and kept (``is_json``) for the kernel.
    Only files with invalid lines pay for more. The whole file is tried first as one
    stream of objects (pretty-printed objects span lines), each object keeping the number
    of the line it starts on; when it is not, each bad line is split on its own and what
    does not split stays one record, to be quarantined with its text.
    """
    lines = lines.select([RAW, POSITION, FRAME_ERROR])
    if lines.num_rows == 0:
        return lines.append_column(IS_JSON, pa.array([], pa.bool_()))
    valid, objects = _validity(lines.column(RAW))
    if valid.all():
        return lines.append_column(IS_JSON, pa.array(valid))
    streamed = _stream_of_objects(data, lines, objects, line_starts)
    if streamed is not None:
        return streamed
    invalid = pa.array(~valid)
    bad = lines.filter(invalid)
    expanded = expand_concatenated(bad)
    if expanded.num_rows == bad.num_rows:
        return lines.append_column(IS_JSON, pa.array(valid))
    good = lines.filter(pc.invert(invalid))
    good = good.append_column(IS_JSON, pa.array(np.ones(good.num_rows, dtype=bool)))
    merged = pa.concat_tables([good, expanded.cast(good.schema)])
    return merged.sort_by([(POSITION, "ascending")])


_JSON_SPACE = "chr(32) || chr(9) || chr(10) || chr(13)"  # SQL: JSON's whitespace


def _validity(raws: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each text is valid JSON, and whether it is a JSON object, as DuckDB says.

    The compiled helpers (:func:`advertisex.native.jsonscan.json_kinds`) decide nearly
    every line, each a valid object, at ≈ 0.25 µs of CPU a line against DuckDB's ≈ 0.44 —
    and the usual faults too: an array or a number alone is valid and no object, a line
    cut inside a string or a bracket is invalid (those cost every segment with one an
    engine call, ≈ 6 ms). The lines they leave undecided (escapes, non-ASCII text,
    anything unusual) are asked of DuckDB, and all of them without the helpers.
    """
    kinds = jsonscan.json_kinds(raws)
    if kinds is not None:
        valid = kinds != jsonscan.CUT
        objects = kinds == jsonscan.OBJECT
        undecided = kinds == jsonscan.UNDECIDED
        if not undecided.any():  # no engine call: a cut line is invalid, an array valid
            return valid, objects
    else:
        undecided = None
    # A few texts are taken out for the engine; when most are left (a file of non-ASCII
    # text, say), the engine reads the column in place rather than a copy of most of it.
    rest = None
    if undecided is not None and 2 * int(undecided.sum()) < len(raws):
        rest = np.flatnonzero(undecided)
    checked = engine.run(
        f"""SELECT coalesce(json_valid(raw), false) AS ok,
          ok AND CASE WHEN starts_with(raw, '{{') THEN true
                      ELSE starts_with(ltrim(raw, {_JSON_SPACE}), '{{') END AS object
        FROM lines""",
        lines=pa.table({RAW: raws if rest is None else column_ascending(raws, rest)}),
    )
    ok = checked.column("ok").to_numpy(zero_copy_only=False)
    is_object = checked.column("object").to_numpy(zero_copy_only=False)
    if rest is None:
        return ok, is_object
    valid[rest], objects[rest] = ok, is_object
    return valid, objects


def _stream_of_objects(
    data: Bytes, lines: pa.Table, objects: np.ndarray, file_line_starts: np.ndarray
) -> pa.Table | None:
    """``data`` read as one stream of JSON objects (:func:`_objects`: each keeps the
    number of the line it starts on), or None when it is not one.

    Lines known to be one object each (``objects``) are taken as they are — the stream
    reads them the same way — so orjson reads only from each other line on, until the
    stream is back at the start of such a line: a long file with a few bad lines costs
    those lines, not the file.
    """
    numbers = lines.column(POSITION).to_numpy()
    line_starts = file_line_starts[numbers - 1]
    # Lines that framed without an encoding error: the whole text is valid UTF-8.
    stream = _ObjectStream(data, utf8=lines.column(FRAME_ERROR).null_count == lines.num_rows)
    if not _may_stream(stream, line_starts, file_line_starts, numbers, objects):
        return None
    raws = lines.column(RAW)
    trimmed = pc.utf8_trim(raws, " \t\r\n")
    indent = pc.subtract(
        pc.binary_length(raws), pc.binary_length(pc.utf8_ltrim(raws, " \t\r\n"))
    ).to_numpy(zero_copy_only=False)
    whole = np.flatnonzero(objects)  # line indices
    whole_at = (line_starts + indent)[whole]  # where each one's object starts
    other_at = line_starts[~objects]
    taken = np.ones(len(whole), dtype=bool)  # not swallowed by an object spanning lines
    found: list[tuple[int, bytes]] = []
    position = 0
    try:
        while (k := int(np.searchsorted(other_at, position))) < len(other_at):
            position = stream.skip_space(int(other_at[k]))
            while position < len(data):
                j = int(np.searchsorted(whole_at, position))
                if j < len(whole_at) and whole_at[j] == position:
                    break  # back at a line that is one object: taken as it is
                end, piece = stream.object_at(position)
                found.append((position, piece))
                taken[j : int(np.searchsorted(whole_at, end))] = False
                position = stream.skip_space(end)
    except FramingError:
        return None
    kept = whole[taken]
    at = np.concatenate((whole_at[taken], np.array([p for p, _ in found], dtype=np.int64)))
    texts = pa.concat_arrays(
        [
            trimmed.take(pa.array(kept)).combine_chunks().cast(pa.string()),
            pa.array([piece.decode() for _, piece in found], pa.string()),
        ]
    )
    is_json = np.concatenate((np.ones(len(kept), dtype=bool), np.zeros(len(found), dtype=bool)))
    order = np.argsort(at, kind="stable")
    line_numbers = np.searchsorted(file_line_starts, at, side="right")
    table = _table(texts.take(pa.array(order)), line_numbers[order])
    # Objects read by the stream are checked by the kernel (null); the lines were here.
    marks = pa.array(is_json[order], mask=~is_json[order])
    return table.set_column(table.schema.get_field_index(IS_JSON), IS_JSON, marks)


def _may_stream(
    stream: _ObjectStream,
    line_starts: np.ndarray,
    file_line_starts: np.ndarray,
    numbers: np.ndarray,
    objects: np.ndarray,
) -> bool:
    """False when the stream of :func:`_stream_of_objects` is sure to fail: no object
    starts where its first line that is not one object does (a truncated record, a JSON
    array …, the usual reason). Tried before the work on every line, which a file with
    such a line would otherwise pay for nothing."""
    first = int(np.argmin(objects))  # the first line that is not one object
    start = stream.skip_space(int(line_starts[first]))
    line_number = int(numbers[first])
    ends = len(stream.data)
    next_line = int(file_line_starts[line_number]) if line_number < len(file_line_starts) else ends
    if start >= next_line:
        return True  # only blanks up to the next line: the stream decides there
    try:
        stream.object_at(start)
    except FramingError:
        return False
    return True


class _ObjectStream:
    """Reads JSON objects written back to back in ``data`` (the steps of :func:`_objects`).

    ``utf8``: ``data`` is known to be valid UTF-8 (the framer checked it). An object that
    does not end on its own line is then read over a few lines more, then more, not to the
    end of ``data`` at once: a truncated record's line failed only after its parser had
    checked every byte of the rest of the segment (≈ 1 ms a bad line in 8 MB).
    """

    def __init__(self, data: Bytes, utf8: bool = False) -> None:
        self.data = data
        self.view = memoryview(data)
        self.utf8 = utf8
        self._newline = (len(data) + 1, -1)  # (searched from, found): nothing searched yet

    def skip_space(self, position: int) -> int:
        return _SPACE.match(self.data, position).end()  # type: ignore[union-attr]

    def object_at(self, start: int) -> tuple[int, bytes]:
        """(end, compact text) of the object starting at ``start``; FramingError if none."""
        # Most objects end on their own line: try that line alone first, so a long stream
        # costs one pass (parsing to the end of the data for every object is quadratic).
        stop, span = self._newline_at(start), _SPAN_BYTES
        found = None
        if stop > 0:
            found = self._read(start, stop, final=False)
        while found is None:
            later = max(start + span, stop + 1)
            stop = self._newline_at(later) if self.utf8 and stop > 0 else -1
            final = stop < 0
            end = len(self.data) if final else stop
            found = self._read(start, end, final=final)
            span *= 4
        value, end = found
        if type(value) is not dict:
            raise FramingError("json_not_object", f"a JSON {json_kind(value)}, expected an object")
        piece = bytes(self.view[start:end]).strip()
        # A pretty-printed object would span lines of an NDJSON segment: re-encode it.
        return end, jsonutil.dumps(value) if b"\n" in piece or b"\r" in piece else piece

    def _newline_at(self, start: int) -> int:
        """The first newline at or after ``start`` (-1: none); the last one found is kept,
        as the objects of one line all ask for it (searched again, that line is read once
        for each of its objects)."""
        searched, found = self._newline
        if not searched <= start or (found >= 0 and found < start):
            found = _newline_at(self.data, start)
            self._newline = (start, found)
        return found

    def _read(self, start: int, stop: int, final: bool) -> tuple[object, int] | None:
        """:func:`_object_at` over ``data[start:stop]``, looking in a growing prefix of it
        first: an object ends where its text does, so the rest need not be read (a
        megabyte of ``{}{}…`` took hours read whole for each object; now one pass)."""
        first = start + _FIRST_BYTES
        while first < stop:
            # a prefix may cut a character or a token: any failure is "read further"
            found = _object_at(self.view, start, first, final=False)
            if found is not None:
                return found
            first = start + 4 * (first - start)
        return _object_at(self.view, start, stop, final=final, utf8=self.utf8)


def _frame_lines(data: Bytes) -> tuple[pa.Table, np.ndarray]:
    """The file's records, one per line that is not blank, and where each line of the
    file starts (line ``n`` at ``starts[n - 1]``)."""
    if not data:
        return _table([], []), np.zeros(1, dtype=np.int64)
    offsets = np.concatenate(([0], _newlines(data) + 1))
    if offsets[-1] != len(data):
        offsets = np.concatenate((offsets, [len(data)]))
    starts = offsets[:-1]
    if len(data) >= 2**31 - 1:
        raise ValueError("a single JSON file over 2 GiB; split it before ingesting")
    lines = pa.StringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32).tobytes()), pa.py_buffer(data)
    )
    positions = np.arange(1, len(lines) + 1, dtype=np.int64)
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        return _frame_lines_slow(bytes(data)), starts
    # Blank lines are not records: drop them but keep every other line's true number.
    lengths = np.diff(offsets)
    blank = lengths <= 16  # candidates only; confirmed by trimming below
    if blank.any():
        stripped = pc.utf8_trim_whitespace(lines.filter(pa.array(blank)))
        blank_idx = np.flatnonzero(blank)[pc.equal(stripped, "").to_numpy(zero_copy_only=False)]
        if len(blank_idx):  # else the lines stay slices of ``data`` (bounded.TextViews)
            keep = np.ones(len(lines), dtype=bool)
            keep[blank_idx] = False
            lines = lines.filter(pa.array(keep))
            positions = positions[keep]
    table = pa.table(
        {RAW: lines, POSITION: pa.array(positions), FRAME_ERROR: pa.nulls(len(lines), pa.string())}
    )
    return table, starts


def _newlines(data: Bytes) -> np.ndarray:
    """Byte offsets of ``data``'s newlines: by the compiled helpers, else a part at a time
    (comparing the whole segment at once would hold a byte-sized mask of it)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    searched = native.newlines(buf)
    if searched is not None:
        return searched
    found = [
        np.flatnonzero(buf[start : start + PART_BYTES] == 10) + start
        for start in range(0, len(buf), PART_BYTES)
    ]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _frame_lines_slow(data: bytes) -> pa.Table:
    """Line framing for files that are not valid UTF-8: bad lines carry an encoding error."""
    raws: list[str] = []
    positions: list[int] = []
    errors: list[str | None] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            raws.append(line.decode("utf-8"))
            errors.append(None)
        except UnicodeDecodeError as e:
            raws.append(line.decode("utf-8", errors="replace"))
            errors.append(f"encoding_invalid: {e.reason} at byte {e.start}")
        positions.append(number)
    return _table(raws, positions, errors)


def _newline_at(data: Bytes, start: int) -> int:
    """``data.find(b"\\n", start)``, for a view too."""
    found = _NEWLINE.search(data, start)
    return found.start() if found else -1


def _frame_array(data: Bytes) -> pa.Table:
    try:
        items = jsonutil.loads(data)
    except jsonutil.JSONDecodeError:
        # The array itself is broken: keep the whole text as one record to quarantine.
        return _table([str(data, "utf-8", errors="replace")], [1])
    if not isinstance(items, list):
        return _table([str(data, "utf-8", errors="replace")], [1])
    return _table([jsonutil.dumps_str(item) for item in items], list(range(1, len(items) + 1)))


def expand_concatenated(table: pa.Table) -> pa.Table:
    """Expand records holding several objects back to back (``{..} {..}``) into one each.

    A record that is valid JSON as a whole stays as it is (``"}{"`` inside a string); one
    that does not split into objects stays too, for the standardize kernel to quarantine.
    """
    raws: list[str] = []
    positions: list[int] = []
    errors: list[str | None] = []
    for raw, position, error in zip(
        table.column(RAW).to_pylist(),
        table.column(POSITION).to_pylist(),
        table.column(FRAME_ERROR).to_pylist(),
        strict=True,
    ):
        parts = _objects_in(raw) if error is None else None
        for part in parts or [raw]:
            raws.append(part)
            positions.append(position)
            errors.append(error)
    return _table(raws, positions, errors)


def _objects_in(text: str) -> list[str] | None:
    """The objects of ``text`` if it is two or more JSON objects back to back, else None."""
    data = text.encode()
    try:
        jsonutil.loads(data)
        return None  # valid as a whole
    except jsonutil.JSONDecodeError:
        pass
    try:
        parts = split_objects(data)
    except FramingError:
        return None
    return [part.decode() for part in parts] if len(parts) > 1 else None


def _table(
    raws: list[str] | pa.Array,
    positions: list[int] | np.ndarray,
    errors: list[str | None] | None = None,
) -> pa.Table:
    return pa.table(
        {
            RAW: raws if isinstance(raws, pa.Array) else pa.array(raws, pa.string()),
            POSITION: pa.array(positions, pa.int64()),
            FRAME_ERROR: pa.array(errors or [None] * len(raws), pa.string()),
            IS_JSON: pa.nulls(len(raws), pa.bool_()),
        }
    )
