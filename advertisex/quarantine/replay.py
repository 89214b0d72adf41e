"""Replay quarantined records through the current pipeline, after a fix.

A quarantined record keeps its raw text: the JSON line of an impression, the CSV row
of a click (its header is read again from the landing segment named in
``source_file``), or the JSON rendering of a bid request. Replay frames that text
with the source's decoder, tags each record with its original landing file and
position, and hands it to :func:`advertisex.runners.batch.process_source` — the same
standardize, validate, invalid-traffic, dedupe (against committed rows) and enrich
steps as a landing batch, with the settings and dimensions in force now.

One atomic catalog commit then appends the records that pass to their tables (or to
``curated.filtered``), removes every record that left from ``curated.quarantine``
(copy-on-write: affected data files are rewritten, no delete files), rewrites those
still failing for other reasons than before, and adds one ``ops.batches`` row per
source (``source = replay:<source>``, balanced like any batch). A record that passes
leaves the quarantine exactly once; a replay that changes nothing commits nothing.

Records whose raw text cannot stand for the record (``avro_unreadable`` and
``gzip_damaged``: the text is the undecodable bytes; ``encoding_invalid``: the text had
bytes replaced) are never replayed: they stay for a person to look at.

An entry that stands for a whole landing file set aside by the processor
(``segment_unreadable``) is replayed by decoding that file again, under the processor's
decode budget: its records go through the same steps (those that fail become quarantine
entries of their own) and the entry leaves. A file that still cannot be decoded stays.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.errors import CommitConflictError
from advertisex.landing.zone import Segment, segment_time
from advertisex.model.reasons import DAMAGE_REASONS, SEGMENT_UNREADABLE
from advertisex.model.schemas import BATCHES, QUARANTINE, TABLES
from advertisex.quarantine.selection import TABLE, Selection, read
from advertisex.runners.replay import QUARANTINE_REPLAY
from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
    from advertisex.config import Settings
    from advertisex.lake.datafiles import Footer
    from advertisex.lake.tables import Lake
    from advertisex.landing.zone import LandingZone

NOT_REPLAYABLE = frozenset({*DAMAGE_REASONS, "encoding_invalid"})
_KEY = ("source_file", "source_position", "raw")


@dataclass
class SourceReplay:
    """What replaying one source's selected records did."""

    source: str
    selected: int = 0
    not_replayable: int = 0  # left untouched: their raw text cannot be decoded again
    replayed: int = 0
    accepted: int = 0
    filtered: int = 0
    duplicates: int = 0
    conflicts: int = 0  # duplicates whose payload differed from the committed row
    still_quarantined: int = 0
    reasons_updated: int = 0  # still failing, for other reasons than before
    bytes: int = 0  # raw text replayed
    files: set[str] = field(default_factory=set)

    @property
    def left_quarantine(self) -> int:
        return self.accepted + self.filtered + self.duplicates

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SOURCE_FIELDS}


# What a replay reports per source (``quarantine replay``, the console, the read API).
SOURCE_FIELDS = (
    "source",
    "selected",
    "not_replayable",
    "replayed",
    "accepted",
    "filtered",
    "duplicates",
    "still_quarantined",
    "reasons_updated",
    "left_quarantine",
)


@dataclass
class ReplayReport:
    batch_id: str | None  # None when nothing changed (nothing was committed)
    sources: dict[str, SourceReplay] = field(default_factory=dict)
    by_table: dict[str, int] = field(default_factory=dict)
    marts: str | None = None  # how the marts took what it committed (rebuild | incremental …)

    def summary(self) -> dict[str, Any]:
        """What the replay did, as ``quarantine replay --format json`` prints it."""
        return {
            "batch_id": self.batch_id,
            "sources": [s.row() for s in self.sources.values()],
            "tables": self.by_table,
            "marts": self.marts,
        }

    @property
    def changed(self) -> bool:
        return self.batch_id is not None


# Tries of a replay whose commit lost a race (each from fresh tables), and the pause before
# the next, times the try: a processor following the landing zone commits every second.
ATTEMPTS = 5
_PAUSE_SECONDS = 0.2


