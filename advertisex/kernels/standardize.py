"""Standardize + validate: framed records → canonical columns, each with all its reasons.

Pure: Arrow in, Arrow out (DuckDB as the vectorized engine). Every input row comes
out exactly once, carrying ``reasons`` (empty when the record is good) so the caller
can split accepted from quarantined without losing any. Ids: a record without its
source's event id gets ``fp-`` + MD5 of its normalized payload, so the same event
sent twice — even with a different timestamp spelling — gets the same id.
``payload_hash`` distinguishes a retry (same hash) from a conflicting repeat; it and
the ``payload`` text it hashes (kept on the rows only when asked) are
kernels.fingerprint's (versioned: lakes written with the earlier MD5 hashes keep deduping).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex import native
from advertisex.formats.framing import (
    FRAME_ERROR,
    IS_JSON,
    RAW,
    known_keys_sql,
    repeated_fields_sql,
)
from advertisex.kernels import text
from advertisex.kernels.fingerprint import (
    SEPARATOR,
    md5_hex,
    payload_hash,
    payload_hashes,
    payload_sql,
    payload_text,
)
from advertisex.kernels.split import rejected_mask
from advertisex.kernels.timestamps import checks_sql, parse_text_sql, within_years_sql
from advertisex.kernels.validate import Domains
from advertisex.model.contracts import (
    BID_REQUIRED,
    CLICK_FIELDS,
    CLICK_REQUIRED,
    EARLIEST_EVENT_TIME,
    EVENT_TYPES,
    IMPRESSION_FIELDS,
    IMPRESSION_REQUIRED,
    MAX_CONVERSION_VALUE,
    MAX_PRICE,
)
from advertisex.native import jsonscan
from advertisex.util import engine
from advertisex.util.arrays import (
    LABEL_LISTS,
    Label,
    chunks_of,
    column_ascending,
    joined,
    labels_where,
    replaced,
    spread,
    spread_ascending,
    take_ascending,
    text_bytes,
)


@dataclass(frozen=True)
class Rules:
    """The validation settings a batch is checked against, fixed for the whole batch."""

    now: datetime
    future_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta | None = None
    # Known campaign / creative ids once dimensions are loaded (see kernels.validate).
    domains: Domains | None = None

    def params(self) -> dict[str, object]:
        # The configured maximum age, if any, and never before EARLIEST_EVENT_TIME.
        oldest = EARLIEST_EVENT_TIME
        if self.max_age and self.max_age < self.now - oldest:
            oldest = self.now - self.max_age
        return {"future_limit": self.now + self.future_skew, "oldest": oldest}


# Normalized text of the event time, part of every payload hash.
_TIME_TEXT = "epoch_us(event_time)"


def _epoch_us_text(times: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """:data:`_TIME_TEXT` by Arrow: each instant's microseconds since 1970, as text."""
    return pc.cast(pc.cast(times, pa.int64()), pa.string())


def _reasons(conditions: list[tuple[str, str]]) -> str:
    """SQL building the list of reasons whose condition holds. The list is built only for
    the rows some condition holds for (most rows have none, and a list per row costs
    more than all the tests)."""
    items = ", ".join(f"CASE WHEN {cond} THEN '{code}' END" for cond, code in conditions)
    any_holds = " OR ".join(f"({cond})" for cond, _ in conditions)
    return (
        f"CASE WHEN {any_holds} THEN list_filter([{items}], lambda r: r IS NOT NULL) "
        "ELSE []::VARCHAR[] END"
    )


def _missing(fields: tuple[str, ...], guard: str) -> list[tuple[str, str]]:
    return [
        (f"{guard} AND {f} IS NULL", f"required_missing:{f}") for f in fields if f != "timestamp"
    ] + [(f"{guard} AND ts_text IS NULL", "required_missing:timestamp")]


def _hashed(query: str, params: dict[str, object], frame: pa.Table, payload: bool) -> pa.Table:
    """Run a standardize query whose ``payload`` column is the normalized payload text;
    ``payload_hash`` (kernels.fingerprint, version 2) is added from it, and the text kept
    where ``payload`` asks for it (see :func:`standardize_impressions`)."""
    rows = engine.run(query, params, frame=frame)
    position = rows.schema.get_field_index("payload")
    rows = rows.add_column(position, "payload_hash", payload_hash(rows.column("payload")))
    return rows if payload else rows.drop_columns(["payload"])


def _validated(frame: pa.Table) -> str:
    """SQL: the frame with ``is_json`` — as the JSON framer found it where it did
    (``formats.framing.IS_JSON``), else checked here."""
    if IS_JSON in frame.column_names:
        return "SELECT * REPLACE (coalesce(is_json, json_valid(raw)) AS is_json) FROM frame"
    return "SELECT *, json_valid(raw) AS is_json FROM frame"


def _text(expr: str) -> str:
    return f"nullif(trim({expr}), '')"


# ---------------------------------------------------------------- impressions

_IMP_STRUCT = "{" + ", ".join(f'"{f}": "VARCHAR"' for f in IMPRESSION_FIELDS) + "}"
# Whitespace JSON allows before a value (RFC 8259): space, tab, line feed, carriage return.
_JSON_SPACE = "chr(32) || chr(9) || chr(10) || chr(13)"
# A JSON text's first character past its leading whitespace is "{": tested on the text as
# it is first (nearly every record), so the engine copies a trimmed text only when it begins
# with whitespace (an ltrim of every record cost ≈ 0.65 µs of its ≈ 2.5 µs parse).
_STARTS_AN_OBJECT = f"CASE WHEN starts_with(raw, '{{') THEN true ELSE starts_with(ltrim(raw, {_JSON_SPACE}), '{{') END"
_IMP_KNOWN_KEYS = known_keys_sql("raw", {f: f for f in IMPRESSION_FIELDS})
_IMP_NULL_PATCH = "{" + ", ".join(f'"{f}": null' for f in IMPRESSION_FIELDS) + "}"
# The normalized payload is the id, the time as normalized text, these fields, the extras.
_IMP_PAYLOAD = [f for f in IMPRESSION_FIELDS if f not in ("impression_id", "timestamp")]


def _finite_number(value: str) -> str:
    """SQL: the text as a DOUBLE, NULL unless it is a finite number. "INF", "-Infinity" and
    "NaN" cast to a double, but no price or value is infinite: they are quarantined as
    ``number_invalid`` like any other text that is not a number."""
    return f"CASE WHEN isfinite(try_cast({value} AS DOUBLE)) THEN try_cast({value} AS DOUBLE) END"


