"""Erasure of users from the tables: every data file holding them rewritten without them.

A row belongs to a forgotten user when its ``user_id`` is one of theirs, or when its raw
text (a quarantined record, an invalid-traffic record, the unknown fields kept in
``extras``) names their id — by the rule landing records are judged by
(``formats.scrub.mentioned``: a record's user field, or whole words of its unknown fields;
never a typed value such as a time, a price or a device type). :func:`plan` reads
only those columns of each live data file, and rewrites the files that hold such rows —
the same rows minus theirs, in the same order and folder. The caller swaps them in with
one ``erasure`` snapshot per table (``lake.rewrite``, which writes clean manifests), in
one catalog transaction with the marts and the audit rows, and then expires the history
that still reaches the old files (:func:`erase_history`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex.formats.scrub import Forgotten, forgotten, mentioned, mentions
from advertisex.lake import expiry
from advertisex.lake.history import ERASURE, live_files, past_files
from advertisex.lake.rewrite import commit_swap, rewrite_without
from advertisex.model.schemas import TABLES
from advertisex.util import storage
from advertisex.util.parallel import in_order
from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
    from advertisex.config import Settings
    from advertisex.lake.tables import Lake

USER = "user_id"
TEXTS = ("raw", "record", "extras", "detail")  # free text that may mention a user id
QUARANTINED = ("raw", "detail")  # a quarantined record's text, and what was wrong with it
LINEAGE_AT = ("source_file", "source_position")  # its landing record
ERASURE_ID = "advertisex.erasure-id"  # snapshot property: which erasure wrote it
_IN_VALUES = 200  # pyiceberg's IN_PREDICATE_LIMIT: past it, its evaluator prunes nothing


def erasable(name: str) -> bool:
    """Whether rows of table ``name`` can name a user (a user column or raw text)."""
    names = TABLES[name].schema.names
    return USER in names or any(t in names for t in TEXTS)


@dataclass
class TableErasure:
    """What erasing some users from one table takes: files out, files in, rows removed."""

    table: str
    files: list[Any] = field(default_factory=list)  # DataFiles to remove
    written: list[str] = field(default_factory=list)  # their replacements
    removed: list[pa.Table] = field(default_factory=list)
    by_user: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.removed)

    def removed_rows(self) -> pa.Table:
        schema = TABLES[self.table].schema
        return pa.concat_tables(self.removed) if self.removed else schema.empty_table()


def plan(
    lake: Lake,
    name: str,
    ids: Forgotten | Iterable[str],
    judged: Mapping[str, set[int]] | None = None,
) -> TableErasure:
    """Rewrite (as new files, not yet committed) every file of ``name`` holding ``ids``.

    ``judged``: landing segments whose records the erasure told by their columns (CSV),
    each with the positions of the ones it removed. A quarantined row of one is removed
    with its landing record, not by its text: a CSV row without its header is only words
    (``formats.scrub``), and ``42`` a minute of its time would have taken it."""
    ids = forgotten(ids)
    table = lake.table(name)
    schema = TABLES[name].schema
    scale = lake.settings.scale
    may_hold = _by_statistics(table, name, ids)
    files = {f.file_path: f for f in live_files(table) if may_hold(f)}
    checked = _checked_columns(name, judged)

    def erased(path: str) -> tuple[str, pa.Table, str | None] | None:
        hit = _hit_in(path, checked, ids, scale, judged)
        if hit is None:
            return None
        # Streamed: a compacted file is up to 128 MiB of Parquet, several GiB in memory.
        gone, written = rewrite_without(path, hit[0], schema, "erased", scale, name)
        return path, gone, written

    result = TableErasure(name)
    # A file on each core: a compacted day is read and written again in seconds, and Parquet
    # leaves the GIL (a typical user of a 10 M-event lake: the tables' part of the erasure
    # 9.0 → 3.4 s, with the column searches and the writer options of this change).
    for done in in_order(erased, list(files)):
        if done is None:
            continue
        path, gone, written = done
        result.files.append(files[path])
        result.removed.append(gone)
        result.by_user.update(_owners(gone, ids))
        if written is not None:
            result.written.append(written)
    return result


def _by_statistics(table: Any, name: str, ids: Forgotten) -> Callable[[Any], bool]:
    """Whether a data file may hold the users, told by its manifest entry alone (no file
    opened): its ``user_id`` bounds reach one of the ids, or a free-text column has a
    value. pyiceberg's own scan-planning evaluator, with the user ids and the texts'
    null counts; a file without statistics may hold anyone."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, In, LessThanOrEqual, NotNull, Or
    from pyiceberg.expressions.visitors import _InclusiveMetricsEvaluator

    names = TABLES[name].schema.names
    # Past pyiceberg's own limit on an In's values (200) its evaluator prunes nothing by
    # them (and builds every literal first): the range the ids span prunes what it can.
    users: Any
    if len(ids) <= _IN_VALUES:
        users = In(USER, ids.ids)  # type: ignore[call-arg,misc]
    else:
        lowest = GreaterThanOrEqual(USER, ids.ids[0])  # type: ignore[call-arg,misc]
        users = And(lowest, LessThanOrEqual(USER, ids.ids[-1]))  # type: ignore[call-arg,misc]
    terms = [
        *([users] if USER in names else []),
        *(NotNull(t) for t in TEXTS if t in names),  # type: ignore[call-arg,misc]
    ]
    if not terms:
        return lambda data_file: True
    either = terms[0] if len(terms) == 1 else Or(*terms)
    return _InclusiveMetricsEvaluator(table.schema(), either, include_empty_files=True).eval


