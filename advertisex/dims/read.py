"""Read a dimension file (CSV, JSON array or NDJSON, Parquet) into typed rows of one kind.

Dimension files are small (hundreds to thousands of rows), so rows are handled as
Python dicts: that keeps each problem tied to the line a person must fix. Parsing is
done by the libraries (``csv``, orjson, pyarrow.parquet); this module only maps
columns, converts values and explains what is wrong.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from advertisex.errors import UserInputError
from advertisex.model.dims import KINDS, DimKind
from advertisex.util import jsonutil

MAX_PROBLEMS = 5  # listed in one error; a file with more usually has one systematic fault
_BOM = b"\xef\xbb\xbf"


@dataclass
class DimFile:
    """A dimension file read and checked: its kind, typed rows and what was ignored."""

    path: str
    kind: DimKind
    format: str
    rows: list[dict[str, Any]]  # key + the attributes the file provides
    provided: list[str]  # attribute columns present in the file
    ignored: list[str] = field(default_factory=list)


def read_dim_file(path: Path, kind: str | None = None) -> DimFile:
    """Read ``path`` as campaigns or creatives (``kind``, else detected from its columns)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserInputError(
            f"cannot read {path}: {error.strerror}", hint="check the path and permissions"
        ) from error
    if kind is not None and kind not in KINDS:
        raise UserInputError(f"unknown dimension kind {kind!r}", hint="use campaigns or creatives")
    fmt = detect_format(path, data)
    records = {"csv": _csv_records, "json": _json_records, "parquet": _parquet_records}[fmt](
        path, data
    )
    if not records:
        raise UserInputError(
            f"{path} holds no rows", hint="a dimension file needs a header and at least one row"
        )
    columns = list(dict.fromkeys(name for _, record in records for name in record))
    spec = _pick_kind(path, columns, kind)
    provided = [c for c in spec.attributes if c in columns]
    ignored = [c for c in columns if c != spec.key and c not in spec.attributes]
    rows = _typed_rows(path, spec, records, provided)
    return DimFile(str(path), spec, fmt, rows, provided, ignored)


def detect_format(path: Path, data: bytes) -> str:
    """``parquet`` (magic bytes), ``json`` (starts with ``[`` or ``{``) or ``csv``."""
    if data[:4] == b"PAR1":
        return "parquet"
    head = data.removeprefix(_BOM).lstrip()[:1]
    if head in (b"[", b"{"):
        return "json"
    if path.suffix.lower() in (".parquet", ".pq"):
        raise UserInputError(
            f"{path} is named .parquet but is not a Parquet file",
            hint="write it with a Parquet writer, or rename it after its real format",
        )
    return "csv"


# ---------------------------------------------------------------- formats → records


Record = tuple[int, dict[str, Any]]  # (line or row number, column → raw value)


def _column_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _normalize(record: dict[str, Any]) -> dict[str, Any]:
    return {_column_name(str(k)): v for k, v in record.items() if str(k).strip()}


def _csv_records(path: Path, data: bytes) -> list[Record]:
    try:
        text = data.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserInputError(
            f"{path} is not UTF-8 text (byte {error.start})",
            hint="save the file as UTF-8 (CSV), JSON or Parquet",
        ) from error
    lines = text.splitlines()
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        return []
    header_line = lines[header_at]
    delimiter = max((",", ";", "\t"), key=header_line.count)
    reader = csv.reader(io.StringIO("\n".join(lines[header_at:])), delimiter=delimiter)
    header = [_column_name(h) for h in next(reader)]
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:  # a row's mapping would keep the last of them, silently
        raise UserInputError(
            f"{path}: the header names {', '.join(repeated)} twice",
            hint="name each column once (nothing was loaded)",
        )
    records: list[Record] = []
    for fields in reader:
        line = header_at + reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            raise UserInputError(
                f"{path}, line {line}: {len(fields)} fields but the header has {len(header)}",
                hint="quote values that contain the delimiter; keep every row as wide as the header",
            )
        records.append((line, dict(zip(header, fields, strict=True))))
    return records


