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

from advertisex import native
from advertisex.dims.model import Dimensions
from advertisex.kernels import standardize as std
from advertisex.kernels.dedupe import (
    KeyIndex,
    Store,
    append_part,
    distinct_sorted,
    find_duplicates,
    kept_order,
    key_column,
    key_hashes,
)
from advertisex.kernels.enrich import enrich
from advertisex.kernels.fingerprint import align
from advertisex.kernels.groups import rank_order
from advertisex.kernels.ivt import IvtRules, classify
from advertisex.kernels.split import rejected_mask
from advertisex.kernels.validate import check_domains, fill_missing_raw
from advertisex.model.schemas import FILTERED, QUARANTINE, SOURCES, TABLES
from advertisex.util import engine
from advertisex.util.arrays import chunks_of, column_ascending, joined, utc_days

if TYPE_CHECKING:
    from advertisex.runners.committed import DedupeLookup
    from advertisex.runners.rules import BatchRules

# (framed records, rules, payload: keep each row's payload text) → standardized rows
STANDARDIZERS: dict[str, Callable[[pa.Table, std.Rules, bool], pa.Table]] = {
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

    def add(self, other: SourceAccount) -> None:
        """Count ``other`` (of the same source: another piece, another batch) in this one."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.new_fields |= other.new_fields
        self.ivt_users |= other.ivt_users
        for table, n in other.by_table.items():
            self.by_table[table] = self.by_table.get(table, 0) + n


_COUNTS = (
    "files",
    "bytes",
    "records_in",
    "accepted",
    "quarantined",
    "filtered",
    "duplicates",
    "conflicts",
)


# What a dedupe step says of one table's candidate rows: (mask over all the source's rows
# of those that repeat an earlier event, how many, how many of them conflict).
Verdict = tuple[np.ndarray, int, int]
Repeats = Callable[[str, np.ndarray], Verdict]


class BatchDedupe:
    """Which candidates repeat an earlier event: one committed within the dedupe horizon
    (``lookup``, the batch rules' :class:`~advertisex.runners.committed.DedupeLookup`),
    or one of an earlier piece of the same batch.

    A batch may be judged in pieces, in arrival order: each piece's first occurrences are
    remembered (keys and hashes, indexed by key hash) for the pieces after it, so calling
    it piece by piece gives exactly the verdicts of one call over the whole batch — the
    first occurrence wins, a repeat with another payload hash is a conflict.

    ``store`` keeps the remembered rows of merged parts where it chooses (default: in
    memory); a runner that judges big batches maps them from a file
    (:class:`~advertisex.runners.committed.MappedRows`), so that only their key hashes
    take memory: a batch's remembered keys grow with its events, to ≈ 60 bytes an event.
    """

    def __init__(self, lookup: DedupeLookup, store: Store | None = None) -> None:
        self.lookup = lookup
        self._store = store
        self._earlier: dict[str, list[KeyIndex]] = {}

    def __call__(
        self,
        table_name: str,
        rows: pa.Table,
        candidate: np.ndarray,
        payloads: Payloads,
    ) -> Verdict:
        """The verdict on ``rows`` (standardized) where ``candidate`` holds, for
        ``table_name``; ``payloads``: their payload texts (:func:`payloads_of`)."""
        index = np.flatnonzero(candidate)
        # Picked by a filter, chunk by chunk: a take first joined each key column's chunks
        # (a piece's segments), then copied the candidates — nearly all of them — again.
        candidates = rows.select(_key_columns(table_name)).filter(pa.array(candidate))
        keys = key_column(table_name, candidates)
        hashed = key_hashes(keys)
        # Sorted once, for the lookups (the distinct hashes), the repeats among the
        # candidates and the index of those remembered: a sort of 100 k hashes is ≈ 4 ms
        # here, and each of the three sorted them again.
        order = np.argsort(hashed)
        ordered = hashed[order]
        looked_for = distinct_sorted(ordered)
        seen = [
            (key_column(table_name, committed), committed.column("payload_hash"))
            for committed in [self.lookup(table_name, candidates, looked_for)]
            if committed is not None
        ] + [
            (part.column("k"), part.column("h"))
            for part in (p.matching(looked_for) for p in self._earlier.get(table_name, []))
            if part.num_rows
        ]
        seen_keys = _chunked([k for k, _ in seen]) if seen else None
        seen_hashes = _chunked([h for _, h in seen]) if seen else None
        # Keys committed under an earlier hash version compare by that version's hash.
        hashes = align(
            keys,
            candidates.column("payload_hash"),
            lambda positions: payloads(index[positions]),
            seen_keys,
            seen_hashes,
        )
        found = find_duplicates(keys, hashes, seen_keys, seen_hashes, hashed, order)
        first = ~found.is_duplicate
        remembered = pa.table({"k": keys, "h": hashes}).filter(pa.array(first))
        self._earlier[table_name] = append_part(
            self._earlier.get(table_name, []),
            KeyIndex.sorted_by(remembered, *kept_order(order, ordered, first)),
            store=self._store,
        )
        repeated = np.zeros(rows.num_rows, dtype=bool)
        repeated[index[found.is_duplicate]] = True
        return repeated, found.count, found.conflicts

    def verdicts(self, source: str, rows: pa.Table, payloads: Payloads) -> dict[str, Verdict]:
        """The verdict on each table of ``source`` for its standardized ``rows`` (``payloads``:
        see :meth:`__call__`)."""
        rejected = rejected_mask(rows.column("reasons"))
        return {
            table_name: self(
                table_name, rows, candidates_mask(table_name, rows, rejected), payloads
            )
            for table_name in SOURCES[source]
        }


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
    payloads = payloads_of(source, frame, rules.validation, rules.dims)
    found = BatchDedupe(rules.dedupe).verdicts(source, standardized, payloads)
    return finish_source(
        source, standardized, lineage, batch_id, lambda name, _: found[name], rules.ivt
    )


def standardize_source(
    source: str,
    frame: pa.Table,
    rules: std.Rules,
    dims: Dimensions | None,
    payload: bool = False,
) -> pa.Table:
    """The row-local half of processing (any slice of the records gives the same rows):
    standardize, domain rules (ISO codes, enumerations, id formats, known dimensions —
    rows they reject get their raw text back from the frame), enrichment (user agent,
    host, day/hour, dimensions as of event time). ``payload``: the rows keep their payload
    text (``payload``), which dedupe needs of the few rows it compares by a version-1 hash
    (:func:`payloads_of`)."""
    standardized = fill_missing_raw(
        check_domains(STANDARDIZERS[source](frame, rules, payload), rules.domains), frame
    )
    return enrich(source, standardized, dims)


# Rows' positions (in the standardized rows a dedupe judges) → their payload texts.
Payloads = Callable[[np.ndarray], pa.ChunkedArray]


def payloads_of(
    source: str, frame: pa.Table, rules: std.Rules, dims: Dimensions | None
) -> Payloads:
    """The payload texts of rows of ``standardize_source(source, frame, …)``, standardized
    again — those rows alone — when asked: a version-1 key's few repeats ask, where every
    row's text kept for them cost more than the rest of its hash."""

    def payloads(positions: np.ndarray) -> pa.ChunkedArray:
        taken = frame.take(pa.array(positions, pa.int64()))
        return standardize_source(source, taken, rules, dims, payload=True).column("payload")

    return payloads


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
    rejected = rejected_mask(standardized.column("reasons"))
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
    columns = [
        c for c in ("user_agent", "ip", "extras", "user_id") if c in standardized.column_names
    ]
    # Every row is judged (the rules are row-local), so no kept-rows copy of the columns.
    verdicts = classify(standardized.select(columns), ivt)
    flagged = keep & pc.greater(pc.list_value_length(verdicts), 0).to_numpy(zero_copy_only=False)
    # Only the flagged rows (a few percent) go on: their verdicts beside them, JSON-packed.
    # Picked by a filter, which works chunk by chunk: a take from a column of several
    # chunks first copies all of them into one (the whole slice, to keep 3 % of it).
    hit = np.flatnonzero(flagged)
    picked = standardized.filter(pa.array(flagged))
    order, origin = _in_lineage_order(picked, lineage)
    rows = picked.take(order)
    spec = TABLES[table_name]
    record = [c for c in spec.schema.names if c in standardized.column_names]
    # Only the record's JSON is the engine's (its to_json is what the table has always held).
    packed = (
        engine.run(
            "SELECT CAST(to_json(struct_pack("
            + ", ".join(f'"{c}"' for c in record)
            + ")) AS VARCHAR) AS record FROM rows",
            rows=rows.select(record),
        ).column("record")
        if rows.num_rows
        else pa.array([], pa.string())
    )
    filtered = {
        "event_table": pa.repeat(pa.scalar(table_name, pa.string()), rows.num_rows),
        "event_id": rows.column(_ID[table_name]),
        "event_time": rows.column("event_time"),
        "user_id": rows.column("user_id"),
        "campaign_id": rows.column("campaign_id"),
        "rules": verdicts.take(pa.array(hit[order.to_numpy()])),
        "record": packed,
        **_lineage_columns(lineage, origin, rows, batch_id),
    }
    return flagged, pa.table(filtered).select(FILTERED.names).cast(FILTERED)


_ID = {
    "curated.impressions": "impression_id",
    "curated.clicks": "event_id",
    "curated.conversions": "event_id",
}
IVT_TABLES = tuple(_ID)


def _chunked(arrays: list[pa.Array | pa.ChunkedArray]) -> pa.ChunkedArray:
    """Text arrays as one chunked array (no copy)."""
    chunks = [c for a in arrays for c in chunks_of(a)]
    return pa.chunked_array([c.cast(pa.string()) for c in chunks], pa.string())


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
    """The kept rows in the table's schema, with lineage, sorted as the table is (by
    partition day first, so each day's data file is a slice: ``lake.datafiles``).

    Only the sort keys go through the sort (row numbers ordered by them); the wide
    columns — user agents, extras, ids — are gathered once in that order, and the
    lineage columns are looked up by segment index instead of joined.
    """
    spec = TABLES[table_name]
    # A few-valued sort key (the campaign) is encoded once, for its ranks and its codes:
    # sort_order and the gather below each hashed every text of it.
    for name in spec.sort_by:
        if name in spec.few_values and name in standardized.column_names:
            at = standardized.schema.get_field_index(name)
            standardized = standardized.set_column(at, name, _encoded(standardized.column(name)))
    kept = np.flatnonzero(keep)
    day = [spec.partition_by_day] if spec.partition_by_day else []
    keys = standardized.select(sorted({*spec.sort_by, *day})).take(pa.array(kept))
    rows = pa.array(kept[sort_order(keys, day, spec.sort_by)])
    # Where each row's segment sits in the lineage table (segment is a key, not a position).
    origin = pc.index_in(gather(standardized.column("segment"), rows), lineage.column("segment"))
    # Lineage and batch columns are codes into their few values from the start; the cast to
    # the written schema keeps as codes the few-valued columns (TableSpec) and decodes the rest.
    batch_ids = pa.array([batch_id], pa.string())
    columns = []
    for target in spec.schema:
        if target.name in ("source_file", "ingest_time"):
            column = pa.DictionaryArray.from_arrays(
                origin, lineage.column(target.name).combine_chunks()
            )
        elif target.name == "batch_id":
            column = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(len(rows), np.int32)), batch_ids
            )
        elif pa.types.is_map(target.type) and target.name in standardized.column_names:
            column = gather_maps(standardized.column(target.name), rows)
        elif target.name in standardized.column_names:
            few = target.name in spec.few_values
            column = gather(standardized.column(target.name), rows, encode=few)
        else:  # a column this source never produces (optional fields of later schema versions)
            column = pa.nulls(len(rows), target.type)
        columns.append(column)
    written = pa.schema(  # maps as gathered: their keys and values may be codes
        field.with_type(column.type) if pa.types.is_map(field.type) else field
        for field, column in zip(spec.written_schema(), columns, strict=True)
    )
    return pa.Table.from_arrays(columns, names=spec.schema.names).cast(written)