def in_history(lake: Lake, name: str, ids: Forgotten | Iterable[str]) -> Counter[str]:
    """Rows per user in files only older snapshots still reference (time travel): their
    history must be expired even when the current rows hold none of them."""
    ids = forgotten(ids)
    table = lake.table(name)
    may_hold = _by_statistics(table, name, ids)
    old = [f.file_path for f in past_files(table) if may_hold(f)]
    found: Counter[str] = Counter()
    for _, hit, columns in _holding(old, name, ids, lake.settings.scale):
        found.update(_owners(columns.filter(hit), ids))
    return found


def commit(lake: Lake, erasure: TableErasure, erasure_id: str) -> None:
    """Swap the rewritten files in (inside the caller's atomic group, if one is open)."""
    table = lake.table(erasure.table)
    commit_swap(table, erasure.files, erasure.written, ERASURE, {ERASURE_ID: erasure_id})


def erase_history(lake: Lake, name: str, now: datetime, since: int | None = None) -> expiry.Expiry:
    """Expire every snapshot of ``name`` before ``since`` (default: the current one),
    however young, and delete the files only they referenced: the old files holding the
    users, and the manifests whose statistics still bounded their values. ``since`` must
    come after the erasure (a reader's position the caller keeps)."""
    lake.refresh()
    table = lake.table(name)
    current = table.current_snapshot()
    if current is None:
        return expiry.Expiry([], [], 0)
    first = since if since is not None else current.snapshot_id
    return expiry.expire(table, lake.settings, now, history_from=first)


def stray_files(
    lake: Lake,
    name: str,
    ids: Forgotten | Iterable[str],
    settings: Settings,
    *,
    before: datetime | None = None,
) -> list[str]:
    """Unreferenced data files under ``name`` that hold the users (left by a crash or a
    lost race): deleted now, whatever their age (``before``: those last written before
    it only) — half-written ones too (they cannot be read, but may hold them)."""
    ids = forgotten(ids)
    table = lake.table(name)
    now = utcnow()
    age = max(now - before, timedelta(0)) if before is not None else timedelta(0)
    strays = expiry.orphans(table, settings, now, min_age=age, dry_run=True)
    parquet = [path for path in strays.files if path.endswith(".parquet")]
    broken: list[str] = []
    doomed = [path for path, _, _ in _holding(parquet, name, ids, settings.scale, broken)]
    expiry.delete_files([*doomed, *broken], settings.scale)
    return [*doomed, *broken]


def scrub_archive(settings: Settings, ids: Forgotten | Iterable[str]) -> Counter[tuple[str, str]]:
    """Rows removed per (archived table, user) from ``retention.archive``: every archived
    Parquet file holding the users is rewritten in place without them, or deleted if
    nothing is left. Archived landing segments are the caller's (they need decoders)."""
    ids = forgotten(ids)
    import pyarrow.parquet as pq

    removed: Counter[tuple[str, str]] = Counter()
    archive = settings.retention.archive
    if not archive:
        return removed
    filesystem, base = storage.resolve(archive, settings.scale)
    for info in expiry.listing(filesystem, base):
        if storage.rewrite_leftover(info.path):  # a killed rewrite's copy: never read, gone
            filesystem.delete_file(info.path)
            continue
        if not info.path.endswith(".parquet"):
            continue
        parts = info.path[len(base) :].strip("/").split("/")
        rows = pq.read_table(info.path, filesystem=filesystem)
        hit = _hits(rows.select([c for c in (USER, *TEXTS) if c in rows.column_names]), ids)
        if hit is None:
            continue
        for user, count in _owners(rows.filter(hit), ids).items():
            removed[(".".join(parts[:2]), user)] += count
        kept = rows.filter(pc.invert(hit))
        if kept.num_rows:  # replaced whole: the archive holds the only copy of the rest
            written = pa.BufferOutputStream()
            pq.write_table(kept, written, compression="zstd")
            storage.replace_file(filesystem, info.path, memoryview(written.getvalue()))
        else:
            filesystem.delete_file(info.path)
    return removed