def _json_records(path: Path, data: bytes) -> list[Record]:
    data = data.removeprefix(_BOM)
    try:
        parsed = jsonutil.loads(data)
        items = parsed if isinstance(parsed, list) else [parsed]
        numbered = list(enumerate(items, start=1))
    except jsonutil.JSONDecodeError:
        numbered = []
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((number, jsonutil.loads(line)))
            except jsonutil.JSONDecodeError as error:
                raise UserInputError(
                    f"{path}, line {number}: not valid JSON ({error})",
                    hint="use one JSON array of objects, or one object per line (NDJSON)",
                ) from error
    records: list[Record] = []
    for number, item in numbered:
        if not isinstance(item, dict):
            raise UserInputError(
                f"{path}, record {number}: expected a JSON object, got {type(item).__name__}",
                hint="each campaign or creative is one object with named fields",
            )
        records.append((number, _normalize(item)))
    return records


def _parquet_records(path: Path, data: bytes) -> list[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as error:
        raise UserInputError(
            f"{path} is not a readable Parquet file: {error}",
            hint="re-export it, or provide CSV or JSON",
        ) from error
    return [(i, _normalize(row)) for i, row in enumerate(table.to_pylist(), start=1)]


# ---------------------------------------------------------------- records → typed rows


def _pick_kind(path: Path, columns: list[str], kind: str | None) -> DimKind:
    def canonical(spec: DimKind) -> set[str]:
        return {spec.aliases.get(c, c) for c in columns}

    if kind is not None:
        spec = KINDS[kind]
        if spec.key not in canonical(spec):
            raise UserInputError(
                f"{path} has no {spec.key} column (columns: {', '.join(columns)})",
                hint=f"a {spec.kind} file needs a {spec.key} column in its header",
            )
        return spec
    for spec in (KINDS["creatives"], KINDS["campaigns"]):
        if spec.key in canonical(spec):
            return spec
    raise UserInputError(
        f"{path} has no id column: neither campaign_id nor ad_creative_id "
        f"(columns: {', '.join(columns) or 'none'})",
        hint="a campaigns file needs campaign_id; a creatives file needs ad_creative_id "
        "(or pass --kind and name the id column accordingly)",
    )


def _typed_rows(
    path: Path, spec: DimKind, records: list[Record], provided: list[str]
) -> list[dict[str, Any]]:
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for line, raw in records:
        record = {spec.aliases.get(k, k): v for k, v in raw.items()}
        if len(record) < len(raw):  # a column and its alias (name, campaign_name): which holds?
            named = sorted({spec.aliases[k] for k in raw if k in spec.aliases} & set(raw))
            problems.append(f"line {line}: {', '.join(named)} given under two names")
            continue
        key = _text(record.get(spec.key))
        if key is None:
            problems.append(f"line {line}: {spec.key} is empty")
            continue
        if key in first_line:
            problems.append(f"line {line}: {spec.key} {key} repeats line {first_line[key]}")
            continue
        first_line[key] = line
        row: dict[str, Any] = {spec.key: key}
        for name in provided:
            try:
                row[name] = convert(record.get(name), spec.attributes[name])
            except ValueError as error:
                problems.append(f"line {line}: {name} {error}")
        rows.append(row)
    if problems:
        more = len(problems) - MAX_PROBLEMS
        listing = "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        raise UserInputError(
            f"{path}: {listing}",
            hint="dates as YYYY-MM-DD, numbers with a dot as decimal mark, one row per id; "
            "fix these rows and load again (nothing was loaded)",
        )
    return rows


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# The longest attribution window a campaign may set (100 years, in seconds). The marts add
# windows to event times in microseconds: 1e20 seconds loaded (a window in microseconds
# given as seconds, say) passed 64 bits — the load itself failed as a bug, with the
# file's row hash — and infinity was no whole number at all.
MAX_WINDOW_SECONDS = 36_525 * 86_400  # 100 years of 365.25 days


def convert(value: Any, arrow_type: pa.DataType) -> Any:
    """One raw cell → the Python value of ``arrow_type``; ValueError says what is wrong."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if pa.types.is_string(arrow_type):
        return _text(value)
    if pa.types.is_floating(arrow_type):
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"{value!r} must be a finite non-negative number")
        return number
    if pa.types.is_integer(arrow_type):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a whole number of seconds") from None
        if not math.isfinite(number) or number != int(number) or number < 0:
            raise ValueError(f"{value!r} must be a non-negative whole number of seconds")
        if number > MAX_WINDOW_SECONDS:
            raise ValueError(f"{value!r} is longer than a window can be (100 years)")
        return int(number)
    if pa.types.is_date(arrow_type):
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        text = str(value).strip()
        try:
            return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None
    raise TypeError(f"no conversion to {arrow_type}")  # pragma: no cover - schema bug
