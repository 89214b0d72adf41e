"""Pick quarantined records by source, reason and time; count them; read them.

The quarantine table is read through pyiceberg with the source and time filters
pushed down; reasons are a list column, so the reason filter runs on the Arrow rows.
A reason filter matches a whole code (``required_missing``) or one field of it
(``required_missing:user_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.errors import UserInputError
from advertisex.model.schemas import SOURCES
from advertisex.util import engine

if TYPE_CHECKING:
    from advertisex.lake.tables import Lake

TABLE = "curated.quarantine"


@dataclass(frozen=True)
class Selection:
    """Which quarantined records: all by default, narrowed by each given filter."""

    source: str | None = None
    reason: str | None = None
    since: datetime | None = None  # landed at or after (ingest_time)
    until: datetime | None = None  # landed before (ingest_time)

    def __post_init__(self) -> None:
        if self.source is not None and self.source not in SOURCES:
            raise UserInputError(
                f"unknown source {self.source!r}", hint=f"use one of {', '.join(SOURCES)}"
            )
        if self.reason is not None:
            _check_reason(self.reason)
        if self.since and self.until and self.until <= self.since:
            raise UserInputError(
                f"until {self.until.isoformat()} is not after since {self.since.isoformat()}",
                hint="swap the two instants",
            )

    def row_filter(self) -> Any:
        from pyiceberg.expressions import AlwaysTrue, And, EqualTo, GreaterThanOrEqual, LessThan

        expression: Any = AlwaysTrue()
        if self.source:
            expression = And(expression, EqualTo("source", self.source))  # type: ignore[call-arg,misc]
        if self.since:
            since = self.since.isoformat()
            expression = And(expression, GreaterThanOrEqual("ingest_time", since))  # type: ignore[call-arg,misc]
        if self.until:
            until = self.until.isoformat()
            expression = And(expression, LessThan("ingest_time", until))  # type: ignore[call-arg,misc]
        return expression


def _check_reason(reason: str) -> None:
    """A reason no record can have is a typo to point out, not an empty answer."""
    import difflib

    from advertisex.model.reasons import CATALOGUE

    code, colon, field = reason.partition(":")
    if code in CATALOGUE and (field or not colon):
        return
    if code in CATALOGUE:  # "unknown_campaign:" matched no record and said only that
        raise UserInputError(
            f"reason {reason!r} names no field after its colon",
            hint=f"write {code} for every field, or {code}:FIELD for one",
        )
    typed = code.replace("-", "_").lower()
    near = difflib.get_close_matches(typed, list(CATALOGUE), n=1, cutoff=0.6)
    raise UserInputError(
        f"unknown reason {reason!r}" + (f"; did you mean {near[0]}?" if near else ""),
        hint="a reason is a code or code:field of docs/reasons.md; "
        "advertisex quarantine list shows those in the quarantine",
    )


def read(lake: Lake, selection: Selection, fields: tuple[str, ...] = ("*",)) -> pa.Table:
    """Every quarantined record the selection picks, oldest landing first (``fields``
    narrows the columns read; the ordering ones are always read)."""
    if fields != ("*",):
        fields = tuple(dict.fromkeys((*fields, "reasons", *_ORDER)))
    rows = lake.read(TABLE, selection.row_filter(), fields)
    if selection.reason and rows.num_rows:
        rows = rows.filter(reason_mask(rows.column("reasons"), selection.reason))
    return rows.sort_by([(column, "ascending") for column in _ORDER])


_ORDER = ("ingest_time", "source_file", "source_position")


def _these(lake: Lake, selection: Selection, chosen: pa.Table) -> pa.Table:
    """The whole rows of the ``chosen`` records (their :data:`_ORDER` columns), in that order:
    their landing files' rows read, then matched by place."""
    from pyiceberg.expressions import And, In

    files = set(chosen.column("source_file").drop_null().to_pylist())
    row_filter = And(selection.row_filter(), In("source_file", files))  # type: ignore[call-arg,misc]
    rows = lake.read(TABLE, row_filter)
    if not rows.num_rows:  # none chosen: its empty file names are typed otherwise (_place)
        return rows
    rows = rows.filter(pc.is_in(_place(rows), value_set=_place(chosen)))
    return rows.sort_by([(column, "ascending") for column in _ORDER])


