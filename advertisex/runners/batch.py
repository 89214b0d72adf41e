"""One source of one batch: framed records in, per-table appends and accounting out.

Pure with respect to storage: it is handed the framed records, the segment lineage
and the batch's rules (with a way to look up keys already committed), and returns
what to commit. The runners (and quarantine replay) do the reading and committing;
the Spark runner calls the two halves, :func:`standardize_source` and
:func:`finish_source`, on its executors.

Wide data crosses the engine as few times as possible: standardize once; find
duplicates on (key, hash) only; then per table the surviving rows' sort keys are
ordered (campaign and time, for the data files) and the wide columns gathered once in
that order, lineage looked up by segment index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.dims.model import Dimensions
from advertisex.kernels import standardize as std
from advertisex.kernels.dedupe import find_duplicates, key_column
from advertisex.kernels.enrich import enrich
from advertisex.kernels.fingerprint import align
from advertisex.kernels.ivt import IvtRules, classify
from advertisex.kernels.validate import check_domains, fill_missing_raw
from advertisex.model.schemas import FILTERED, QUARANTINE, SOURCES, TABLES
from advertisex.util import engine

if TYPE_CHECKING:
    from advertisex.runners.rules import BatchRules

STANDARDIZERS: dict[str, Callable[[pa.Table, std.Rules], pa.Table]] = {
    "impressions": std.standardize_impressions,
    "clicks": std.standardize_clicks,
    "bids": std.standardize_bids,
}

# Which standardized click rows feed which table.
_EVENT_TYPE = {"curated.clicks": "click", "curated.conversions": "conversion"}


@dataclass
class SourceAccount:
    """What happened to every record of one source in one batch."""

    source: str
    files: int = 0
    bytes: int = 0
    records_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    filtered: int = 0
    duplicates: int = 0
    conflicts: int = 0
    new_fields: set[str] = field(default_factory=set)
    by_table: dict[str, int] = field(default_factory=dict)
    # Users whose events were invalid traffic: their later clicks and conversions are too.
    ivt_users: set[str] = field(default_factory=set)

    @property
    def balanced(self) -> bool:
        return self.records_in == self.accepted + self.quarantined + self.filtered + self.duplicates


# What a dedupe step says of one table's candidate rows: (mask over all the source's rows
# of those that repeat an earlier event, how many, how many of them conflict).
Repeats = Callable[[str, np.ndarray], tuple[np.ndarray, int, int]]


def process_source(
    source: str, frame: pa.Table, lineage: pa.Table, batch_id: str, rules: BatchRules
) -> tuple[dict[str, pa.Table], SourceAccount]:
    """Standardize, validate, dedupe one source's framed records into table appends.

    ``lineage`` maps the frame's ``segment`` index to source_file and ingest_time;
    ``rules`` is what the batch is judged against: validation, dimensions, the committed
    keys a candidate may repeat (``rules.dedupe``) and the invalid-traffic rules (unique
    rows they catch go to ``curated.filtered`` instead of their table).
    """
    standardized = standardize_source(source, frame, rules.validation, rules.dims)

    def repeats(table_name: str, candidate: np.ndarray) -> tuple[np.ndarray, int, int]:
        index = np.flatnonzero(candidate)
        candidates = standardized.select(_key_columns(table_name)).take(pa.array(index))
        committed = rules.dedupe(table_name, candidates)
        keys = key_column(table_name, candidates)
        # Keys committed under an earlier hash version compare by that version's hash.
        hashes = align(
            keys,
            candidates.column("payload_hash"),
            lambda rows: standardized.column("payload").take(pa.array(index[rows])),
            *(committed or (None, None)),
        )
        found = find_duplicates(keys, hashes, *(committed or (None, None)))
        repeated = np.zeros(standardized.num_rows, dtype=bool)
        repeated[index[found.is_duplicate]] = True
        return repeated, found.count, found.conflicts

    return finish_source(source, standardized, lineage, batch_id, repeats, rules.ivt)


def standardize_source(
    source: str, frame: pa.Table, rules: std.Rules, dims: Dimensions | None
) -> pa.Table:
    """The row-local half of processing (any slice of the records gives the same rows):
    standardize, domain rules (ISO codes, enumerations, id formats, known dimensions —
    rows they reject get their raw text back from the frame), enrichment (user agent,
    host, day/hour, dimensions as of event time)."""
    standardized = fill_missing_raw(
        check_domains(STANDARDIZERS[source](frame, rules), rules.domains), frame
    )
    return enrich(source, standardized, dims)


def finish_source(
    source: str,
    standardized: pa.Table,
    lineage: pa.Table,
    batch_id: str,
    repeats: Repeats,
    ivt: IvtRules | None = None,
) -> tuple[dict[str, pa.Table], SourceAccount]:
    """Standardized rows → quarantine, repeats dropped (as ``repeats`` says), invalid
    traffic split off, each table's rows in its schema; and the accounting."""
    account = SourceAccount(source, records_in=standardized.num_rows)
    rejected = rejected_mask(standardized)
    appends = {
        "curated.quarantine": quarantine_rows(
            standardized.filter(pa.array(rejected)), source, lineage, batch_id
        )
    }
    account.quarantined = int(rejected.sum())
    account.new_fields = extra_fields(standardized)
    for table_name in SOURCES[source]:
        candidate = candidates_mask(table_name, standardized, rejected)
        repeated, count, conflicts = repeats(table_name, candidate)
        keep = candidate & ~repeated
        if ivt is not None and table_name in IVT_TABLES:
            flagged, filtered = filter_invalid_traffic(
                table_name, standardized, keep, ivt, lineage, batch_id
            )
            keep &= ~flagged
            appends["curated.filtered"] = _concat(appends.get("curated.filtered"), filtered)
            account.filtered += filtered.num_rows
            account.ivt_users |= set(filtered.column("user_id").drop_null().to_pylist())
        rows = accepted_rows(table_name, standardized, keep, lineage, batch_id)
        appends[table_name] = rows
        account.accepted += rows.num_rows
        account.duplicates += count
        account.conflicts += conflicts
        account.by_table[table_name] = rows.num_rows
    return appends, account