def standardize_impressions(frame: pa.Table, rules: Rules, payload: bool = False) -> pa.Table:
    """Framed JSON records (raw, segment, source_position, frame_error) → canonical rows.

    Three steps, each where it is cheapest: the engine parses each record's text once
    (validated, transformed into the contract's fields, its keys listed to find unknown
    fields); Arrow's string kernels trim and case-fold the fields (:mod:`.text`) and
    the payload is hashed; the engine again, over the few narrow columns that need it, reads
    timestamps and prices and lists the reasons.

    ``payload``: the rows keep their payload text too (``payload``, after the hash), for
    the few that dedupe compares by a version-1 hash; each standardizer of a source is
    row-local, so those rows are standardized again for it (not every row's text written
    for the few: kernels.fingerprint.payload_hashes).

    >>> import pyarrow as pa
    >>> from datetime import datetime, UTC
    >>> rows = standardize_impressions(pa.table({"raw": ['{"timestamp": 0}'], "segment": [0],
    ...     "source_position": [1], "frame_error": pa.nulls(1, pa.string())}), Rules(datetime.now(UTC)))
    >>> rows.column("reasons").to_pylist()[0][:1]
    ['required_missing:ad_creative_id']
    """
    parsed = _parse_impressions(frame)
    repeated = parsed.column("repeated")
    if repeated.null_count < len(repeated):  # a known field named twice: its frame error
        frame = frame.set_column(
            frame.schema.get_field_index(FRAME_ERROR),
            FRAME_ERROR,
            pc.coalesce(frame.column(FRAME_ERROR), repeated),
        )
    fields = {name: text.text(parsed.column(name)) for name in IMPRESSION_FIELDS}
    fields["placement"] = text.lower(fields["placement"])
    fields["device_type"] = text.lower(fields["device_type"])
    fields["country"] = text.upper(fields["country"])
    given_id, extras = fields.pop("impression_id"), parsed.column("extras")
    checked = _check_impressions(frame, parsed, fields, given_id, rules)
    event_time_text = checked.column("event_time_text")
    parts = [
        given_id,
        event_time_text,
        *(checked.column("cost_text") if f == "cost" else fields[f] for f in _IMP_PAYLOAD),
        extras,
    ]
    hashes = payload_hashes(parts)
    reasons = checked.column("reasons")
    columns = {
        "impression_id": _with_fingerprints(given_id, parts),
        "event_time": checked.column("event_time"),
        **{f: checked.column("cost") if f == "cost" else fields[f] for f in _IMP_PAYLOAD},
        "extras": extras,
        "payload_hash": hashes,
        **({"payload": payload_text(parts)} if payload else {}),
        "segment": frame.column("segment"),
        "source_position": frame.column("source_position"),
        "raw": spread_ascending(frame.column(RAW), np.flatnonzero(rejected_mask(reasons))),
        "frame_error": frame.column(FRAME_ERROR),
        "reasons": reasons,
    }
    return pa.table(columns)


def _parse_impressions(frame: pa.Table) -> pa.Table:
    """Each record's contract fields as the JSON gave them (text, untrimmed), whether it is
    JSON and an object, and its unknown fields as a JSON object (``extras``).

    The native scanner (:mod:`advertisex.native.jsonscan`) reads the records it can
    decide — nearly all — and DuckDB the rest (:func:`_parsed_by_engine`), to the same
    values."""
    raws = frame.column(RAW)
    known_invalid = _known_invalid(frame)
    scanned = jsonscan.scan_objects(raws, IMPRESSION_FIELDS, ("cost",), known_invalid)
    if scanned is None:
        parsed = _parsed_by_engine(frame)
        return parsed.append_column("extras", _extras(raws, parsed, _keys_at_most(raws).to_numpy()))
    repeated: pa.Array | pa.ChunkedArray = pa.nulls(len(raws), pa.string())
    undecided = np.flatnonzero(scanned.undecided)
    # What the engine would say of the records the framer found to hold no object is known.
    no_object, is_json = _holding_no_object(frame, undecided)
    rest = undecided[~no_object]  # left to the engine
    unknown = np.zeros(len(raws), dtype=bool)
    unknown[rest] = True
    json_flags, object_flags = np.ones(len(raws), dtype=bool), np.ones(len(raws), dtype=bool)
    json_flags[undecided[no_object]], object_flags[undecided[no_object]] = is_json, False
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "is_json": pa.array(json_flags, mask=unknown),  # null: the engine's, below
        "is_obj": pa.array(object_flags, mask=unknown),
    }
    columns.update(scanned.fields)  # (null where undecided)
    keys_at_most = scanned.key_counts
    if len(rest):
        by_engine = _parsed_by_engine(
            pa.table(
                {
                    name: column_ascending(frame.column(name), rest)
                    for name in (RAW, *_is_json(frame))
                }
            )
        )
        for name in columns:  # the scanner's rows as they are, the engine's where it has any
            found = by_engine.column(name)
            if found.null_count < len(found):  # (a record that is not JSON has none)
                columns[name] = pc.coalesce(columns[name], spread(found, rest, len(raws)))
        if by_engine.column("repeated").null_count < len(rest):
            repeated = spread(by_engine.column("repeated"), rest, len(raws))
        keys_at_most = keys_at_most.copy()
        keys_at_most[rest] = _keys_at_most(column_ascending(raws, rest)).to_numpy()
    parsed = pa.table(columns | {"repeated": repeated})
    return parsed.append_column("extras", _extras(raws, parsed, keys_at_most))


