"""Domain rules on standardized rows: enumerations, ISO codes, id formats, known dimensions.

Runs after the per-source standardize kernels and appends reasons to each row's list,
so a record still carries *all* its reasons. Membership tests are hash lookups
(``pyarrow.compute.is_in``) rather than joins, which keeps row order and stays fast
with thousands of known campaigns or creatives.

ISO-3166 country and ISO-4217 currency codes come from ``pycountry`` (the maintained
ISO database packaged for Python), not a hand-written list.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.kernels.split import rejected_mask
from advertisex.model.contracts import CONVERSION_TYPES, DEVICE_TYPES, MAX_ID_LENGTH
from advertisex.util import engine
from advertisex.util.arrays import (
    chunks_of,
    column_ascending,
    holds_byte_at_most,
    spread,
    take_ascending,
)

ID_FIELDS = ("impression_id", "event_id", "auction_id", "user_id", "campaign_id", "ad_creative_id")
# Ids are opaque, but never contain whitespace or control characters, nor run past 128 chars.
_BAD_ID = r"[\s\x00-\x1f\x7f]"  # what they may not hold, as a regex (RE2: \s is ASCII only)
_BAD_ID_BYTES_MAX, _BAD_ID_BYTE_ALSO = 0x20, 0x7F  # the same, as bytes: 0x00-0x20 and 0x7f


@dataclass(frozen=True)
class Domains:
    """Known dimension ids; ``None`` means "no dimension loaded, don't check"."""

    campaigns: pa.Array | None = None
    creatives: pa.Array | None = None


@lru_cache(maxsize=1)
def countries() -> pa.Array:
    import pycountry

    return pa.array(sorted(c.alpha_2 for c in pycountry.countries), pa.string())


@lru_cache(maxsize=1)
def currencies() -> pa.Array:
    import pycountry

    return pa.array(sorted(c.alpha_3 for c in pycountry.currencies), pa.string())


def _longer_than(values: pa.Array | pa.ChunkedArray, characters: int) -> pa.Array | pa.ChunkedArray:
    """Per text: whether it has more than ``characters`` characters (False for a null). A
    text has no more characters than bytes, so the characters are counted (a pass over every
    byte) only when some text is longer in bytes (its offsets alone tell): ids nearly never
    are.

    >>> _longer_than(pa.array(["ab", "ééé", None]), 2).to_pylist()
    [False, True, False]
    """
    lengths = pc.binary_length(values)
    longest = pc.max(lengths).as_py()
    if longest is None or longest <= characters:  # (a column with nulls: no mask filled)
        return pa.array(np.zeros(len(values), dtype=bool))
    return pc.fill_null(pc.greater(pc.utf8_length(values), characters), False)


def check_domains(rows: pa.Table, domains: Domains | None = None) -> pa.Table:
    """``rows`` with ``reasons`` extended by every domain rule that fails.

    >>> t = pa.table({"country": ["US", "XX", None], "reasons": [[], [], ["x"]]})
    >>> check_domains(t).column("reasons").to_pylist()
    [[], ['country_invalid'], ['x']]
    """
    names = set(rows.column_names)
    flags: dict[str, pa.ChunkedArray | pa.Array] = {}

    def outside(column: str, allowed: pa.Array) -> pa.ChunkedArray | pa.Array:
        values = rows.column(column)
        return pc.and_(
            pc.is_valid(values), pc.invert(pc.fill_null(pc.is_in(values, value_set=allowed), False))
        )

    if "country" in names:
        flags["country_invalid"] = outside("country", countries())
    if "currency" in names:
        flags["currency_invalid"] = outside("currency", currencies())
    if "conversion_type" in names:
        flags["enum_invalid:conversion_type"] = outside(
            "conversion_type", pa.array(CONVERSION_TYPES)
        )
    if "device_type" in names:
        flags["enum_invalid:device_type"] = outside("device_type", pa.array(DEVICE_TYPES))
    for field in ID_FIELDS:
        if field in names:
            values = rows.column(field)
            too_long = _longer_than(values, MAX_ID_LENGTH)
            # _BAD_ID's bytes found by one scan of the column, not a regex run per value.
            spaced = holds_byte_at_most(values, _BAD_ID_BYTES_MAX, _BAD_ID_BYTE_ALSO)
            flags[f"id_invalid:{field}"] = pc.or_(too_long, pa.array(spaced))
    if domains is not None:
        if domains.campaigns is not None and "campaign_id" in names:
            flags["unknown_campaign"] = outside("campaign_id", domains.campaigns)
        if domains.creatives is not None and "ad_creative_id" in names:
            flags["unknown_creative"] = outside("ad_creative_id", domains.creatives)
    columns = {f"f{i}": pc.fill_null(flag, False) for i, flag in enumerate(flags.values())}
    failing = [name for name, flag in columns.items() if pc.any(flag).as_py()]
    if not failing:  # every row passes every rule: the reasons stay as they are
        return rows
    items = ", ".join(f"CASE WHEN f{i} THEN '{code}' END" for i, code in enumerate(flags))
    # Lists are rebuilt only for the rows a rule fails (a few); the others keep theirs.
    extended = engine.run(
        f"SELECT CASE WHEN {' OR '.join(failing)} "
        f"THEN list_concat(reasons, list_filter([{items}], lambda r: r IS NOT NULL)) "
        "ELSE reasons END AS reasons FROM f",
        f=pa.table({"reasons": rows.column("reasons"), **columns}),
    ).column("reasons")
    return rows.set_column(rows.schema.get_field_index("reasons"), "reasons", extended)


# Columns a standardized row has that its record did not (replay frames the raw text again).
_NOT_THE_RECORDS = frozenset(
    {"raw", "reasons", "frame_error", "segment", "payload", "payload_hash"}
    | {"source_position", "extras"}
)


def _rendered_records(rows: pa.Table) -> pa.ChunkedArray:
    """Rows as the records they were, in JSON: the contract's names (``timestamp``, not
    ``event_time``) and the fields outside it (``extras``) at the top, as standardize renders
    a bid it rejects. A bid rejected later (``unknown_campaign``) was rendered as its
    standardized row — ``event_time``, ``payload_hash``, ``extras`` as a text — which the
    JSON bid decoder read as a record without a time: its replay after the fix only gave it
    ``required_missing:timestamp`` more, so it never left the quarantine."""
    fields = [c for c in rows.column_names if c not in _NOT_THE_RECORDS]
    packed = ", ".join(
        'timestamp := CAST("event_time" AS VARCHAR)' if c == "event_time" else f'"{c}"'
        for c in fields
    )
    record = f"CAST(to_json(struct_pack({packed})) AS VARCHAR)"
    if "extras" not in rows.column_names:
        return engine.run(f"SELECT {record} AS j FROM r", r=rows.select(fields)).column("j")
    whole = (
        f"CASE WHEN extras IS NULL OR extras = '{{}}' THEN {record} "
        f"ELSE rtrim({record}, '}}') || ',' || ltrim(extras, '{{') END"
    )
    return engine.run(f"SELECT {whole} AS j FROM r", r=rows.select([*fields, "extras"])).column("j")


def fill_missing_raw(rows: pa.Table, frame: pa.Table) -> pa.Table:
    """Give rejected rows without raw text (rejected after standardize) their raw text back.

    Standardize keeps raw text only for rows it rejects; rows a later rule rejects get
    it from the framed records by (segment, position), or — for decoded binary records
    (Avro) that have no text — as the JSON rendering of their fields.
    """
    existing = rows.column("raw")
    has_raw = pc.is_valid(existing).to_numpy(zero_copy_only=False)
    missing = rejected_mask(rows.column("reasons")) & ~has_raw
    if not missing.any():
        return rows

    def keys(table: pa.Table) -> np.ndarray:
        segment = table.column("segment").to_numpy().astype(np.int64)
        return (segment << 40) | table.column("source_position").to_numpy().astype(np.int64)

    # Row numbers ascending, taken chunk by chunk, and no if_else over the whole column:
    # each would copy every text of the piece (≈ 50 MB) to fill a few rows.
    index = np.flatnonzero(missing)
    wanted = pa.array(keys(take_ascending(rows, index)))
    at = pc.fill_null(pc.index_in(wanted, value_set=pa.array(keys(frame))), -1).to_numpy()
    hit = np.flatnonzero(at >= 0)
    order = hit[np.argsort(at[hit], kind="stable")]
    raw = spread(column_ascending(frame.column("raw"), at[order]), order, len(index))
    if pc.any(pc.is_null(raw)).as_py():
        raw = pc.coalesce(raw, _rendered_records(take_ascending(rows, index)))
    kept = np.flatnonzero(has_raw)
    values = pa.chunked_array(
        [*column_ascending(existing, kept).chunks, *chunks_of(raw)], existing.type
    )
    merged = spread(values, np.concatenate((kept, index)), rows.num_rows)
    return rows.set_column(rows.schema.get_field_index("raw"), "raw", merged)