def rejected_mask(rows: pa.Table) -> np.ndarray:
    """Rows with at least one reason: they go to quarantine."""
    return pc.greater(pc.list_value_length(rows.column("reasons")), 0).to_numpy(
        zero_copy_only=False
    )


def candidates_mask(table_name: str, rows: pa.Table, rejected: np.ndarray) -> np.ndarray:
    """Rows that may go to ``table_name``: accepted, and of its event type."""
    mask = ~rejected
    if table_name in _EVENT_TYPE:
        mask &= pc.fill_null(
            pc.equal(rows.column("event_type"), _EVENT_TYPE[table_name]), False
        ).to_numpy(zero_copy_only=False)
    return mask


def extra_fields(rows: pa.Table) -> set[str]:
    """Names of the unknown fields producers sent in this batch (from distinct ``extras``)."""
    if "extras" not in rows.column_names:
        return set()
    from advertisex.util import jsonutil

    names: set[str] = set()
    for text in pc.unique(rows.column("extras").combine_chunks()).drop_null().to_pylist():
        try:
            names.update(jsonutil.loads(text))
        except (jsonutil.JSONDecodeError, TypeError):
            continue
    return names


def filter_invalid_traffic(
    table_name: str,
    standardized: pa.Table,
    keep: np.ndarray,
    ivt: IvtRules,
    lineage: pa.Table,
    batch_id: str,
) -> tuple[np.ndarray, pa.Table]:
    """(mask of kept rows that are invalid traffic, their ``curated.filtered`` rows)."""
    index = np.flatnonzero(keep)
    columns = [
        c for c in ("user_agent", "ip", "extras", "user_id") if c in standardized.column_names
    ]
    verdicts = classify(standardized.select(columns).take(pa.array(index)), ivt)
    hit = pc.greater(pc.list_value_length(verdicts), 0).to_numpy(zero_copy_only=False)
    flagged = np.zeros(standardized.num_rows, dtype=bool)
    flagged[index[hit]] = True
    # Only the flagged rows (a few percent) go on: their verdicts beside them, JSON-packed.
    rows = standardized.take(pa.array(index[hit])).append_column(
        "ivt_rules", verdicts.filter(pa.array(hit))
    )
    spec = TABLES[table_name]
    record = ", ".join(f'"{c}"' for c in spec.schema.names if c in standardized.column_names)
    query = f"""
    SELECT $table AS event_table, {_ID[table_name]} AS event_id, event_time, user_id, campaign_id,
      ivt_rules AS rules, CAST(to_json(struct_pack({record})) AS VARCHAR) AS record,
      lineage.ingest_time, lineage.source_file, source_position, $batch_id AS batch_id
    FROM rows JOIN lineage USING (segment)
    ORDER BY segment, source_position
    """
    result = engine.run(
        query, {"table": table_name, "batch_id": batch_id}, rows=rows, lineage=lineage
    )
    return flagged, result.select(FILTERED.names).cast(FILTERED)