def sort_order(keys: pa.Table, day: list[str], sort_by: tuple[str, ...]) -> np.ndarray:
    """Row numbers of ``keys`` ordered by the day of the ``day`` columns, then ``sort_by``,
    then row number; nulls last (the engine's ``ORDER BY date_trunc('day', d), c…, i``).

    Each key becomes integers that order as it does (a text its rank among the column's
    distinct values), so NumPy's lexsort orders the rows; an engine query spent more on
    planning than on sorting a piece's keys.

    >>> t = pa.table({"c": ["b", None, "a", "b"], "n": [2, 1, None, 1]})
    >>> sort_order(t, [], ("c", "n")).tolist()
    [2, 3, 0, 1]
    """
    if not all(_rankable(keys.column(name).type) for name in [*day, *sort_by]):
        return _engine_order(keys, day, sort_by)
    ranks: list[np.ndarray] = []  # most significant first
    for name in day:
        ranks.extend(_nulls_last(utc_days(keys.column(name)).cast(pa.int32())))
    for name in sort_by:
        column = keys.column(name)
        if _is_text(column.type) or pa.types.is_dictionary(column.type):
            encoded = _codes(column)
            # (dense: a dictionary given may hold a text twice, under two codes)
            rank = pc.rank(encoded.dictionary, tiebreaker="dense").to_numpy().astype(np.int64)
            codes = pc.fill_null(encoded.indices, 0).to_numpy()
            ranks.append(pc.is_null(encoded.indices).to_numpy(zero_copy_only=False))
            ranks.append(rank[codes] if len(rank) else codes)
        else:
            ranks.extend(_nulls_last(column.cast(pa.int64())))
    return ordered(ranks, keys.num_rows)


