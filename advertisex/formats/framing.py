"""Shared shape of a framed landing file: one row per record, its raw text and position.

Decoders (bytes → Arrow) all return a table with at least these columns, so kernels
can treat every source alike when they quarantine: the raw text and the position are
what a person needs to find and fix the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:  # landing's source detection uses strip_bom: keep the CLI's start light
    import pyarrow as pa

RAW = "raw"
POSITION = "source_position"
# Set by a decoder when it could not frame a record at all (e.g. corrupt Avro tail);
# null for records that framed. Kernels turn it into a quarantine reason.
FRAME_ERROR = "frame_error"
# Set by the JSON framer, which checks every line anyway: whether the record's text is
# valid JSON (null: not checked, the kernel checks), so the text is not validated twice.
IS_JSON = "is_json"
# The raw text of a record kept as bytes it could not be decoded from (``avro_unreadable``,
# ``gzip_damaged``): this prefix, then the bytes in base64.
UNDECODED = "base64:"

BOM = b"\xef\xbb\xbf"

# What a decoder reads: a segment's bytes, or a view of them. A decoder worker gets the
# segment as a view of the buffer it was read into from the pipe (``util.isolate``): copied
# into ``bytes`` first, a 100 MB segment was held twice there while it was framed.
Bytes = bytes | memoryview


def known_keys_sql(raw: str, names: Mapping[str, str]) -> str:
    """SQL: the known fields a JSON object's text ``raw`` names, in order, each by its
    canonical name (``names``: every name a field may be given by → that field; other
    keys left out) — for :func:`repeated_fields_sql`, as a column of its own (it is read
    once for each of its keys there)."""
    spelled = " ".join(f"WHEN '{name}' THEN '{field}'" for name, field in names.items())
    return (
        f"list_filter(list_transform(json_keys({raw}), lambda k: CASE k {spelled} END),"
        " lambda k: k IS NOT NULL)"
    )


def repeated_fields_sql(known_keys: str) -> str:
    """SQL: the frame error of a JSON object that names a known field more than once (by
    one name twice, or by two of its names), else NULL; ``known_keys`` the column
    :func:`known_keys_sql` made. Which value would be the record's cannot be told — the
    engine takes the first, most JSON readers the last — so none is taken: the record is
    quarantined ``json_duplicate_key``, as a CSV header naming a field twice is
    (``csv_header_duplicate``)."""
    repeated = (
        f"list_distinct(list_filter({known_keys}, lambda k, i: list_position({known_keys}, k) < i))"
    )
    return (
        f"CASE WHEN len({repeated}) > 0 THEN 'json_duplicate_key: the record names ' ||"
        f" array_to_string(list_sort({repeated}), ', ') || ' more than once' END"
    )


def empty_frame(extra: dict[str, pa.DataType] | None = None) -> pa.Table:
    import pyarrow as pa

    fields = [
        pa.field(RAW, pa.string()),
        pa.field(POSITION, pa.int64()),
        pa.field(FRAME_ERROR, pa.string()),
    ]
    fields += [pa.field(name, t) for name, t in (extra or {}).items()]
    return pa.schema(fields).empty_table()


def starts_with(data: Bytes, prefix: bytes) -> bool:
    """``data.startswith(prefix)``, for a view too."""
    return bytes(data[: len(prefix)]) == prefix


@overload
def strip_bom(data: bytes) -> bytes: ...
@overload
def strip_bom(data: Bytes) -> Bytes: ...
def strip_bom(data: Bytes) -> Bytes:
    return data[3:] if starts_with(data, BOM) else data