def _holding_no_object(frame: pa.Table, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of ``rows`` (the scanner left them undecided), those the framer's ``is_json`` says
    hold no JSON object — not JSON, or JSON that does not begin as an object does — and
    whether each of those is JSON. What :func:`_parsed_by_engine` gives such a record is
    known without it: its ``is_json`` the framer's, not an object, no field (a segment's
    handful of arrays, numbers and broken lines cost an engine call, ≈ 8 ms, a piece).

    >>> frame = pa.table({"raw": ['[1]', ' {"a": 1}', 'x', '{"é": 1}', '2'],
    ...                   "is_json": [True, True, False, True, None]})
    >>> [a.tolist() for a in _holding_no_object(frame, np.arange(5))]
    [[True, False, True, False, False], [True, False]]
    """
    if IS_JSON not in frame.column_names or not len(rows):
        return np.zeros(len(rows), dtype=bool), np.zeros(0, dtype=bool)
    said = column_ascending(frame.column(IS_JSON), rows)
    texts = column_ascending(frame.column(RAW), rows)
    known = pc.and_(pc.is_valid(said), pc.is_valid(texts)).to_numpy(zero_copy_only=False)
    is_json = pc.fill_null(said, False).to_numpy(zero_copy_only=False)
    opens = pc.starts_with(pc.utf8_ltrim(pc.fill_null(texts, ""), _JSON_SPACE_CHARS), "{")
    no_object = known & ~(is_json & opens.to_numpy(zero_copy_only=False))
    return no_object, is_json[no_object]


_JSON_SPACE_CHARS = " \t\n\r"  # as _JSON_SPACE spells them for the engine


def _known_invalid(frame: pa.Table) -> np.ndarray | None:
    """The records the framer found not to be JSON (the scanner leaves them to the engine,
    which keeps the framer's word)."""
    if IS_JSON not in frame.column_names:
        return None
    return pc.invert(pc.fill_null(frame.column(IS_JSON), True)).to_numpy(zero_copy_only=False)


def _parsed_by_engine(frame: pa.Table) -> pa.Table:
    """:func:`_parse_impressions` by DuckDB alone, without ``extras``."""
    # Each record's text is parsed as few times as DuckDB allows: validated once (by the
    # framer when it could), transformed once into the contract's fields (objects only: a
    # valid JSON text that starts with "{" is an object).
    # A known key named twice sends a record here (the scanner leaves it undecided): the
    # keys of these records are listed, to quarantine it (formats.framing).
    query = f"""
    WITH f AS (
      {_validated(frame)}
    ), o AS (
      SELECT *, is_json AND {_STARTS_AN_OBJECT} AS is_obj FROM f
    ), j AS (
      SELECT *, CASE WHEN is_obj THEN json_transform(raw, '{_IMP_STRUCT}') END AS j,
        CASE WHEN is_obj THEN {_IMP_KNOWN_KEYS} END AS known_keys FROM o
    )
    SELECT is_json, is_obj, {", ".join(f'j.{f} AS "{f}"' for f in IMPRESSION_FIELDS)},
      {repeated_fields_sql("known_keys")} AS repeated
    FROM j
    """
    return engine.run(query, frame=frame.select([RAW, *_is_json(frame)]))


def _extras(raws: pa.ChunkedArray, parsed: pa.Table, keys_at_most: np.ndarray) -> pa.Array:
    """The unknown fields of each JSON object as a JSON object (null when it has none).

    Only the objects whose text may hold more top-level keys (``keys_at_most``: the
    scanner's count, else :func:`_keys_at_most`) than they have known fields go to the engine, which lists their keys: few records of a
    segment have unknown fields, and the known fields are counted here, not in the SQL
    (thirteen tests a row, and ≈ 2 ms of planning a call, for the rows the scan clears).
    """
    known = np.zeros(parsed.num_rows, dtype=np.int32)
    for name in IMPRESSION_FIELDS:
        known += parsed.column(name).is_valid().to_numpy(zero_copy_only=False)
    is_obj = pc.fill_null(parsed.column("is_obj"), False).to_numpy(zero_copy_only=False)
    index = np.flatnonzero(is_obj & (keys_at_most > known))
    if not len(index):
        return pa.nulls(parsed.num_rows, pa.string())
    listed = engine.run(
        f"""SELECT CASE WHEN len(json_keys(raw)) > known
             THEN nullif(json_merge_patch(raw, '{_IMP_NULL_PATCH}'), '{{}}') END AS extras
        FROM t""",
        t=pa.table({"raw": column_ascending(raws, index), "known": known[index]}),
    ).column("extras")
    return spread(listed, index, parsed.num_rows)


_COLON, _QUOTE = ord(":"), ord('"')
_BEFORE_COLON = np.zeros(256, dtype=bool)  # a key's colon follows its quote or JSON's spaces
_BEFORE_COLON[[_QUOTE, ord(" "), ord("\t"), ord("\n"), ord("\r")]] = True


def _keys_at_most(raws: pa.ChunkedArray) -> pa.ChunkedArray:
    """For each text, a number no JSON object it may hold has more top-level keys than: its
    colons that follow a quote or JSON whitespace (every key is a string and its colon,
    whitespace between them; other such colons only add to the count). Records with no
    more than their known fields' count have no unknown field, so the engine lists the
    keys of the others only — a byte scan here costs a fraction of parsing every record
    once more.

    >>> _keys_at_most(pa.chunked_array([['{"a": 1, "b" :"x:y"}', '{"u":"http://h"}', None]])).to_pylist()
    [2, 1, 0]
    """
    counts = []
    for chunk in raws.chunks:
        offsets, text = text_bytes(chunk)
        found = []
        for start in range(1, len(text), _SCAN_BLOCK):  # a text's first byte has no key before it
            colons = np.flatnonzero(text[start : start + _SCAN_BLOCK] == _COLON) + start
            found.append(colons[_BEFORE_COLON[text[colons - 1]]])
        keyish = np.concatenate(found) + offsets[0] if found else np.zeros(0, dtype=np.int64)
        counts.append(pa.array(np.diff(np.searchsorted(keyish, offsets)).astype(np.int32)))
    return pa.chunked_array(counts, pa.int32())


# Bytes scanned at a time: a piece's texts (≈ 50 MB) compared whole made a mask and a list of
# colons each mapped fresh (glibc maps blocks of 4 MiB and more), ≈ 25 k page faults a piece;
# blocks this size reuse the heap's memory and stay in the cache.
_SCAN_BLOCK = 1 << 18


def _is_json(frame: pa.Table) -> list[str]:
    return [IS_JSON] if IS_JSON in frame.column_names else []


def _check_impressions(
    frame: pa.Table,
    parsed: pa.Table,
    fields: dict[str, pa.Array | pa.ChunkedArray],
    given_id: pa.Array | pa.ChunkedArray,
    rules: Rules,
) -> pa.Table:
    """Event time, cost (and their payload texts) and every reason of each record.

    The time and the cost are read as the engine reads them (:func:`_times_and_costs`);
    the reasons are listed by Arrow from masks (:func:`~advertisex.util.arrays.labels_where`).
    Listed in SQL, the query took ≈ 8 ms to plan on every call and every text field went
    into the engine only to be tested for null or a leading ``{``.
    """
    checked = _times_and_costs(fields["timestamp"], fields["cost"], rules)
    frame_error, is_json = frame.column(FRAME_ERROR), parsed.column("is_json")
    is_obj, cost = parsed.column("is_obj"), checked.column("cost")
    texts = {"impression_id": given_id, **fields}
    conditions: list[tuple[pa.Array | pa.ChunkedArray, Label]] = [
        _framing_reason(frame_error),
        (pc.and_kleene(pc.is_null(frame_error), pc.invert(is_json)), "json_invalid"),
        (pc.and_kleene(is_json, pc.invert(is_obj)), "json_not_object"),
        *_required_missing(is_obj, texts, IMPRESSION_REQUIRED),
        *(
            (pc.and_kleene(is_obj, _opens_a_container(texts[f])), f"type_invalid:{f}")
            for f in ("impression_id", "ad_creative_id", "campaign_id", "user_id", "website")
        ),
        *_amount_reasons("cost", fields["cost"], cost, MAX_PRICE),
        *((checked.column(code), code) for code in _TIME_CHECKS),
    ]
    reasons = labels_where(conditions, frame.num_rows)
    return checked.select(["event_time", "event_time_text", "cost", "cost_text"]).append_column(
        "reasons", reasons
    )


_TIME_CHECKS = tuple(code for _, code in checks_sql("event_time", "ts_text IS NOT NULL"))

Condition = tuple[pa.Array | pa.ChunkedArray, Label]


def _framing_reason(frame_error: pa.Array | pa.ChunkedArray) -> Condition:
    """A record the framer could not read: its error's code (the text before ``:``)."""
    return pc.is_valid(frame_error), pc.list_element(pc.split_pattern(frame_error, ":"), 0)


def _required_missing(
    judged: pa.Array | pa.ChunkedArray,
    texts: dict[str, pa.Array | pa.ChunkedArray],
    required: tuple[str, ...],
) -> list[Condition]:
    """``required_missing:<field>`` of each required field a ``judged`` record lacks, the
    time last (the engine's order)."""
    ordered = (*(f for f in required if f != "timestamp"), "timestamp")
    return [(pc.and_kleene(judged, pc.is_null(texts[f])), f"required_missing:{f}") for f in ordered]


def _amount_reasons(
    name: str,
    given: pa.Array | pa.ChunkedArray,
    value: pa.Array | pa.ChunkedArray,
    ceiling: float,
) -> list[Condition]:
    """An amount given as text that is no number, below zero, or past ``ceiling``."""
    return [
        (pc.and_kleene(pc.is_valid(given), pc.is_null(value)), f"number_invalid:{name}"),
        (pc.less(value, 0), f"negative_value:{name}"),
        (pc.greater(value, ceiling), f"amount_too_large:{name}"),
    ]


def _times_and_costs(
    ts_text: pa.Array | pa.ChunkedArray, cost_text: pa.Array | pa.ChunkedArray, rules: Rules
) -> pa.Table:
    """Each record's event time and cost as the engine reads their texts, their payload
    texts, and the time's checks (:data:`_TIME_CHECKS`, as ``checks_sql`` words them).

    The compiled helpers read the texts in their plain spellings (``native/plaintext.c``:
    an ISO time, an epoch count, a decimal of at most 15 significant digits) — nearly all
    of them, to the same values and texts — and the engine only the rest
    (:func:`_engine_times`, :func:`_engine_costs`): through the engine every record's two
    casts and the cost's text again cost ≈ 0.33 µs a record."""
    n = len(ts_text)
    instants, numbers = native.plain_instants(ts_text), native.plain_numbers(cost_text)
    if instants is None or numbers is None:  # no helpers: the engine reads every text
        instants = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
        numbers = np.zeros(n), np.zeros(n, dtype=bool), pa.nulls(n, pa.string())
    (micros, time_valid), (values, cost_valid, cost_texts) = instants, numbers
    has_time = pc.is_valid(ts_text).to_numpy(zero_copy_only=False)
    has_cost = pc.is_valid(cost_text).to_numpy(zero_copy_only=False)
    asked = np.flatnonzero(has_time & ~time_valid)
    if len(asked):
        times = _engine_times(column_ascending(ts_text, asked))
        micros[asked] = pc.fill_null(times, 0).to_numpy()
        time_valid[asked] = pc.is_valid(times).to_numpy(zero_copy_only=False)
    asked = np.flatnonzero(has_cost & ~cost_valid)
    if len(asked):
        costs, printed = _engine_costs(column_ascending(cost_text, asked))
        values[asked] = pc.fill_null(costs, 0.0).to_numpy()
        cost_valid[asked] = pc.is_valid(costs).to_numpy(zero_copy_only=False)
        cost_texts = replaced(cost_texts, asked, printed)
    microseconds = pa.array(micros, pa.int64(), mask=~time_valid)
    event_time = microseconds.cast(pa.timestamp("us", "UTC"))
    params = rules.params()
    future_limit, oldest = params["future_limit"], params["oldest"]
    checks = {  # checks_sql's conditions, in its order
        "timestamp_invalid": pa.array(has_time & ~time_valid),
        "timestamp_in_future": pc.greater(event_time, pa.scalar(future_limit, event_time.type)),
        "timestamp_too_old": pc.less(event_time, pa.scalar(oldest, event_time.type)),
    }
    assert tuple(checks) == _TIME_CHECKS
    return pa.table(
        {
            "event_time": event_time,
            "event_time_text": _epoch_us_text(event_time),
            "cost": pa.array(values, pa.float64(), mask=~cost_valid),
            "cost_text": pc.if_else(pa.array(cost_valid), cost_texts, pa.scalar(None, pa.string())),
            **checks,
        }
    )


def _engine_times(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The engine's reading of time texts: µs since the epoch (null where no instant of
    the years a lake keeps).

    Each distinct text is read by the engine once in a process (:func:`_engine_read`): the
    texts the helpers leave are a producer's odd spellings, the same few in piece after
    piece ("not-a-time" in every piece of the demo's faults), and a query reading three of
    them cost ≈ 4-9 ms, most of it planning the time's parse."""
    asked = texts.to_pylist()
    read = _engine_read(_ENGINE_TIMES, asked, _TIME_SQL)
    return pa.array([None if t is None else read[t][0] for t in asked], pa.int64())


def _engine_costs(texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """The engine's reading of cost texts: the cost (null unless a finite number) and its
    text as the engine prints it; each distinct text read once (:func:`_engine_times`)."""
    asked = texts.to_pylist()
    read = _engine_read(_ENGINE_COSTS, asked, _COST_SQL)
    pairs = [(None, None) if c is None else read[c] for c in asked]
    return (
        pa.array([value for value, _ in pairs], pa.float64()),
        pa.array([printed for _, printed in pairs], pa.string()),
    )


# The engine's reading of texts ``t`` the helpers leave, as pairs (a, b): a time's µs (and
# nothing), or a cost and its text as the engine prints it (null: not read as one).
_TIME_SQL = f"SELECT epoch_us({parse_text_sql('t')}::TIMESTAMPTZ) AS a, NULL AS b FROM texts"
_COST_SQL = (
    "SELECT cost AS a, CAST(cost AS VARCHAR) AS b "
    f"FROM (SELECT {_finite_number('t')} AS cost FROM texts)"
)
# What the engine read of each text (:func:`_engine_times`, :func:`_engine_costs`). At most
# _ENGINE_READ texts each: emptied when it would hold more (a producer whose every time is
# odd is read piece by piece, as it was before any was kept).
_ENGINE_READ = 4096
_ENGINE_TIMES: dict[str, tuple[Any, Any]] = {}
_ENGINE_COSTS: dict[str, tuple[Any, Any]] = {}


def _engine_read(
    memo: dict[str, tuple[Any, Any]], texts: list[str | None], query: str
) -> dict[str, tuple[Any, Any]]:
    """Each distinct text of ``texts`` as ``query`` reads it: from ``memo`` where it is
    there, the others by one engine query, then kept in ``memo``."""
    distinct = {t for t in texts if t is not None}
    found = {t: known for t in distinct if (known := memo.get(t)) is not None}
    new = sorted(distinct - found.keys())
    if new:
        read = engine.run(query, texts=pa.table({"t": pa.array(new, pa.string())}))
        pairs = zip(read.column("a").to_pylist(), read.column("b").to_pylist(), strict=True)
        fresh = dict(zip(new, pairs, strict=True))
        found.update(fresh)
        if len(memo) + len(fresh) > _ENGINE_READ:
            memo.clear()
        if len(fresh) <= _ENGINE_READ:
            memo.update(fresh)
    return found


def _opens_a_container(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Whether the text begins as a JSON object or array does (a field given as one); false
    for a null, which no reason of this kind holds for either way.

    Told from each text's first byte, read by the compiled helpers (else by NumPy) from
    the column's buffers: Arrow's two ``starts_with`` and their ``or`` over the five id
    fields cost ≈ 2.4 ms a piece, the helpers ≈ 0.1 ms.

    >>> _opens_a_container(pa.chunked_array([["{a", "x[", None], ["", "[1]"]])).to_pylist()
    [True, False, False, False, True]
    """
    opens_by_helpers = native.opens_containers(column)
    if opens_by_helpers is not None:
        return pa.array(opens_by_helpers)
    found = [np.zeros(0, dtype=bool)]
    for chunk in chunks_of(column):
        offsets, data = text_bytes(chunk)
        opens = np.zeros(len(chunk), dtype=bool)
        if len(data):
            first = data.take(offsets[:-1] - offsets[0], mode="clip")
            opens = _OPENS_A_CONTAINER[first] & (offsets[1:] > offsets[:-1])
            if chunk.null_count:
                opens &= pc.is_valid(chunk).to_numpy(zero_copy_only=False)
        found.append(opens)
    return pa.array(np.concatenate(found))


_OPENS_A_CONTAINER = np.zeros(256, dtype=bool)  # a text's first byte: "{" or "["
_OPENS_A_CONTAINER[[ord("{"), ord("[")]] = True


def _with_fingerprints(
    given_id: pa.Array | pa.ChunkedArray, parts: list[pa.Array | pa.ChunkedArray]
) -> pa.Array | pa.ChunkedArray:
    """The given ids, and for records without one ``fp-`` + MD5 of the payload (joined from
    its ``parts`` for those records only) without its id (the payload of such a record
    starts with the null mark of the missing id)."""
    missing = pc.is_null(given_id)
    if not pc.any(missing).as_py():
        return given_id
    index = np.flatnonzero(missing.to_numpy(zero_copy_only=False))
    payload = payload_text([column_ascending(part, index) for part in parts])
    without_id = pc.utf8_slice_codeunits(payload, 2)
    ids = pc.binary_join_element_wise("fp-", md5_hex(without_id), "")
    return pc.if_else(missing, spread(ids, index, len(given_id)), given_id)


# ---------------------------------------------------------------- clicks & conversions

_CLICK_PAYLOAD = [
    "event_time_text",
    *(f for f in CLICK_FIELDS if f not in ("event_id", "timestamp", "click_ref")),
    "extras",
]


def _click_payload(columns: list[str]) -> str:
    """The payload text of a click row; ``click_ref`` (added later to the contract) joins it
    only when present, so rows without one keep the ids and hashes they always had."""
    return f"concat_ws('\x1f', {payload_sql(columns)}, click_ref)"


def standardize_clicks(frame: pa.Table, rules: Rules, payload: bool = False) -> pa.Table:
    """Framed CSV rows (text columns per field) → canonical click/conversion rows with reasons.

    By Arrow, as :func:`standardize_impressions` checks its records (the engine reads only
    the odd time and value spellings the compiled helpers leave, each once in a process):
    the query of :func:`_clicks_by_engine`, the spec, cost ≈ 8 ms of CPU to plan for a
    second's one or two clicks. A frame whose fields are not all text goes to the engine.
    """
    if not all(
        pa.types.is_string(frame.schema.field(name).type)
        for name in (*CLICK_FIELDS, "extras", RAW, FRAME_ERROR)
    ):
        return _clicks_by_engine(frame, rules, payload)
    fields = {name: text.text(frame.column(name)) for name in CLICK_FIELDS}
    for name, fold in (
        ("event_type", text.lower),
        ("conversion_type", text.lower),
        ("currency", text.upper),
    ):
        fields[name] = fold(fields[name])
    value_text = fields["conversion_value"]
    checked = _times_and_costs(fields["timestamp"], value_text, rules)
    value = checked.column("cost")
    frame_error, event_type = frame.column(FRAME_ERROR), fields["event_type"]
    ok = pc.is_null(frame_error)
    conditions: list[tuple[pa.Array | pa.ChunkedArray, Label]] = [
        _framing_reason(frame_error),
        *_required_missing(ok, fields, CLICK_REQUIRED),
        (
            pc.and_(
                pc.and_(ok, pc.is_valid(event_type)),
                pc.invert(pc.is_in(event_type, pa.array(EVENT_TYPES))),
            ),
            "event_type_invalid",
        ),
        *_amount_reasons("conversion_value", value_text, value, MAX_CONVERSION_VALUE),
        *((checked.column(code), code) for code in _TIME_CHECKS),
    ]
    reasons = labels_where(conditions, frame.num_rows)
    # The payload: _CLICK_PAYLOAD's texts (the value as the engine prints it), the click's
    # reference after them only when it has one (_click_payload).
    parts = [
        checked.column("event_time_text"),
        *(
            checked.column("cost_text") if f == "conversion_value" else fields[f]
            for f in CLICK_FIELDS
            if f not in ("event_id", "timestamp", "click_ref")
        ),
        frame.column("extras"),
    ]
    click_ref, given_id = fields["click_ref"], fields["event_id"]

    def joined(columns: list[pa.Array | pa.ChunkedArray], ref: Any) -> Any:
        return pc.binary_join_element_wise(
            payload_text(columns), ref, SEPARATOR, null_handling="skip"
        )

    texts = joined([given_id, *parts], click_ref)
    event_id = given_id
    missing = np.flatnonzero(pc.is_null(given_id).to_numpy(zero_copy_only=False))
    if len(missing):  # the fingerprint: the payload without the (missing) id
        fingerprint = joined(
            [column_ascending(part, missing) for part in parts],
            column_ascending(click_ref, missing),
        )
        ids = pc.binary_join_element_wise("fp-", md5_hex(fingerprint), "")
        event_id = replaced(given_id, missing, ids)
    rows = pa.table(
        {
            "event_id": event_id,
            "event_type": event_type,
            "event_time": checked.column("event_time"),
            **{f: fields[f] for f in ("user_id", "campaign_id", "ad_creative_id", "impression_id")},
            "conversion_type": fields["conversion_type"],
            "conversion_value": value,
            "currency": fields["currency"],
            "click_ref": click_ref,
            "extras": frame.column("extras"),
            "payload_hash": payload_hash(texts),
            **({"payload": texts} if payload else {}),
            "segment": frame.column("segment"),
            "source_position": frame.column("source_position"),
            "raw": spread_ascending(frame.column(RAW), np.flatnonzero(rejected_mask(reasons))),
            "frame_error": frame_error,
            "reasons": reasons,
        }
    )
    return rows


def _clicks_by_engine(frame: pa.Table, rules: Rules, payload: bool = False) -> pa.Table:
    """:func:`standardize_clicks` by the engine alone (the spec; frames not all text)."""
    ok = "frame_error IS NULL"
    reasons = (
        "list_concat("
        "CASE WHEN frame_error IS NOT NULL THEN [split_part(frame_error, ':', 1)] ELSE [] END, "
        + _reasons(
            [
                *_missing(CLICK_REQUIRED, ok),
                (
                    f"{ok} AND event_type IS NOT NULL AND event_type NOT IN {tuple(EVENT_TYPES)}",
                    "event_type_invalid",
                ),
                (
                    "value_text IS NOT NULL AND conversion_value IS NULL",
                    "number_invalid:conversion_value",
                ),
                ("conversion_value < 0", "negative_value:conversion_value"),
                (
                    f"conversion_value > {MAX_CONVERSION_VALUE}",
                    "amount_too_large:conversion_value",
                ),
                *checks_sql("event_time", "ts_text IS NOT NULL"),
            ]
        )
        + ")"
    )
    query = f"""
    WITH s AS (
      SELECT segment, source_position, raw, frame_error, extras,
        {_text("event_id")} AS given_id, {_text("timestamp")} AS ts_text,
        {_text("user_id")} AS user_id, {_text("campaign_id")} AS campaign_id,
        lower({_text("event_type")}) AS event_type, {_text("impression_id")} AS impression_id,
        {_text("ad_creative_id")} AS ad_creative_id, lower({_text("conversion_type")}) AS conversion_type,
        {_text("conversion_value")} AS value_text,
        {_finite_number(_text("conversion_value"))} AS conversion_value,
        upper({_text("currency")}) AS currency, {_text("click_ref")} AS click_ref
      FROM frame
    ), t AS (
      SELECT *, {parse_text_sql("ts_text")}::TIMESTAMPTZ AS event_time FROM s
    ), r AS (
      SELECT *, {reasons} AS reasons, {_TIME_TEXT} AS event_time_text FROM t
    )
    SELECT
      coalesce(given_id, CASE WHEN given_id IS NULL THEN 'fp-' || md5({_click_payload(_CLICK_PAYLOAD)}) END) AS event_id,
      event_type, event_time, user_id, campaign_id, ad_creative_id, impression_id,
      conversion_type, conversion_value, currency, click_ref, extras,
      {_click_payload(["given_id", *_CLICK_PAYLOAD])} AS payload,
      segment, source_position, CASE WHEN len(reasons) > 0 THEN raw END AS raw, frame_error, reasons
    FROM r
    """
    return _hashed(query, rules.params(), frame, payload)


# ---------------------------------------------------------------- bid requests

_BID_PAYLOAD = [
    "exchange",
    "event_time_text",
    "user_id",
    "site_domain",
    "device_type",
    "country",
    "floor_price",
    "targeting_text",
    "bid_price",
    "campaign_id",
    "ad_creative_id",
    "extras",
]


_PRICES = ("floor_price", "bid_price")
# Payload columns that are not text: their text is the engine's (CAST … AS VARCHAR), printed
# outside it (_engine_texts, the time by Arrow).
_BID_ENGINE_TEXTS = ("event_time_text", *_PRICES)
# A standardized bid's columns before its raw text, framing error and reasons (payload
# columns added after the extras, the targeting map before the bid price).
_BID_COLUMNS = (
    "auction_id",
    "exchange",
    "event_time",
    "user_id",
    "site_domain",
    "device_type",
    "country",
    "floor_price",
    "bid_price",
    "campaign_id",
    "ad_creative_id",
    "extras",
    "segment",
    "source_position",
)


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column as the engine hands text back (``string``): a ``large_string`` column's
    bytes are shared, only its offsets narrowed."""
    return column.cast(pa.string()) if column.type != pa.string() else column


def _price_sql(column_type: pa.DataType, name: str) -> tuple[str, str]:
    """(the price as DOUBLE, its text when that text is what arrived) for a frame column."""
    if pa.types.is_floating(column_type) or pa.types.is_integer(column_type):
        return f"CAST({name} AS DOUBLE)", "NULL::VARCHAR"
    return f"TRY_CAST(trim({name}) AS DOUBLE)", _text(f"CAST({name} AS VARCHAR)")


def standardize_bids(frame: pa.Table, rules: Rules, payload: bool = False) -> pa.Table:
    """Decoded Avro columns → canonical bid-request rows with reasons.

    Bids always carry ``auction_id`` (required), so no fingerprint ids here; the raw
    text of a rejected record is its JSON rendering, built only for rejected rows.
    """
    ts_type = frame.schema.field("timestamp").type
    event_time = (
        within_years_sql("timestamp::TIMESTAMPTZ")
        if pa.types.is_timestamp(ts_type)
        else parse_text_sql("timestamp")
    )
    # The time as it arrived: a typed (Avro) time is null where its text would be, so the
    # checks read it as it is and only a rejected record's JSON prints it (every bid's time
    # printed cost ≈ 0.18 µs a bid).
    ts_text = "timestamp"
    ok = "frame_error IS NULL"
    # A price the producer typed as text (Avro string, JSON "1.5") arrives as text: numbers
    # in it are read, anything else quarantines its record alone (number_invalid).
    prices = {name: _price_sql(frame.schema.field(name).type, name) for name in _PRICES}
    frame, texts = _normalized_texts(frame, _BID_TEXTS)
    # Columns the rows take from the frame as they are (texts Arrow normalized, the extras,
    # the framing errors): through the engine each was copied in and out (≈ 0.12 µs a bid).
    passed = {c for c in _BID_TEXTS if texts[c] == c} | {"extras", "frame_error"}
    reasons = (
        "list_concat("
        "CASE WHEN frame_error IS NOT NULL THEN [split_part(frame_error, ':', 1)] ELSE [] END, "
        + _reasons(
            [
                *_missing(BID_REQUIRED, ok),
                *[
                    (f"{name}_text IS NOT NULL AND {name} IS NULL", f"number_invalid:{name}")
                    for name in _PRICES
                ],
                ("NOT isfinite(floor_price)", "number_invalid:floor_price"),
                ("NOT isfinite(bid_price)", "number_invalid:bid_price"),
                ("floor_price < 0", "negative_value:floor_price"),
                ("bid_price < 0", "negative_value:bid_price"),
                *(
                    (f"isfinite({p}) AND {p} > {MAX_PRICE}", f"amount_too_large:{p}")
                    for p in _PRICES
                ),
                *checks_sql("event_time", "ts_text IS NOT NULL"),
            ]
        )
        + ")"
    )
    record_json = (
        "CAST(to_json(struct_pack(auction_id, timestamp := CAST(ts_text AS VARCHAR), user_id, exchange, site_domain, "
        "device_type, country, floor_price := coalesce(to_json(floor_price), to_json(floor_price_text)), "
        "ad_targeting := targeting_json::JSON, bid_price := coalesce(to_json(bid_price), to_json(bid_price_text)), "
        "campaign_id, ad_creative_id)) AS VARCHAR)"
    )
    # ... and the fields outside the contract, as the extras hold them (an object's text):
    # without them a container that names its fields otherwise (``auctionId``) was
    # quarantined as a record of nulls, its values nowhere.
    record_json_whole = (
        f"CASE WHEN extras IS NULL OR extras = '{{}}' THEN {record_json} ELSE "
        f"rtrim({record_json}, '}}') || ',' || ltrim(extras, '{{') END"
    )
    query = f"""
    WITH s AS (
      SELECT segment, source_position, raw, frame_error, extras,
        {texts["auction_id"]} AS auction_id, {ts_text} AS ts_text, {event_time}::TIMESTAMPTZ AS event_time,
        {texts["user_id"]} AS user_id, {texts["exchange"]} AS exchange,
        {texts["site_domain"]} AS site_domain, {texts["device_type"]} AS device_type,
        {texts["country"]} AS country, targeting_text, targeting_json,
        {prices["floor_price"][0]} AS floor_price, {prices["floor_price"][1]} AS floor_price_text,
        {prices["bid_price"][0]} AS bid_price, {prices["bid_price"][1]} AS bid_price_text,
        {texts["campaign_id"]} AS campaign_id, {texts["ad_creative_id"]} AS ad_creative_id
      FROM frame
    ), r AS (
      SELECT *, {reasons} AS reasons FROM s
    )
    SELECT {", ".join(f'"{c}"' for c in _BID_COLUMNS if c not in passed)},
      CASE WHEN len(reasons) > 0 THEN coalesce(raw, {record_json_whole}) END AS raw, reasons
    FROM r
    """
    # The maps never enter the engine: it reads their texts, the rows take them as they are.
    targeting = frame.column("ad_targeting")
    text, json, codes = _targeting_texts(targeting)
    by_arrow = _bids_by_arrow(frame, passed, rules)
    if by_arrow is None:
        computed = engine.run(
            query,
            rules.params(),
            frame=frame.drop_columns(["ad_targeting"])
            .append_column("targeting_text", text)
            .append_column("targeting_json", json.take(codes)),
        )
    else:
        computed, suspect = by_arrow
        if len(suspect):  # the few bids a reason may hold for: the engine's, put back
            by_engine = engine.run(
                query,
                rules.params(),
                frame=take_ascending(frame.drop_columns(["ad_targeting"]), suspect)
                .append_column("targeting_text", column_ascending(text, suspect))
                .append_column("targeting_json", json.take(codes.take(pa.array(suspect)))),
            )
            computed = _put_back(computed, suspect, by_engine)
    rows = pa.table(
        {
            c: _as_string(frame.column(c)) if c in passed else computed.column(c)
            for c in [*_BID_COLUMNS, "raw", "frame_error", "reasons"]
        }
    )
    # The time and the prices as the engine prints them, printed outside it (its printing
    # of the two prices was 40 % of the query: ≈ 0.18 µs a bid).
    event_time = rows.column("event_time")
    rows = rows.append_column("event_time_text:text", _epoch_us_text(event_time))
    for price in _PRICES:
        rows = rows.append_column(f"{price}:text", _engine_texts(rows.column(price)))
    # The payload (kernels.fingerprint's payload_sql of these columns) is hashed by the
    # helpers, not joined in the engine (concatenating every row's texts there cost ≈ 0.9 µs
    # a bid). The engine only prints the numbers and the time, as the payload always had them.
    parts = [
        rows.column(f"{c}:text")
        if c in _BID_ENGINE_TEXTS
        else text
        if c == "targeting_text"
        else rows.column(c)
        for c in ["auction_id", *_BID_PAYLOAD]
    ]
    hashes = payload_hashes(parts)
    rows = rows.drop_columns([f"{c}:text" for c in _BID_ENGINE_TEXTS])
    at = rows.schema.get_field_index("extras") + 1
    if payload:  # see standardize_impressions
        rows = rows.add_column(at, "payload", payload_text(parts))
    rows = rows.add_column(at, "payload_hash", hashes)
    return rows.add_column(rows.schema.get_field_index("bid_price"), "ad_targeting", targeting)


# The columns of the engine's bid query that :func:`_bids_by_arrow` computes, and those of
# them a bid's reasons may change (the others are the frame's).
_FROM_ENGINE = ("event_time", *_PRICES, "raw", "reasons")


def _put_back(computed: pa.Table, rows: np.ndarray, by_engine: pa.Table) -> pa.Table:
    """:func:`_bids_by_arrow`'s columns with the engine's at ``rows`` (ascending): each by
    one take from the two arrays end to end, and a reason list, or a raw text, that only
    those rows have, by offsets (``replaced``'s spread and choice over every row cost
    ≈ 6 ms a piece, for its ≈ 140 bids).

    >>> t = pa.table({"event_time": [1, 2, 3], "floor_price": [1.0, 2.0, 3.0],
    ...     "bid_price": [None, 5.0, 6.0], "raw": pa.nulls(3, pa.string()),
    ...     "reasons": pa.array([[], [], []], LABEL_LISTS)})
    >>> e = pa.table({"event_time": [9], "floor_price": [None], "bid_price": [9.0],
    ...     "raw": ["{}"], "reasons": pa.array([["r"]], LABEL_LISTS)})
    >>> _put_back(t, np.array([1]), e).to_pylist()[1]
    {'event_time': 9, 'floor_price': None, 'bid_price': 9.0, 'raw': '{}', 'reasons': ['r']}
    """
    n = computed.num_rows
    at = np.arange(n, dtype=np.int64)
    at[rows] = n + np.arange(len(rows))
    columns = {}
    for name in computed.column_names:
        column, values = computed.column(name), by_engine.column(name).combine_chunks()
        if name not in _FROM_ENGINE:
            columns[name] = column
        elif name == "raw":  # (null for every other bid)
            columns[name] = spread(values, rows, n)
        elif name == "reasons" and not values.null_count:  # (none for every other bid)
            lengths = np.zeros(n, dtype=np.int32)
            lengths[rows] = pc.list_value_length(values).to_numpy()
            offsets = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            columns[name] = pa.ListArray.from_arrays(
                pa.array(offsets), pc.list_flatten(values), type=values.type
            )
        else:
            both = pa.concat_arrays([*column.chunks, values.cast(column.type)])
            columns[name] = both.take(pa.array(at))
    return pa.table(columns)


def _bids_by_arrow(
    frame: pa.Table, passed: set[str], rules: Rules
) -> tuple[pa.Table, np.ndarray] | None:
    """The columns the engine's query computes (:data:`_FROM_ENGINE`, the segment and
    position) by Arrow, when the frame is typed as an Avro container types it (each bid's
    time, its prices; no raw text, no reason), and the rows (ascending) some reason's
    condition may hold for, whose columns are the engine's to give (the caller's); None
    for the engine to compute the whole frame (a time or a price typed as text, say).

    A batch piece's ≈ 140 k bids hold ≈ 140 with a reason: the query over all of them cost
    ≈ 20 ms, most of it on bids it found nothing wrong with. These tests are its reasons'
    conditions, a bid for which none holds has the columns given here (and a micro-batch
    of good bids needs no query, ≈ 6 ms of CPU a call to plan).
    """
    times, prices = frame.column("timestamp"), [frame.column(p) for p in _PRICES]
    if not (
        pa.types.is_timestamp(times.type)
        and times.type.unit != "ns"  # the cast to µs would truncate (the engine's own rule)
        and all(pa.types.is_floating(p.type) for p in prices)
        and passed >= set(_BID_TEXTS)  # every text field is text (normalized by Arrow)
    ):
        return None
    n = frame.num_rows
    suspect = np.zeros(n, dtype=bool)
    if frame.column(FRAME_ERROR).null_count < n:  # some record's framing failed
        suspect |= pc.is_valid(frame.column(FRAME_ERROR)).to_numpy(zero_copy_only=False)
    for f in BID_REQUIRED:  # required_missing (a normalized text: empty is null)
        if f != "timestamp" and frame.column(f).null_count:
            suspect |= pc.is_null(frame.column(f)).to_numpy(zero_copy_only=False)
    event_time = times.cast(pa.timestamp("us", "UTC"))
    params = rules.params()
    # Within [oldest, future_limit] is within the years a lake keeps too (timestamp_invalid);
    # compared as Arrow scalars: year 20000 is no datetime.
    oldest = pa.scalar(params["oldest"], event_time.type)
    future_limit = pa.scalar(params["future_limit"], event_time.type)
    within = pc.and_(
        pc.greater_equal(event_time, oldest), pc.less_equal(event_time, future_limit)
    )  # null where the time is (required_missing:timestamp)
    suspect |= ~pc.fill_null(within, False).to_numpy(zero_copy_only=False)
    doubles = [p.cast(pa.float64()) for p in prices]
    for price in doubles:
        # number_invalid (not finite), negative_value, amount_too_large; a null has none.
        fine = pc.and_(
            pc.is_finite(price),
            pc.and_(pc.greater_equal(price, 0), pc.less_equal(price, MAX_PRICE)),
        )
        suspect |= ~pc.fill_null(fine, True).to_numpy(zero_copy_only=False)
    columns = {
        "event_time": event_time,
        **dict(zip(_PRICES, doubles, strict=True)),
        "segment": frame.column("segment"),
        "source_position": frame.column("source_position"),
        "raw": pa.nulls(n, pa.string()),
        "reasons": pa.ListArray.from_arrays(
            pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string()), LABEL_LISTS
        ),
    }
    return pa.table(columns), np.flatnonzero(suspect)


def _engine_texts(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each double's text as the engine prints it (``CAST(v AS VARCHAR)``): by the compiled
    helpers where they can (``native.double_texts``: a few decimals, as prices are), the
    engine's for the rest; null for a null."""
    found = native.double_texts(values)
    present = pc.is_valid(values)
    if found is None:
        texts, asked = pa.nulls(len(values), pa.string()), np.arange(len(values))
    else:
        texts, decided = found
        asked = np.flatnonzero(present.to_numpy(zero_copy_only=False) & ~decided)
    if len(asked):
        printed = engine.run(
            "SELECT CAST(v AS VARCHAR) AS t FROM doubles",
            doubles=pa.table({"v": column_ascending(values, asked)}),
        ).column("t")
        texts = replaced(texts, asked, printed)
    return pc.if_else(present, texts, pa.scalar(None, pa.string()))


# Each bid text field's normalization: its SQL (the spec) and the same by Arrow (kernels.text).
_Fold = Callable[[text.Column], text.Column]
_BID_TEXTS: dict[str, tuple[str, _Fold | None]] = {
    "auction_id": ("", None),
    "user_id": ("", None),
    "exchange": ("lower", text.lower),
    "site_domain": ("lower", text.lower),
    "device_type": ("lower", text.lower),
    "country": ("upper", text.upper),
    "campaign_id": ("", None),
    "ad_creative_id": ("", None),
}


def _normalized_texts(
    frame: pa.Table, fields: dict[str, tuple[str, _Fold | None]]
) -> tuple[pa.Table, dict[str, str]]:
    """The frame with its text ``fields`` trimmed (and case-folded) by Arrow, and the SQL
    each field is then read by: the bare column. A column that is not text (all nulls, say)
    keeps the SQL spelling, ``case(nullif(trim(x), ''))``, which the Arrow one reproduces
    (:mod:`.text`): in the engine each such expression copied every string in and out."""
    sql = {}
    for name, (case, fold) in fields.items():
        column = frame.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            normalized = text.text(column)
            if fold is not None:
                normalized = fold(normalized)
            frame = frame.set_column(frame.schema.get_field_index(name), name, normalized)
            sql[name] = name
        else:
            sql[name] = f"{case}({_text(name)})" if case else _text(name)
    return frame, sql


def _targeting_texts(targeting: pa.ChunkedArray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The engine's text of each targeting map (``CAST(ad_targeting AS VARCHAR)``, part of
    the payload); the JSON (``to_json``, for a rejected bid's raw record) of each distinct
    map, and each map's code into it (null for a null map): rendered once per distinct
    map — a few thousand audiences recur across tens of thousands of bids, and moving a
    map into the engine and rendering it costs more than a microsecond — and the JSON
    taken only for the few bids whose record is rendered.

    Maps are told apart exactly without rendering them: by the compiled helpers
    (``native.map_codes``: maps of one hash compared entry by entry), else each key and
    value becomes its code in a dictionary of the column's keys (values), and each map the
    bytes of its codes in order, so two maps have the same bytes exactly when they hold
    the same entries in the same order.

    >>> m = pa.chunked_array([pa.array([[("a", "1")], None, [("a", "1")], []], pa.map_(pa.string(), pa.string()))])
    >>> text, json, codes = _targeting_texts(m)
    >>> text.to_pylist(), json.take(codes).to_pylist()
    (['{a=1}', None, '{a=1}', '{}'], ['{"a":"1"}', None, '{"a":"1"}', '{}'])
    """
    found = native.map_codes(targeting)
    if found is not None:
        codes, firsts = found
        text, json = _rendered(column_ascending(targeting, firsts).combine_chunks())
        indices = pa.array(codes, mask=codes < 0)
        return text.take(indices), json, indices
    maps = targeting.combine_chunks()
    if not pa.types.is_map(maps.type) or len(maps) == 0:
        text, json = _rendered(maps)
        return text, json, pa.array(np.arange(len(maps)))
    if maps.offset:
        maps = pa.concat_arrays([maps])  # offsets from zero, so its buffers read as below
    offsets = np.frombuffer(maps.buffers()[1], dtype=np.int32)[: len(maps) + 1]
    first_entry, entries = int(offsets[0]), int(offsets[-1] - offsets[0])
    codes = np.empty((entries, 2), dtype=np.int32)
    for i, part in enumerate((maps.keys, maps.items)):
        encoded = pc.dictionary_encode(part.slice(first_entry, entries))
        codes[:, i] = pc.fill_null(encoded.indices, -1).to_numpy()
    shapes = pa.Array.from_buffers(
        pa.binary(),
        len(maps),
        [maps.buffers()[0], pa.py_buffer((offsets - offsets[0]) * 8), pa.py_buffer(codes)],
        null_count=maps.null_count,
    )
    distinct = pc.dictionary_encode(shapes)
    index = pc.fill_null(distinct.indices, -1).to_numpy()
    valid = np.flatnonzero(index >= 0)
    first = np.zeros(len(distinct.dictionary), dtype=np.int64)
    first[index[valid][::-1]] = valid[::-1]  # each distinct map's first row
    text, json = _rendered(maps.take(pa.array(first)))
    return pc.take(text, distinct.indices), json, distinct.indices


# Maps rendered here at most (a micro-batch's); the engine's query costs ≈ 2-5 ms to plan and
# ≈ 5 µs a map, rendering one here ≈ 8-12 µs.
_RENDERED_HERE_AT_MOST = 512


def _rendered(maps: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The engine's text and JSON of each map: by the compiled helpers where they are built
    (:func:`_rendered_by_helpers`, any number of maps); else here for the maps whose keys
    and values are all plain (:func:`_plain_rendering`), by the engine for the others (a
    query over a second's few hundred maps cost ≈ 2-5 ms of CPU, most of it planning). Past
    :data:`_RENDERED_HERE_AT_MOST` maps the engine renders them all: a batch piece's 4,401
    distinct maps took 36-58 ms here against its 25 ms."""
    found = native.map_renders(maps) if pa.types.is_map(maps.type) else None
    if found is not None:  # the compiled helpers: any number of maps
        return _rendered_by_helpers(maps, *found)
    if not pa.types.is_map(maps.type) or len(maps) > _RENDERED_HERE_AT_MOST:
        return _engine_rendered(maps)
    texts: list[str | None] = [None] * len(maps)
    jsons: list[str | None] = [None] * len(maps)
    left = []
    for i, entries in enumerate(maps.to_pylist()):
        if entries is None:
            continue  # a null map: null text, null JSON
        plain = _plain_rendering(entries)
        if plain is None:
            left.append(i)
        else:
            texts[i], jsons[i] = plain
    text, json = pa.array(texts, pa.string()), pa.array(jsons, pa.string())
    if left:
        index = np.array(left)
        by_engine = _engine_rendered(maps.take(pa.array(index)))
        text, json = replaced(text, index, by_engine[0]), replaced(json, index, by_engine[1])
    return text, json


def _rendered_by_helpers(
    maps: pa.Array, text: pa.Array, json: pa.Array, decided: np.ndarray
) -> tuple[pa.Array, pa.Array]:
    """:func:`_rendered` of the maps the compiled helpers rendered as
    :func:`_plain_rendering` does (``native.map_renders``: a batch piece's ≈ 4,400 distinct
    targeting maps, ≈ 15 ms of an engine query, in ≈ 1 ms), the engine's for the others."""
    rendered = pa.array(decided)
    text = pc.if_else(rendered, text, pa.scalar(None, pa.string()))
    json = pc.if_else(rendered, json, pa.scalar(None, pa.string()))
    left = np.flatnonzero(pc.is_valid(maps).to_numpy(zero_copy_only=False) & ~decided)
    if len(left):
        by_engine = _engine_rendered(maps.take(pa.array(left)))
        text, json = replaced(text, left, by_engine[0]), replaced(json, left, by_engine[1])
    return joined(text), joined(json)


def _engine_rendered(maps: pa.Array) -> tuple[pa.Array, pa.Array]:
    rows = engine.run(
        "SELECT CAST(m AS VARCHAR) AS t, CAST(to_json(m) AS VARCHAR) AS j FROM maps",
        maps=pa.table({"m": maps}),
    )
    return rows.column("t").combine_chunks(), rows.column("j").combine_chunks()


# Texts the engine writes in a map's text as they are, and in its JSON between quotes: ASCII
# letters, digits and a few marks (no quote, backslash or control character to escape).
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.|/@+\-]+(?: +[A-Za-z0-9_.|/@+\-]+)*")
# ... and those it writes in a map's text between single quotes (a comma or a colon, say,
# would read as the map's own; leading or trailing spaces would be lost).
_QUOTED_TEXT = re.compile(r"[A-Za-z0-9_.|/@+\- ,:=()\[\]{}]*")


def _plain_rendering(entries: list[tuple[str, str | None]]) -> tuple[str, str] | None:
    """``CAST(m AS VARCHAR)`` and ``to_json(m)`` of a map whose keys and values all match
    :data:`_QUOTED_TEXT` (None otherwise: the engine renders it).

    >>> _plain_rendering([("age", "18-24"), ("interests", "tech,music")])
    ("{age=18-24, interests='tech,music'}", '{"age":"18-24","interests":"tech,music"}')
    """
    if len({key for key, _ in entries}) < len(entries):
        return None  # a key twice: the engine's error, as before
    shown, json = [], []
    for key, value in entries:
        if value is None or not (_QUOTED_TEXT.fullmatch(key) and _QUOTED_TEXT.fullmatch(value)):
            return None
        shown.append(f"{_shown(key)}={_shown(value)}")
        json.append(f'"{key}":"{value}"')
    return "{" + ", ".join(shown) + "}", "{" + ",".join(json) + "}"


def _shown(text: str) -> str:
    """A plain text as the engine writes it in a map's text: bare, or between quotes when
    it is empty, spells NULL, or holds a character the map's own syntax uses."""
    if _PLAIN_TEXT.fullmatch(text) and text.lower() != "null":
        return text
    return f"'{text}'"
