"""Frame JSON impressions: NDJSON, a JSON array, or concatenated objects (Firehose style).

Framing only splits records and keeps their text; parsing the fields is the
standardize kernel's job (DuckDB's JSON reader, vectorized). NDJSON — the bulk
path — is framed without a Python loop: newline offsets found with NumPy become
the offsets buffer of an Arrow string array over the file's own bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.formats.framing import FRAME_ERROR, POSITION, RAW, strip_bom
from advertisex.util import jsonutil


def frame_json(data: bytes) -> pa.Table:
    """Split JSON bytes into records: ``raw`` text (trailing newline kept), 1-based position.

    >>> frame_json(b'{"a":1}\\n\\n{"a":2}\\n').column("source_position").to_pylist()
    [1, 3]
    """
    data = strip_bom(data)
    head = data[:64].lstrip()
    if head.startswith(b"["):
        return _frame_array(data)
    return _frame_lines(data)


def _frame_lines(data: bytes) -> pa.Table:
    if not data:
        return _table([], [])
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    offsets = np.concatenate(([0], newlines + 1))
    if offsets[-1] != len(data):
        offsets = np.concatenate((offsets, [len(data)]))
    if len(data) >= 2**31 - 1:
        raise ValueError("a single JSON file over 2 GiB; split it before ingesting")
    lines = pa.StringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32).tobytes()), pa.py_buffer(data)
    )
    positions = np.arange(1, len(lines) + 1, dtype=np.int64)
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        return _frame_lines_slow(data)
    # Blank lines are not records: drop them but keep every other line's true number.
    lengths = np.diff(offsets)
    blank = lengths <= 16  # candidates only; confirmed by trimming below
    if blank.any():
        stripped = pc.utf8_trim_whitespace(lines.filter(pa.array(blank)))
        blank_idx = np.flatnonzero(blank)[pc.equal(stripped, "").to_numpy(zero_copy_only=False)]
        keep = np.ones(len(lines), dtype=bool)
        keep[blank_idx] = False
        lines = lines.filter(pa.array(keep))
        positions = positions[keep]
    return pa.table(
        {RAW: lines, POSITION: pa.array(positions), FRAME_ERROR: pa.nulls(len(lines), pa.string())}
    )


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


def _frame_array(data: bytes) -> pa.Table:
    try:
        items = jsonutil.loads(data)
    except jsonutil.JSONDecodeError:
        # The array itself is broken: keep the whole text as one record to quarantine.
        return _table([data.decode("utf-8", errors="replace")], [1])
    if not isinstance(items, list):
        return _table([data.decode("utf-8", errors="replace")], [1])
    return _table([jsonutil.dumps_str(item) for item in items], list(range(1, len(items) + 1)))


def expand_concatenated(table: pa.Table) -> pa.Table:
    """Expand records holding several objects back to back (``{..}{..}``), as Firehose writes them.

    Called by the standardize kernel on the few records that failed to parse, so the
    bulk path never pays for the search.
    """
    lines = table.column(RAW)
    suspects = pc.match_substring(lines, "}{")
    if not pc.any(suspects).as_py():
        return table
    decoder = json.JSONDecoder()
    raws: list[str] = []
    positions: list[int] = []
    for raw, position, suspect in zip(
        lines.to_pylist(), table.column(POSITION).to_pylist(), suspects.to_pylist(), strict=True
    ):
        parts = _objects_in(raw, decoder) if suspect else None
        for part in parts or [raw]:
            raws.append(part)
            positions.append(position)
    return _table(raws, positions)


def _objects_in(text: str, decoder: json.JSONDecoder) -> list[str] | None:
    """The objects of ``text`` if it is two or more JSON values back to back, else None."""
    try:
        jsonutil.loads(text)
        return None  # valid as a whole: "}{" was inside a string
    except jsonutil.JSONDecodeError:
        pass
    parts, index, text = [], 0, text.strip()
    while index < len(text):
        try:
            _, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            return None
        parts.append(text[index:end])
        while end < len(text) and text[end].isspace():
            end += 1
        index = end
    return parts if len(parts) > 1 else None


def _table(
    raws: list[str], positions: list[int], errors: list[str | None] | None = None
) -> pa.Table:
    return pa.table(
        {
            RAW: pa.array(raws, pa.string()),
            POSITION: pa.array(positions, pa.int64()),
            FRAME_ERROR: pa.array(errors or [None] * len(raws), pa.string()),
        }
    )