def replay(
    settings: Settings,
    lake: Lake,
    landing: LandingZone,
    selection: Selection | None = None,
    now: datetime | None = None,
) -> ReplayReport:
    """Re-run the selected quarantined records; commit what now passes in one transaction,
    then bring the marts up to date with it (``correlation.update_marts``), as ``process``
    does after its batches: the records a replay accepts counted in no report until the
    next ``process`` or ``report refresh``.

    A commit that lost a race published nothing, so the replay runs again on the tables as
    they are then: a ``process --follow`` committing a batch between this replay's read
    and its commit failed it (its records read again, judged again), with pyiceberg's
    words and a hint that said it had been retried."""
    import time

    from advertisex.marts.iceberg import update_marts

    for attempt in range(1, ATTEMPTS + 1):
        try:
            report = _replay(settings, lake, landing, selection, now)
        except CommitConflictError as error:
            if attempt == ATTEMPTS:
                raise CommitConflictError(
                    f"quarantine replay lost {ATTEMPTS} races in a row: other commits changed "
                    f"the tables while it ran ({error.message}); nothing was replayed",
                    hint="run it again when fewer batches land, or stop process --follow "
                    "for the replay and start it again after",
                ) from error
            time.sleep(_PAUSE_SECONDS * attempt)
            continue
        if report.changed and (marts := update_marts(lake, settings)) is not None:
            report.marts = marts.mode
        return report
    raise AssertionError("unreachable")


def _replay(
    settings: Settings,
    lake: Lake,
    landing: LandingZone,
    selection: Selection | None,
    now: datetime | None,
) -> ReplayReport:
    from advertisex.runners.batch import process_source
    from advertisex.runners.rules import BatchRules

    selection = selection or Selection()
    started_at = utcnow()
    lake.refresh()  # read and commit against the tables as they are now
    now = now or started_at
    selected = read(lake, selection)
    sources = sorted(set(selected.column("source").to_pylist()))
    # What a landing batch of these sources starting now would be judged against.
    rules = BatchRules.build(settings, lake, now, sources)
    report = ReplayReport(batch_id=None)
    batch_id = _batch_id(selected, started_at)
    appends: dict[str, list[pa.Table]] = {}
    leaving: list[pa.Table] = []  # original quarantine rows to delete
    rewritten: list[pa.Table] = []  # still failing with new reasons (replace the originals)
    added: list[pa.Table] = []  # new entries: failing records of a file decoded again
    for source in sources:
        rows = selected.filter(pc.equal(selected.column("source"), source))
        stats = report.sources.setdefault(source, SourceReplay(source, selected=rows.num_rows))
        replayable = _replayable(rows)
        stats.not_replayable = rows.num_rows - int(replayable.sum())
        rows = rows.filter(pa.array(replayable))
        files, rows = _split_files(rows)
        frame, lineage, unframed = build_frame(source, rows, landing)
        frame, lineage, undecoded, read_bytes = decode_files(
            source, files, landing, settings, frame, lineage
        )
        stats.not_replayable += unframed.num_rows + undecoded.num_rows
        rows = _without(rows, unframed)
        files = _without(files, undecoded)
        if not rows.num_rows and not files.num_rows:
            continue
        stats.replayed = frame.num_rows
        stats.bytes = int(pc.sum(pc.binary_length(rows.column("raw"))).as_py() or 0) + read_bytes
        stats.files = set(rows.column("source_file").to_pylist()) | set(
            files.column("source_file").to_pylist()
        )
        tables, account = process_source(source, frame, lineage, batch_id, rules)
        stats.accepted, stats.filtered = account.accepted, account.filtered
        stats.duplicates, stats.conflicts = account.duplicates, account.conflicts
        failing = tables.pop("curated.quarantine")
        stats.still_quarantined = failing.num_rows
        gone, changed, new = _outcome(pa.concat_tables([rows, files]), failing)
        stats.reasons_updated = changed.num_rows
        leaving.append(gone)
        rewritten.append(changed)
        added.append(new)  # records of a decoded file that fail: entries of their own
        for name, table in tables.items():
            if table.num_rows:
                appends.setdefault(name, []).append(table)
                report.by_table[name] = report.by_table.get(name, 0) + table.num_rows
    removed = _concat(leaving, QUARANTINE)
    updated = _concat(rewritten, QUARANTINE)
    new = _concat(added, QUARANTINE)
    if removed.num_rows == 0 and updated.num_rows == 0:
        return report
    _commit(
        lake,
        {name: pa.concat_tables(parts) for name, parts in appends.items()},
        removed,
        pa.concat_tables([updated, new]),
        _batch_rows(batch_id, report, started_at),
        batch_id,
    )
    report.batch_id = batch_id
    return report