def ordered(ranks: list[np.ndarray], rows: int) -> np.ndarray:
    """Row numbers ordered by ``ranks`` (integer or boolean arrays, most significant first),
    then by row number: ``np.lexsort([np.arange(rows), *reversed(ranks)])``, each key
    shifted to start at 0 and the keys sorted as one integer where they fit
    (:func:`~advertisex.kernels.groups.rank_order`): a piece's day, campaign and time took
    3.8 ms a sort where lexsort's pass per key took 14 ms.

    >>> ordered([np.array([1, 0, 1, 0]), np.array([-5, 9, -7, 9])], 4).tolist()
    [1, 3, 2, 0]
    """
    if not rows or not ranks:
        return np.arange(rows, dtype=np.int64)
    shifted = []
    for rank in ranks:
        low, high = int(rank.min()), int(rank.max())
        if high - low >= 1 << 63:  # shifted, it would not fit 64 bits
            return np.lexsort([np.arange(rows), *reversed(ranks)])
        shifted.append((rank.astype(np.int64) - low, high - low + 1))
    return rank_order(shifted)


def _rankable(t: pa.DataType) -> bool:
    return (
        _is_text(t)
        or (pa.types.is_dictionary(t) and _is_text(t.value_type))
        or pa.types.is_timestamp(t)
        or pa.types.is_integer(t)
        or pa.types.is_date(t)
    )


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _encoded(column: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A text column as codes into its distinct texts (:func:`gather`'s ``encode``)."""
    return encoded(joined(column)) if _is_text(column.type) else column


def encoded(texts: pa.Array) -> pa.DictionaryArray:
    """``pc.dictionary_encode(texts)``: the same codes and dictionary, found by the compiled
    helpers where they can (a column of few values, as the data files' few-valued columns
    are: a device type, a country, a campaign — about twice as quick as Arrow's)."""
    codes = native.text_codes(texts)
    return pc.dictionary_encode(texts) if codes is None else codes


def _codes(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """A text column (or codes of one) as one array of codes into texts without a null
    (a null text: a null code)."""
    joined = column.combine_chunks()
    if pa.types.is_dictionary(joined.type) and joined.dictionary.null_count:
        joined = joined.cast(joined.type.value_type)
    return joined if pa.types.is_dictionary(joined.type) else pc.dictionary_encode(joined)


def _engine_order(keys: pa.Table, day: list[str], sort_by: tuple[str, ...]) -> np.ndarray:
    order = ", ".join([*(f"date_trunc('day', \"{c}\")" for c in day), *(f'"{c}"' for c in sort_by)])
    ranked = engine.run(
        f"SELECT i FROM keys ORDER BY {order}, i",
        keys=keys.append_column("i", pa.array(np.arange(keys.num_rows, dtype=np.int64))),
    )
    return ranked.column("i").to_numpy()


def _nulls_last(column: pa.ChunkedArray) -> list[np.ndarray]:
    """(is null, value) of an integer column: the two sort keys that put its nulls last."""
    return [
        pc.is_null(column).to_numpy(zero_copy_only=False),
        pc.fill_null(column, 0).to_numpy(),
    ]


def gather(column: pa.ChunkedArray | pa.Array, rows: pa.Array, encode: bool = False) -> pa.Array:
    """``column.take(rows)``: over one chunk (a take across chunks costs several times more).
    ``encode``: a text column is dictionary-encoded first, so its codes move, not its texts
    (a column of few values: the Parquet writer would have hashed every text again)."""
    one = joined(column)
    return (encoded(one) if encode and _is_text(one.type) else one).take(rows)


def gather_maps(column: pa.ChunkedArray | pa.Array, rows: pa.Array) -> pa.Array:
    """A column of maps of texts (a bid's targeting) at ``rows``, its keys and values as
    codes into their texts: the distinct maps (a few thousand a piece) are found by the
    compiled helpers, their keys and values encoded, and each row takes its map's. The
    Parquet writer dictionary-encodes a map's keys and values anyway: given codes, it no
    longer hashes each entry's texts (the 2 M benchmark's targeting maps, 7.9 M entries:
    gather and write ≈ 0.37 → 0.22 s of CPU, the same file read back). Without the
    helpers, or for another type, the texts are gathered as they are (:func:`gather`).

    >>> maps = pa.chunked_array([[[("age", "18-24")], None], [[("age", "18-24"), ("g", None)]]],
    ...     pa.map_(pa.string(), pa.string()))
    >>> gathered = gather_maps(maps, pa.array([2, 1, 0]))
    >>> gathered.to_pylist() == maps.take([2, 1, 0]).to_pylist()
    True
    """
    found = native.map_codes(column)
    if found is None:
        return gather(column, rows)
    codes, firsts = found
    distinct = joined(column_ascending(column, firsts))
    coded = pa.MapArray.from_arrays(
        distinct.offsets,
        pc.dictionary_encode(distinct.keys),
        pc.dictionary_encode(distinct.items),
    )
    return coded.take(pa.array(codes, mask=codes < 0).take(rows))


def quarantine_rows(rejected: pa.Table, source: str, lineage: pa.Table, batch_id: str) -> pa.Table:
    """Rejected rows → ``curated.quarantine``: raw text, every reason, where it came from;
    in (segment, position) order, records that share a position (objects of one line) as
    they came. Built by Arrow: the few rows a piece rejects never paid an engine query's
    planning back."""
    order, origin = _in_lineage_order(rejected, lineage)
    rows = rejected.take(order)
    columns = {
        "source": pa.repeat(pa.scalar(source, pa.string()), rows.num_rows),
        "reasons": rows.column("reasons"),
        "raw": pc.utf8_rtrim(pc.fill_null(rows.column("raw"), ""), "\r\n"),
        "detail": rows.column("frame_error"),
        "event_time": rows.column("event_time"),
        **_lineage_columns(lineage, origin, rows, batch_id),
    }
    return pa.table(columns).select(QUARANTINE.names).cast(QUARANTINE)


def _in_lineage_order(rows: pa.Table, lineage: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(the rows whose segment is in ``lineage``, by segment and position — records that
    share a position, objects of one line, as they came; each one's row in ``lineage``):
    the engine's ``JOIN lineage USING (segment) ORDER BY segment, source_position``."""
    origin = pc.index_in(rows.column("segment"), value_set=lineage.column("segment"))
    known = np.flatnonzero(pc.is_valid(origin).to_numpy(zero_copy_only=False))
    positions = rows.column("source_position").to_numpy()[known]
    segments = rows.column("segment").to_numpy()[known]
    order = pa.array(known[np.lexsort((positions, segments))])
    return order, origin.take(order)


def _lineage_columns(
    lineage: pa.Table, origin: pa.Array, rows: pa.Table, batch_id: str
) -> dict[str, pa.Array | pa.ChunkedArray]:
    return {
        "ingest_time": lineage.column("ingest_time").take(origin),
        "source_file": lineage.column("source_file").take(origin),
        "source_position": rows.column("source_position"),
        "batch_id": pa.repeat(pa.scalar(batch_id, pa.string()), rows.num_rows),
    }
