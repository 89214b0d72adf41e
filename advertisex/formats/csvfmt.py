"""Frame click/conversion CSV: header, delimiter (`,` `;` or tab), BOM, CRLF, aliases.

Python's csv module does the parsing: click files are small next to impressions
(click-through is around 1 %), and it lets us keep every record's exact raw text and
line number, which a quarantine row needs. Values stay text here; typing is the
standardize kernel's job.
"""

from __future__ import annotations

import csv

import pyarrow as pa

from advertisex.formats.framing import FRAME_ERROR, POSITION, RAW, Bytes, strip_bom
from advertisex.model.contracts import CLICK_ALIASES, CLICK_FIELDS, CLICK_REQUIRED
from advertisex.util import jsonutil

EXTRAS = "extras"
DELIMITERS = (",", ";", "\t")


def frame_csv(data: Bytes) -> pa.Table:
    """Frame CSV bytes into one row per record with a text column per known field.

    Rows whose field count differs from the header's carry a ``frame_error``; a file
    without a usable header yields every line with ``csv_header_missing``, one whose header
    names a field twice with ``csv_header_duplicate``.
    """
    text, encoding_error = _decode(strip_bom(data))
    lines = text.split("\n")
    columns: dict[str, list[str | None]] = {name: [] for name in CLICK_FIELDS}
    raws: list[str] = []
    positions: list[int] = []
    errors: list[str | None] = []
    extras: list[str | None] = []

    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        return _table(columns, raws, positions, errors, extras)
    delimiter = _sniff_delimiter(lines[header_index])
    header = [
        _canonical(name) for name in next(csv.reader([lines[header_index]], delimiter=delimiter))
    ]
    has_header = sum(name in CLICK_REQUIRED for name in header) >= 2
    # A column named twice (or a field by two of its names): which value is the record's
    # cannot be told, so none is taken; the last one was, silently.
    repeated = sorted({name for name in header if name and header.count(name) > 1})

    reader = csv.reader(
        (line + "\n" for line in lines[header_index + 1 :]), delimiter=delimiter, strict=False
    )
    first_line = header_index + 2  # 1-based number of the line after the header
    consumed = 0
    for fields in reader:
        start, consumed = consumed, reader.line_num
        raw = "\n".join(lines[header_index + 1 + start : header_index + 1 + consumed]).rstrip("\r")
        if not fields or not any(f.strip() for f in fields):
            continue
        raws.append(raw)
        positions.append(first_line + start)
        error = None
        if encoding_error and "\ufffd" in raw:
            error = "encoding_invalid"
        elif not has_header:
            error = "csv_header_missing"
        elif repeated:
            error = f"csv_header_duplicate: the header names {', '.join(repeated)} twice"
        elif len(fields) != len(header):
            error = f"csv_column_count: header has {len(header)} fields, this row {len(fields)}"
        errors.append(error)
        record = dict(zip(header, fields, strict=False)) if has_header else {}
        for name in CLICK_FIELDS:
            value = record.get(name)
            columns[name].append(value.strip() if value and value.strip() else None)
        unknown = {k: v for k, v in record.items() if k not in columns and k}
        extras.append(jsonutil.dumps_str(unknown) if unknown else None)
    return _table(columns, raws, positions, errors, extras)


def _decode(data: Bytes) -> tuple[str, bool]:
    try:
        return str(data, "utf-8"), False  # a view is decoded in place, as bytes are
    except UnicodeDecodeError:
        return str(data, "utf-8", errors="replace"), True


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _canonical(name: str) -> str:
    name = name.strip().strip('"').strip().lower()
    return CLICK_ALIASES.get(name, name)


def _table(
    columns: dict[str, list[str | None]],
    raws: list[str],
    positions: list[int],
    errors: list[str | None],
    extras: list[str | None],
) -> pa.Table:
    data = {
        RAW: pa.array(raws, pa.string()),
        POSITION: pa.array(positions, pa.int64()),
        FRAME_ERROR: pa.array(errors, pa.string()),
        EXTRAS: pa.array(extras, pa.string()),
    }
    data.update({name: pa.array(values, pa.string()) for name, values in columns.items()})
    return pa.table(data)