def preview(lake: Lake, selection: Selection) -> dict[str, int]:
    """What a replay of ``selection`` would take, before running it: the records selected
    and, of those, how many cannot be replayed (their raw text cannot stand for them)."""
    lake.refresh()
    rows = read(lake, selection, ("source",))
    replayable = int(_replayable(rows).sum()) if rows.num_rows else 0
    return {"selected": rows.num_rows, "not_replayable": rows.num_rows - replayable}


# ---------------------------------------------------------------- framing again


def build_frame(
    source: str, rows: pa.Table, landing: LandingZone
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(framed records, lineage, rows that could not be framed again) for quarantine ``rows``.

    Records are framed per landing file with that file's decoder, then carry their
    original position; ``segment`` indexes the returned lineage (source_file, ingest_time).
    """
    from advertisex.formats.decode import decoder_for

    frames: list[pa.Table] = []
    lineage: list[dict[str, Any]] = []
    unframed: list[pa.Table] = []
    files = list(dict.fromkeys(rows.column("source_file").to_pylist()))
    for index, name in enumerate(files):
        part = rows.filter(pc.equal(rows.column("source_file"), name))
        decoder = _decoder(source, name, decoder_for)
        prefix = b""
        if decoder.__name__ == "frame_csv":
            header = _csv_header(landing, name)
            if header is None:
                unframed.append(part)
                continue
            prefix = header + b"\n"
        raws = part.column("raw").to_pylist()
        framed = [_as_record(raw) for raw in raws] if source == "bids" else raws
        frame = _frame_records(decoder, prefix, framed)
        if frame is None:
            unframed.append(part)
            continue
        if framed != raws:  # a record failing again keeps the text it is quarantined with
            frame = frame.set_column(
                frame.column_names.index("raw"),
                "raw",
                pa.array(raws, frame.schema.field("raw").type),
            )
        frame = frame.set_column(
            frame.column_names.index("source_position"),
            "source_position",
            part.column("source_position"),
        )
        frames.append(
            frame.append_column("segment", pa.array(np.full(part.num_rows, index, np.int32)))
        )
        lineage.append(
            {
                "segment": index,
                "source_file": name,
                "ingest_time": pc.min(part.column("ingest_time")).as_py(),
            }
        )
    lineage_schema = pa.schema(
        [
            pa.field("segment", pa.int32()),
            pa.field("source_file", pa.string()),
            pa.field("ingest_time", pa.timestamp("us", tz="UTC")),
        ]
    )
    frame = (
        pa.concat_tables(frames, promote_options="permissive") if frames else _empty_frame(source)
    )
    return (
        frame,
        pa.Table.from_pylist(lineage, schema=lineage_schema),
        pa.concat_tables(unframed) if unframed else rows.schema.empty_table(),
    )


def _split_files(rows: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(entries standing for whole landing files set aside, entries of single records)."""
    reasons = rows.column("reasons").to_pylist()
    whole = [any(r.startswith(SEGMENT_UNREADABLE) for r in rs) for rs in reasons]
    mask = pa.array(whole, pa.bool_())
    return rows.filter(mask), rows.filter(pc.invert(mask))


def decode_files(
    source: str,
    files: pa.Table,
    landing: LandingZone,
    settings: Settings,
    frame: pa.Table,
    lineage: pa.Table,
) -> tuple[pa.Table, pa.Table, pa.Table, int]:
    """``frame`` and ``lineage`` with the records of each set-aside landing file in
    ``files``, decoded again under the processor's decode budget; the entries of files that
    still cannot be read (they stay in quarantine); and the bytes read."""
    from advertisex.formats.bounded import DecodeLimits
    from advertisex.formats.decode import concat_frames, frame_segment

    limits = DecodeLimits.of(settings.processor)
    frames, extra, failed, read_bytes = [frame], [lineage], [], 0
    index = lineage.num_rows
    for i, name in enumerate(files.column("source_file").to_pylist()):
        segment = Segment(source, name, 0)
        try:
            data = landing.read(segment)
            decoded = frame_segment(index, segment, data, limits)
        except Exception:  # still undecodable (or gone): the entry stays
            failed.append(i)
            continue
        read_bytes += len(data)
        frames.append(decoded)
        extra.append(
            pa.table(
                {
                    "segment": pa.array([index], pa.int32()),
                    "source_file": pa.array([name], pa.string()),
                    "ingest_time": pa.array([segment_time(name)], pa.timestamp("us", tz="UTC")),
                }
            )
        )
        index += 1
    filled = [f for f in frames if f.num_rows]
    return (
        concat_frames(filled) if filled else frame,
        pa.concat_tables(extra),
        files.take(pa.array(failed, pa.int64())),
        read_bytes,
    )


def _decoder(source: str, name: str, decoder_for: Any) -> Any:
    from advertisex.formats.jsonrecords import frame_json_bids

    if source == "bids":  # Avro records are quarantined as their JSON rendering
        return frame_json_bids
    return decoder_for(Segment(source, name, 0))


def _frame_records(decoder: Any, prefix: bytes, raws: list[str]) -> pa.Table | None:
    """Frame all records at once; one by one if that does not give one row per record."""
    frame = decoder(prefix + "\n".join(raws).encode())
    if frame.num_rows == len(raws):
        return frame
    parts = [decoder(prefix + raw.encode()) for raw in raws]
    if any(p.num_rows != 1 for p in parts):
        return None
    return pa.concat_tables(parts, promote_options="permissive")


def _as_record(raw: str) -> str:
    """A bid's raw text as its record: earlier versions quarantined a bid a later rule
    rejected (``unknown_campaign``) as its standardized row — ``event_time`` for
    ``timestamp``, ``payload_hash``, ``source_position``, the extras as one text — which the
    JSON bid decoder reads as a bid without a time (``kernels.validate._rendered_records``
    renders the record now)."""
    if '"payload_hash"' not in raw or '"event_time"' not in raw:
        return raw
    from advertisex.util import jsonutil

    try:
        row = jsonutil.loads(raw)
    except jsonutil.JSONDecodeError:
        return raw
    if not isinstance(row, dict) or "timestamp" in row or "payload_hash" not in row:
        return raw
    extras = row.pop("extras", None)
    for added in ("payload_hash", "source_position", "payload"):
        row.pop(added, None)
    record = {"timestamp": row.pop("event_time"), **row}
    try:
        outside = jsonutil.loads(extras) if isinstance(extras, str) else None
    except jsonutil.JSONDecodeError:
        outside = None
    if isinstance(outside, dict):
        record = {**record, **{k: v for k, v in outside.items() if k not in record}}
    return jsonutil.dumps_str(record)


def _csv_header(landing: LandingZone, name: str) -> bytes | None:
    """The header line of the landing CSV file ``name`` (None if it is gone or empty, or its
    first line is longer than :data:`_HEADER_BYTES`). Read from the file's head, un-gzipped
    as far as it goes: a gzip'd file was inflated whole for its first line, with no bound."""
    from advertisex.landing.detect import unwrapped

    path = landing.root / name
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEADER_BYTES)
    except OSError:
        return None
    lines = unwrapped(head).split(b"\n")
    entire = len(head) < _HEADER_BYTES  # the file was read to its end
    for k, line in enumerate(lines):
        if line.strip():
            ended = k < len(lines) - 1  # a newline follows it: not cut by the head's end
            return line.rstrip(b"\r") if ended or entire else None
    return None


