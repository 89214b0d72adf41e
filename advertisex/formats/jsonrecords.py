"""Clicks and bid requests sent as JSON objects (the Firehose API, JSON producers).

The AWS reference's Firehose client sends every source as one JSON object per
record. These decoders frame such records like any JSON and then lay their fields
out exactly as the CSV (clicks) and Avro (bids) decoders do, so the same
standardize kernel takes them and they land in the same curated tables.
"""

from __future__ import annotations

import pyarrow as pa

from advertisex.formats.framing import (
    FRAME_ERROR,
    POSITION,
    RAW,
    Bytes,
    known_keys_sql,
    repeated_fields_sql,
)
from advertisex.formats.jsonfmt import frame_json
from advertisex.model.contracts import BID_FIELDS, CLICK_ALIASES, CLICK_FIELDS
from advertisex.util import engine


def _struct(fields: tuple[str, ...], types: dict[str, str]) -> str:
    return "{" + ", ".join(f'"{f}": "{types.get(f, "VARCHAR")}"' for f in fields) + "}"


def _null_patch(fields: tuple[str, ...] | list[str]) -> str:
    return "{" + ", ".join(f'"{f}": null' for f in fields) + "}"


def _column_sql(field: str, aliases: dict[str, str]) -> str:
    """A canonical field, falling back to its aliases (``ad_campaign_id`` → ``campaign_id``)."""
    names = [field] + [alias for alias, canonical in aliases.items() if canonical == field]
    options = ", ".join(f'j."{name}"' for name in names)
    return f'coalesce({options}, NULL) AS "{field}"'


def _frame_objects(
    data: Bytes, fields: tuple[str, ...], types: dict[str, str], aliases: dict[str, str]
) -> pa.Table:
    frame = frame_json(data)
    known = list(fields) + list(aliases)
    struct = _struct(tuple(known), types)
    columns = ", ".join(_column_sql(f, aliases) for f in fields)
    names = {name: name for name in fields} | aliases
    query = f"""
    WITH f AS (
      SELECT * REPLACE (coalesce(is_json, json_valid(raw)) AS is_json) FROM frame
    ), o AS (
      SELECT *, coalesce(CASE WHEN is_json THEN json_type(raw) = 'OBJECT' END, false) AS is_obj FROM f
    ), k AS (
      SELECT *, CASE WHEN is_obj THEN {known_keys_sql("raw", names)} END AS known_keys FROM o
    )
    SELECT raw, source_position,
      coalesce(frame_error, CASE WHEN NOT is_json THEN 'json_invalid: not valid JSON'
                                 WHEN NOT is_obj THEN 'json_not_object: not a JSON object' END,
               {repeated_fields_sql("known_keys")}) AS frame_error,
      CASE WHEN is_obj THEN nullif(json_merge_patch(raw, '{_null_patch(known)}'), '{{}}') END AS extras,
      {columns}
    FROM (SELECT *, CASE WHEN is_obj THEN json_transform(raw, '{struct}') END AS j FROM k)
    """
    return engine.run(query, frame=frame)


def frame_json_clicks(data: Bytes) -> pa.Table:
    """JSON click/conversion objects → the columns :func:`frame_csv` produces (all text)."""
    table = _frame_objects(data, CLICK_FIELDS, {}, CLICK_ALIASES)
    return table.select([RAW, POSITION, FRAME_ERROR, "extras", *CLICK_FIELDS])


def frame_json_bids(data: Bytes) -> pa.Table:
    """JSON bid-request objects → the columns :func:`frame_avro` produces (timestamp as text)."""
    # Prices stay text here: the standardize kernel reads the numbers in it and quarantines
    # the rest (number_invalid), where typing them DOUBLE would turn "abc" into a silent null.
    types = {"ad_targeting": "MAP(VARCHAR, VARCHAR)"}
    table = _frame_objects(data, BID_FIELDS, types, {})
    return table.select([*BID_FIELDS, "extras", RAW, POSITION, FRAME_ERROR])