def _place(rows: pa.Table) -> pa.ChunkedArray:
    """A record's landing time, file and position as one text, to match rows by."""
    return pc.binary_join_element_wise(
        pc.cast(pc.cast(rows.column("ingest_time"), pa.int64()), pa.string()),
        rows.column("source_file"),
        pc.cast(rows.column("source_position"), pa.string()),
        "\n",
        null_handling="replace",
    )


def reason_mask(reasons: pa.ChunkedArray | pa.Array, reason: str) -> pa.Array:
    """Rows having ``reason`` itself, or (for a bare code) any ``code:field`` of it.

    >>> reason_mask(pa.array([["a:x", "b"], ["ab"], []]), "a").to_pylist()
    [True, False, False]
    """
    lists = reasons.combine_chunks() if isinstance(reasons, pa.ChunkedArray) else reasons
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    hit = pc.or_(pc.equal(flat, reason), pc.starts_with(flat, reason + ":"))
    mask = np.zeros(len(lists), dtype=bool)
    mask[parents[hit.to_numpy(zero_copy_only=False)]] = True
    return pa.array(mask)


def summary(lake: Lake, selection: Selection) -> pa.Table:
    """Per source and reason: records, landing files, first and last landing time.

    A record with several reasons counts once under each of them.
    """
    columns = ("source", "reasons", "source_file", "ingest_time")
    rows = read(lake, selection, columns).select(list(columns))
    query = """
    SELECT source, reason, count(*) AS records, count(DISTINCT source_file) AS files,
      min(ingest_time) AS first_landed, max(ingest_time) AS last_landed
    FROM (SELECT source, unnest(reasons) AS reason, source_file, ingest_time FROM rows)
    WHERE $reason IS NULL OR reason = $reason OR starts_with(reason, $reason || ':')
    GROUP BY source, reason
    ORDER BY source, records DESC, reason
    """
    return engine.run(query, {"reason": selection.reason}, rows=rows)


def timeline(lake: Lake, selection: Selection) -> pa.Table:
    """Per hour of landing, source and reason: quarantined records (each under every one of
    its reasons, as in :func:`summary`)."""
    columns = ("source", "reasons", "ingest_time")
    rows = read(lake, selection, columns).select(list(columns))
    query = """
    SELECT date_trunc('hour', ingest_time) AS hour, source, reason, count(*) AS records
    FROM (SELECT source, unnest(reasons) AS reason, ingest_time FROM rows)
    WHERE $reason IS NULL OR reason = $reason OR starts_with(reason, $reason || ':')
    GROUP BY ALL
    ORDER BY hour, source, reason
    """
    return engine.run(query, {"reason": selection.reason}, rows=rows)


def records(lake: Lake, selection: Selection, limit: int | None = None) -> pa.Table:
    """The selected records for a person to read: reasons, where from, and the raw text.

    With ``limit``, the first ones are picked by their place alone and only their files are
    read whole: the console's page of twenty samples read every quarantined record's raw
    text first (a producer's 400 MB of junk lines took it to 2.4 GB, for every page view)."""
    if limit is None:
        rows = read(lake, selection)
    else:
        chosen = read(lake, selection, _ORDER).slice(0, limit)
        rows = _these(lake, selection, chosen).slice(0, limit)
    return rows.select(
        [
            "source",
            "reasons",
            "source_file",
            "source_position",
            "ingest_time",
            "event_time",
            "batch_id",
            "detail",
            "raw",
        ]
    )