def _holding(
    paths: list[str],
    name: str,
    ids: Forgotten,
    scale: Any,
    broken: list[str] | None = None,
) -> Iterator[tuple[str, pa.ChunkedArray, pa.Table]]:
    """(path, which rows are the users', the user and free-text columns it was told by)
    for each data file of ``name`` that holds them, reading only those columns, a file on
    each core. A file that cannot be read raises, or is put in ``broken`` when given."""
    checked = _checked_columns(name, None)

    def holding(path: str) -> tuple[str, pa.ChunkedArray, pa.Table] | None:
        try:
            hit = _hit_in(path, checked, ids, scale, None)
        except (OSError, pa.ArrowInvalid):
            if broken is None:
                raise
            broken.append(path)
            return None
        return None if hit is None else (path, *hit)

    yield from (found for found in in_order(holding, paths) if found is not None)


def _checked_columns(name: str, judged: Mapping[str, set[int]] | None) -> list[str]:
    """The columns of ``name`` that tell a user's rows (and a quarantined row's lineage,
    with ``judged``: :func:`plan`)."""
    schema = TABLES[name].schema
    checked = [c for c in (USER, *TEXTS) if c in schema.names]
    if judged and QUARANTINED[0] in schema.names:
        checked += [c for c in LINEAGE_AT if c in schema.names]
    return checked


def _hit_in(
    path: str,
    checked: list[str],
    ids: Forgotten,
    scale: Any,
    judged: Mapping[str, set[int]] | None,
) -> tuple[pa.ChunkedArray, pa.Table] | None:
    """(which rows of the data file ``path`` are the users', the ``checked`` columns read to
    tell), or None when it holds none of them."""
    import pyarrow.parquet as pq

    filesystem, located = storage.resolve(path, scale)
    present = set(pq.read_schema(located, filesystem=filesystem).names)
    columns = pq.read_table(
        located, columns=[c for c in checked if c in present], filesystem=filesystem
    )
    hit = _hits(columns, ids, judged)
    return None if hit is None else (hit, columns)


def _hits(
    columns: pa.Table, ids: Forgotten, judged: Mapping[str, set[int]] | None = None
) -> pa.ChunkedArray | None:
    """Rows that belong to or mention the users; None when there are none. A quarantined
    row whose landing segment was ``judged`` goes with its landing record (:func:`plan`)."""
    if columns.num_rows == 0 or not columns.column_names:
        return None
    hit = pa.chunked_array([pa.array([False] * columns.num_rows, pa.bool_())])
    for name in columns.column_names:
        if name in LINEAGE_AT:
            continue
        values = columns.column(name)
        if name == USER:
            found = pc.fill_null(pc.is_in(values, value_set=ids.array), False)
        else:
            found = mentions(values, ids)
            if name in QUARANTINED and judged and LINEAGE_AT[0] in columns.column_names:
                found = _as_judged(found, columns, judged)
        hit = pc.or_(hit, found)
    return hit if pc.any(hit).as_py() else None


def _as_judged(
    found: pa.ChunkedArray, columns: pa.Table, judged: Mapping[str, set[int]]
) -> pa.ChunkedArray:
    """``found`` (quarantined texts, or their details, that name an id) where the landing
    record of each was judged by its columns instead: named exactly when it was removed."""
    rows = np.flatnonzero(found.to_numpy(zero_copy_only=False))
    if not len(rows):
        return found
    files = columns.column(LINEAGE_AT[0]).take(pa.array(rows)).to_pylist()
    at = columns.column(LINEAGE_AT[1]).take(pa.array(rows)).to_pylist()
    mask = found.to_numpy(zero_copy_only=False).copy()
    for row, file, position in zip(rows, files, at, strict=True):
        if file in judged:
            mask[row] = position in judged[file]
    return pa.chunked_array([pa.array(mask)])


def _owners(rows: pa.Table, ids: Forgotten) -> Counter[str]:
    """Rows removed per user id (a row naming two forgotten users counts for each)."""
    owners: Counter[str] = Counter()
    wanted = ids.wanted
    users = rows.column(USER).to_pylist() if USER in rows.column_names else [None] * rows.num_rows
    texts = [rows.column(t).to_pylist() for t in TEXTS if t in rows.column_names]
    for index, user in enumerate(users):
        named = {user} & wanted
        for column in texts:
            if column[index]:
                named.update(mentioned(column[index], ids))
        owners.update(named)
    return owners