# How much of a landing CSV file is read for its header line.
_HEADER_BYTES = 1 << 16


def _empty_frame(source: str) -> pa.Table:
    from advertisex.formats.decode import DECODERS

    fmt = {"impressions": "json", "clicks": "csv", "bids": "json"}[source]
    frame = DECODERS[(source, fmt)](b"")
    return frame.append_column("segment", pa.array([], pa.int32()))


# ---------------------------------------------------------------- outcome


def _replayable(rows: pa.Table) -> np.ndarray:
    """False for records with a reason whose raw text cannot be decoded again."""
    reasons = rows.column("reasons").combine_chunks()
    codes = pc.list_element(pc.split_pattern(pc.list_flatten(reasons), ":", max_splits=1), 0)
    blocked = pc.is_in(codes, pa.array(sorted(NOT_REPLAYABLE))).to_numpy(zero_copy_only=False)
    ok = np.ones(rows.num_rows, dtype=bool)
    ok[pc.list_parent_indices(reasons).to_numpy(zero_copy_only=False)[blocked]] = False
    return ok


def _keys(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [table.column(c).to_pylist() for c in _KEY]
    return list(zip(*columns, strict=True))


def _without(rows: pa.Table, drop: pa.Table) -> pa.Table:
    if not drop.num_rows:
        return rows
    dropped = Counter(_keys(drop))
    keep = []
    for key in _keys(rows):
        if dropped[key]:
            dropped[key] -= 1
            keep.append(False)
        else:
            keep.append(True)
    return rows.filter(pa.array(keep))


def _outcome(original: pa.Table, failing: pa.Table) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(original rows that left the quarantine, failing rows whose reasons changed, failing
    rows that match no original — records of a landing file decoded again).

    Replayed records are matched to their new quarantine rows by landing file,
    position and raw text; a changed row keeps its original batch id.
    """
    still: dict[tuple[Any, ...], list[list[str]]] = {}
    for key, reasons in zip(_keys(failing), failing.column("reasons").to_pylist(), strict=True):
        still.setdefault(key, []).append(reasons)
    originals_keys = Counter(_keys(original))
    fresh = []
    for i, key in enumerate(_keys(failing)):
        if originals_keys[key]:
            originals_keys[key] -= 1
        else:
            fresh.append(i)
    new = failing.take(pa.array(fresh, pa.int64())).select(QUARANTINE.names).cast(QUARANTINE)
    gone, changed_index, changed_reasons = [], [], []
    originals = original.column("reasons").to_pylist()
    for i, key in enumerate(_keys(original)):
        candidates = still.get(key)
        if not candidates:
            gone.append(i)
            continue
        reasons = candidates.pop(0)
        if sorted(reasons) != sorted(originals[i]):
            changed_index.append(i)
            changed_reasons.append(reasons)
    changed = original.take(pa.array(changed_index, pa.int64()))
    changed = changed.set_column(
        changed.column_names.index("reasons"),
        "reasons",
        pa.array(changed_reasons, pa.list_(pa.string())),
    )
    return (
        original.take(pa.array(gone, pa.int64())).select(QUARANTINE.names).cast(QUARANTINE),
        changed.select(QUARANTINE.names).cast(QUARANTINE),
        new,
    )


def _concat(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    parts = [p for p in parts if p.num_rows]
    return pa.concat_tables(parts) if parts else schema.empty_table()


# ---------------------------------------------------------------- commit


def _commit(
    lake: Lake,
    appends: dict[str, pa.Table],
    removed: pa.Table,
    updated: pa.Table,
    batch_rows: pa.Table,
    batch_id: str,
) -> None:
    """Appends, the quarantine rewrite and the ops rows: one catalog transaction."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    from advertisex.lake.datafiles import remove_files
    from advertisex.lake.rewrite import commit_swap

    properties = {"advertisex.batch-id": batch_id, "advertisex.replay": "true"}
    tables = {name: lake.table(name) for name in [*appends, TABLE, "ops.batches"]}
    swapped, written, footers = _rewritten(lake, tables[TABLE], removed, updated)
    try:
        with lake.catalog.atomic([]):
            for name, data in appends.items():
                tables[name].append(_conform(data, name), snapshot_properties=properties)
            if swapped or written:
                commit_swap(tables[TABLE], swapped, written, None, properties, footers)
            tables["ops.batches"].append(batch_rows, snapshot_properties=properties)
    except BaseException as error:
        remove_files(written, lake.settings.scale)  # never committed: nobody's files
        if isinstance(error, CommitFailedException | ValidationException):
            raise CommitConflictError(
                f"quarantine replay lost a race: {error}",
                hint="another process changed the tables meanwhile; run the replay again",
            ) from error
        raise
    finally:
        lake.refresh()


def _rewritten(
    lake: Lake, table: Any, removed: pa.Table, updated: pa.Table
) -> tuple[list[Any], list[str], dict[str, Footer]]:
    """(the quarantine's data files holding the records that leave it or whose reasons
    changed, the files written in their place — without those records, and ``updated``
    as they are now — and those files' footers), nothing committed yet.

    A record is told by its landing file, position and raw text (:data:`_KEY`): objects
    back to back on one line share the file and position, and one of them leaving must not
    take another that still fails (pyiceberg's delete by file and position did, and that
    record was lost). Only a file whose pairs of file and position hit is read whole,
    streamed (``rewrite_without``), and written as the table's files are; the look is two
    columns of each file, two files at once — the delete weighed an expression of one term
    a landing file against every data file and its rows, and rewrote with pyiceberg's
    writer (a month of 2 M events, 192 records: 8.4 s)."""
    import pyarrow.parquet as pq

    from advertisex.lake.datafiles import remove_files, write_data_files
    from advertisex.lake.history import live_files
    from advertisex.lake.rewrite import rewrite_without
    from advertisex.util import storage
    from advertisex.util.parallel import in_order

    leaving = pa.concat_tables([removed, updated])
    scale = lake.settings.scale
    places, records = _record_keys(leaving, with_raw=False), _record_keys(leaving)

    def hit(data_file: Any) -> tuple[Any, pa.ChunkedArray] | None:
        filesystem, path = storage.resolve(data_file.file_path, scale)
        place = ["source_file", "source_position"]
        rows = pq.read_table(path, columns=place, filesystem=filesystem)
        if not pc.any(pc.is_in(_record_keys(rows, with_raw=False), value_set=places)).as_py():
            return None
        rows = pq.read_table(path, columns=list(_KEY), filesystem=filesystem)
        return data_file, pc.is_in(_record_keys(rows), value_set=records)

    swapped: list[Any] = []
    written: list[str] = []
    footers: dict[str, Footer] = {}
    try:
        for found in in_order(hit, live_files(table)):
            if found is None or not pc.any(found[1]).as_py():
                continue
            data_file, flags = found
            _, rest = rewrite_without(
                data_file.file_path, flags, QUARANTINE, "replayed", scale, TABLE
            )
            swapped.append(data_file)
            written.extend([rest] if rest is not None else [])
        # The records as they are now, in their landing days' partitions.
        for new in write_data_files(TABLE, updated, table.location(), "replayed", scale):
            written.append(new.url)
            if new.footer is not None:
                footers[new.url] = new.footer
    except BaseException:
        remove_files(written, scale)
        raise
    return swapped, written, footers


def _record_keys(rows: pa.Table, with_raw: bool = True) -> pa.ChunkedArray:
    """A quarantined record's landing file, position (and raw text) as one value to match by."""
    columns = [rows.column("source_file"), pc.cast(rows.column("source_position"), pa.string())]
    columns += [rows.column("raw")] if with_raw else []
    return pc.binary_join_element_wise(*columns, "\n", null_handling="replace")


def _conform(data: pa.Table, name: str) -> pa.Table:
    schema = TABLES[name].schema
    return data.select(schema.names).cast(schema)


def _batch_rows(batch_id: str, report: ReplayReport, started_at: datetime) -> pa.Table:
    committed_at = utcnow()
    rows = [
        {
            "batch_id": batch_id,
            "source": f"replay:{s.source}",
            "started_at": started_at,
            "committed_at": committed_at,
            "files": len(s.files),
            "bytes": s.bytes,
            "records_in": s.replayed,
            "accepted": s.accepted,
            "quarantined": s.still_quarantined,
            "filtered": s.filtered,
            "duplicates": s.duplicates,
            "conflicts": s.conflicts,
            "segments": sorted(s.files),
        }
        for s in report.sources.values()
        if s.replayed
    ]
    return pa.Table.from_pylist(rows, schema=BATCHES)


def _batch_id(selected: pa.Table, started_at: datetime) -> str:
    digest = hashlib.sha256()
    for key in _keys(selected):
        digest.update(repr(key[:2]).encode())
    return f"{QUARANTINE_REPLAY}{started_at:%Y%m%dT%H%M%S}-{digest.hexdigest()[:12]}"