_ID = {
    "curated.impressions": "impression_id",
    "curated.clicks": "event_id",
    "curated.conversions": "event_id",
}
IVT_TABLES = tuple(_ID)


def _concat(first: pa.Table | None, second: pa.Table) -> pa.Table:
    return second if first is None else pa.concat_tables([first, second])


def _key_columns(table_name: str) -> list[str]:
    if table_name == "curated.bid_requests":
        return ["exchange", "auction_id", "payload_hash", "event_time"]
    if table_name == "curated.impressions":
        return ["impression_id", "payload_hash", "event_time"]
    return ["event_id", "payload_hash", "event_time"]


def accepted_rows(
    table_name: str, standardized: pa.Table, keep: np.ndarray, lineage: pa.Table, batch_id: str
) -> pa.Table:
    """The kept rows in the table's schema, with lineage, sorted as the table is.

    Only the sort keys go through the sort (the engine orders row numbers by them); the
    wide columns — user agents, extras, ids — are gathered once in that order, and the
    lineage columns are looked up by segment index instead of joined.
    """
    spec = TABLES[table_name]
    kept = np.flatnonzero(keep)
    keys = standardized.select(list(spec.sort_by)).take(pa.array(kept))
    order = ", ".join(f'"{c}"' for c in spec.sort_by)
    ranked = engine.run(
        f"SELECT i FROM keys ORDER BY {order}, i",
        keys=keys.append_column("i", pa.array(np.arange(len(kept), dtype=np.int64))),
    )
    rows = pa.array(kept[ranked.column("i").to_numpy()])
    # Where each row's segment sits in the lineage table (segment is a key, not a position).
    origin = pc.index_in(standardized.column("segment").take(rows), lineage.column("segment"))
    columns = []
    for target in spec.schema:
        if target.name in ("source_file", "ingest_time"):
            column = lineage.column(target.name).take(origin)
        elif target.name == "batch_id":
            column = pa.repeat(pa.scalar(batch_id, target.type), len(rows))
        elif target.name in standardized.column_names:
            column = standardized.column(target.name).take(rows)
        else:  # a column this source never produces (optional fields of later schema versions)
            column = pa.nulls(len(rows), target.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=spec.schema.names).cast(spec.schema)


def quarantine_rows(rejected: pa.Table, source: str, lineage: pa.Table, batch_id: str) -> pa.Table:
    """Rejected rows → ``curated.quarantine``: raw text, every reason, where it came from."""
    query = """
    SELECT $source AS source, reasons, rtrim(coalesce(raw, ''), chr(13) || chr(10)) AS raw,
      frame_error AS detail, event_time, lineage.ingest_time, lineage.source_file,
      source_position, $batch_id AS batch_id
    FROM rejected JOIN lineage USING (segment)
    ORDER BY segment, source_position
    """
    result = engine.run(
        query,
        {"source": source, "batch_id": batch_id},
        rejected=rejected.select(
            ["reasons", "raw", "frame_error", "event_time", "segment", "source_position"]
        ),
        lineage=lineage,
    )
    return result.select(QUARANTINE.names).cast(QUARANTINE)
