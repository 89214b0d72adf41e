"""The Iceberg catalog, with one extra power: commit several tables as one transaction.

pyiceberg's SQL catalog commits one table at a time. A batch writes up to six tables
(curated tables, quarantine, ops.batches) and marks its landing segments done, and
DESIGN.md promises that all of it happens or none of it does. ``AtomicSqlCatalog``
stages each table's new metadata file exactly as pyiceberg does, but defers the
pointer swap; at the end of the group every swap and the segment checkpoint rows are
written in one SQL transaction (SQLite here, PostgreSQL at scale). A crash before
that transaction leaves only unreferenced metadata files behind; a crash after it
leaves a complete batch. Every commit, grouped or not, first fsyncs the local files its
new metadata names (:mod:`advertisex.lake.durability`), so a power cut does not undo that.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import zlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog, SqlCatalogBaseTable
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    ValidationException,
)
from pyiceberg.io import FileIO, InputFile, OutputFile
from pyiceberg.table import CommitTableResponse, StagedTable, Table
from pyiceberg.table.locations import load_location_provider
from pyiceberg.typedef import EMPTY_DICT, Properties
from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import Table as SqlTable
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from advertisex.errors import CatalogUnavailableError, CommitConflictError, LakeError
from advertisex.lake import durability
from advertisex.lake.marks import (
    EPOCH_TABLE,
    FOLDED_TABLE,
    SEGMENTS_TABLE,
    SegmentDone,
    day_range,
    days_of,
    folded_asked,
    folded_count,
    marks_table,
    unpacked,
)
from advertisex.lake.transaction import updated_metadata
from advertisex.util import jsonutil
from advertisex.util.storage import local_path

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.snapshots import Snapshot


def _not_a_retried_commit(record: logging.LogRecord) -> bool:
    """pyiceberg logs each commit it retries after losing a race to another writer
    (``Commit failed due to a concurrent update, retrying (1/10) in 103 ms``) as a warning:
    with no logging set up, Python prints it on the terminal of whoever runs ``process``
    while ``up`` or maintenance commits. The retry is ours — the tables ask for it
    (``lake.tables.upkeep_properties``) — and a commit that still fails raises, said in
    our words; the notice alone is noise, and is dropped."""
    return not str(record.msg).startswith("Commit failed due to a concurrent update, retrying")


logging.getLogger("pyiceberg.table").addFilter(_not_a_retried_commit)


def _not_deleted_by_another(record: logging.LogRecord) -> bool:
    """pyiceberg warns "Failed to delete metadata file …" when a commit deletes the
    ``metadata.json`` that falls off the versions kept and finds it gone: maintenance and
    ``forget`` delete old versions too, so under a live pipeline another writer often got
    there first, and Python printed the notice on the terminal of ``forget`` and in ``up``'s
    log. A file that is gone is what the delete wanted; one still there is announced."""
    message = record.getMessage()
    if not message.startswith("Failed to delete ") or " file " not in message:
        return True
    location = message.split(" file ", 1)[1]  # "Failed to delete {kind} file {location}"
    if location.startswith("file:"):
        location = urlparse(location).path
    if not location.startswith("/"):  # an object store's: not looked at
        return True
    return any(os.path.lexists(path) for path in (location, unquote(location)))


logging.getLogger("pyiceberg.catalog").addFilter(_not_deleted_by_another)

# Landing segments already committed, with the batch that committed them. Lives in the
# catalog database so that marking a segment done shares the batch's transaction.
_meta = MetaData()
SEGMENTS = SqlTable(
    SEGMENTS_TABLE,
    _meta,
    Column("segment", String(1024), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("batch_id", String(64), nullable=False),
    Column("records", Integer, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("committed_at", String(40), nullable=False),
)
# A landing day's marks folded into one row (:meth:`SegmentLedger.fold`) once retention has
# deleted the day's segments: the same marks, read the same way, in a fraction of the room
# (a mark a row took ≈ 160 bytes with its key; folded, ≈ 10-20). ``marks``: zlib of the
# marks as one JSON array (:data:`_PACKED`); ``batches``: zlib of their distinct batch
# ids, one a line.
FOLDED = SqlTable(
    FOLDED_TABLE,
    _meta,
    Column("source", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("segments", Integer, nullable=False),
    Column("marks", LargeBinary, nullable=False),
    Column("batches", LargeBinary, nullable=False),
)
# The ledger's epoch: raised in the transaction that withdraws committed marks (a replay
# marks segments pending again), so a reader that remembers marks knows to read afresh.
# Marks are otherwise only ever added.
EPOCH = SqlTable(
    EPOCH_TABLE,
    _meta,
    Column("name", String(64), primary_key=True),
    Column("epoch", Integer, nullable=False),
)


# Names per ``IN (…)`` query: well under every database's bound parameter limit.
_CHUNK = 500
# Made by the first replay (:meth:`SegmentLedger.marks_of_batches`), not with the table.
_BATCH_INDEX = f"CREATE INDEX IF NOT EXISTS {SEGMENTS.name}_batch_id ON {SEGMENTS.name} (batch_id)"


class SegmentLedger:
    """The checkpoint rows, read: which landing segments are committed, by which batch,
    with how many records and bytes, and when.

    The one way to them for the runner's pending list, the monitor, the collector's
    backlog and replay: the table is the catalog's own business. ``between`` is a
    half-open range of segment names (``("clicks/2026-01-01/07/", "clicks/2026-01-01/08/")``,
    a primary-key range scan); ``among`` a collection of names.

    Marks of whole landing days that retention deleted are folded into a row a day
    (:meth:`fold`); every reader here sees them as it saw their rows.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._epoch_table = False
        self._folded_table = False

    @classmethod
    def open(cls, catalog_uri: str) -> SegmentLedger | None:
        """The ledger of the catalog at ``catalog_uri``, read-only and creating nothing;
        None while there is none yet (no SQLite file, or nothing ever committed)."""
        sqlite_file = catalog_uri.removeprefix("sqlite:///")
        if sqlite_file != catalog_uri and not os.path.exists(sqlite_file):
            return None
        engine = create_engine(catalog_uri)
        translate_driver_errors(engine)
        if not inspect(engine).has_table(SEGMENTS.name):
            engine.dispose()
            return None
        return cls(engine)

    def names(
        self,
        source: str | None = None,
        *,
        between: tuple[str, str] | None = None,
        among: Collection[str] | None = None,
    ) -> set[str]:
        """Names of the committed segments (of ``source``, in ``between``, ``among``)."""
        return {row[0] for row in self._rows([SEGMENTS.c.segment], source, between, among)}

    def marks(
        self,
        source: str | None = None,
        *,
        between: tuple[str, str] | None = None,
        among: Collection[str] | None = None,
    ) -> dict[str, SegmentDone]:
        """segment name → its checkpoint row."""
        rows = self._rows(list(SEGMENTS.c), source, between, among)
        return {row.segment: SegmentDone(**row._asdict()) for row in rows}

    def marks_of_batches(self, batch_ids: Collection[str]) -> dict[str, SegmentDone]:
        """segment name → its checkpoint row, for every segment the batches ``batch_ids``
        committed (a replay's whole batches).

        Looked up by an index on the batch ids, made here the first time it is needed: the
        ledger holds a mark for every segment ever committed — tens of millions after
        months of one-second collector segments — and without the index each look-up read
        them all. Made only for a lake that replays (it takes ≈ a third more room again)."""
        ids = sorted(batch_ids)
        if not ids:
            return {}
        with self.engine.begin() as connection:
            connection.execute(text(_BATCH_INDEX))
        found: dict[str, SegmentDone] = {}
        with Session(self.engine) as session:
            for i in range(0, len(ids), _CHUNK):
                query = select(*SEGMENTS.c).where(SEGMENTS.c.batch_id.in_(ids[i : i + _CHUNK]))
                for row in session.execute(query).all():
                    found[row.segment] = SegmentDone(**row._asdict())
        wanted = set(ids)
        for mark in self._unfolded(self._folded_with_batches(wanted)):
            if mark.batch_id in wanted:
                found[mark.segment] = mark
        return found

    def table(
        self, *, between: tuple[str, str] | None = None, among: Collection[str] | None = None
    ) -> pa.Table:
        """The checkpoint rows as Arrow columns (segment, records, bytes, committed_at)."""
        columns = [
            SEGMENTS.c.segment,
            SEGMENTS.c.records,
            SEGMENTS.c.bytes,
            SEGMENTS.c.committed_at,
        ]
        return marks_table(self._rows(columns, None, between, among))

    def any(self) -> bool:
        """Whether any segment was ever committed."""
        with Session(self.engine) as session:
            if session.execute(select(SEGMENTS.c.segment).limit(1)).first() is not None:
                return True
        return bool(self._folded_days())

    def count(self, between: tuple[str, str]) -> int:
        """How many segments in the half-open name range ``between`` are committed."""
        query = select(func.count()).where(
            SEGMENTS.c.segment >= between[0], SEGMENTS.c.segment < between[1]
        )
        with Session(self.engine) as session:
            counted = int(session.execute(query).scalar_one())
        return counted + folded_count(between, self._folded_days(), self._unfolded)

    # ------------------------------------------------------------------ folded days
    def unfolded_days_before(self, source: str, day: str) -> list[str]:
        """The landing days (``YYYY-MM-DD``) of ``source`` before ``day`` with marks still
        kept a row each (names that are not of a landing day are left out)."""
        head = len(source) + 1
        query = (
            select(func.substr(SEGMENTS.c.segment, head + 1, 10))
            .where(SEGMENTS.c.segment >= f"{source}/", SEGMENTS.c.segment < f"{source}/{day}/")
            .distinct()
        )
        with Session(self.engine) as session:
            found = session.execute(query).scalars().all()
        return sorted(d for d in found if _is_day(d))

    def fold(self, source: str, day: str) -> int:
        """Fold the marks of ``source``'s segments landed on ``day`` into the day's one row
        (with those folded before): how many marks it folded. Call it for days whose
        segments the landing zone no longer holds: what a processor reads at its start
        (the marks of the runs of days the landing zone holds) then never unpacks one."""
        low, high = day_range(source, day)
        in_day = (SEGMENTS.c.segment >= low, SEGMENTS.c.segment < high)
        the_day = (FOLDED.c.source == source, FOLDED.c.day == day)
        with Session(self.engine) as session, session.begin():
            rows = session.execute(select(*_PACKED).where(*in_day)).all()
            if not rows:
                return 0
            marks = [tuple(row) for row in rows]
            before = session.execute(select(FOLDED.c.marks).where(*the_day)).scalar_one_or_none()
            if before is not None:
                marks += jsonutil.loads(zlib.decompress(before))
                session.execute(delete(FOLDED).where(*the_day))
            session.execute(insert(FOLDED).values(_folded_row(source, day, marks)))
            session.execute(delete(SEGMENTS).where(*in_day))
        return len(rows)

    def _has_folded(self) -> bool:
        if not self._folded_table:  # a catalog no writer of this version has opened yet
            self._folded_table = inspect(self.engine).has_table(FOLDED.name)
        return self._folded_table

    def _folded_days(self, source: str | None = None) -> list[tuple[str, str, int]]:
        """(source, day, how many marks) of each folded day (a few rows a day of history)."""
        if not self._has_folded():
            return []
        query = select(FOLDED.c.source, FOLDED.c.day, FOLDED.c.segments)
        if source:
            query = query.where(FOLDED.c.source == source)
        with Session(self.engine) as session:
            return [tuple(row) for row in session.execute(query).all()]  # type: ignore[misc]

    def _unfolded(self, days: Collection[tuple[str, str]]) -> list[SegmentDone]:
        """The marks folded into ``days`` (source, day)."""
        if not days:
            return []
        with Session(self.engine) as session:
            return _folded_marks(session, days)

    def _folded_with_batches(self, batch_ids: set[str]) -> list[tuple[str, str]]:
        """The folded days that hold a mark of one of ``batch_ids``."""
        if not self._has_folded():
            return []
        query = select(FOLDED.c.source, FOLDED.c.day, FOLDED.c.batches)
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        return [
            (source, day)
            for source, day, batches in rows
            if not batch_ids.isdisjoint(zlib.decompress(batches).decode().split("\n"))
        ]

    def epoch(self) -> int:
        """Raised whenever committed marks are withdrawn (0 before the first time)."""
        if not self._epoch_table:
            self._epoch_table = inspect(self.engine).has_table(EPOCH.name)
            if not self._epoch_table:
                return 0  # a catalog no writer of this version has opened yet
        with Session(self.engine) as session:
            found = session.execute(select(EPOCH.c.epoch).where(EPOCH.c.name == "ledger"))
            return int(found.scalar_one_or_none() or 0)

    def _rows(
        self,
        columns: list[Any],
        source: str | None,
        between: tuple[str, str] | None,
        among: Collection[str] | None,
    ) -> list[Any]:
        query = select(*columns)
        if source:
            query = query.where(SEGMENTS.c.source == source)
        if between:
            query = query.where(SEGMENTS.c.segment >= between[0], SEGMENTS.c.segment < between[1])
        # .all() fetches the cursor's rows at once (iterating fetches them one by one).
        with Session(self.engine) as session:
            if among is None:
                rows: list[Any] = list(session.execute(query).all())
            else:
                names = list(among)
                rows = [
                    row
                    for i in range(0, len(names), _CHUNK)
                    for row in session.execute(
                        query.where(SEGMENTS.c.segment.in_(names[i : i + _CHUNK]))
                    ).all()
                ]
        days = self._folded_days(source)
        if days:
            rows += self._folded_rows(columns, days, between, among)
        return rows

    def _folded_rows(
        self,
        columns: list[Any],
        days: list[tuple[str, str, int]],
        between: tuple[str, str] | None,
        among: Collection[str] | None,
    ) -> list[Any]:
        """What :meth:`_rows` reads of the folded ``days`` (:func:`marks.folded_asked`)."""
        fields = tuple(column.name for column in columns)
        row = _row_type(fields)
        return [
            row(*(getattr(mark, name) for name in fields))
            for mark in folded_asked(days, between, among, self._unfolded)
        ]


def _is_day(text: str) -> bool:
    return len(text) == 10 and text[4] == text[7] == "-" and text.replace("-", "").isdigit()


@functools.lru_cache(maxsize=8)
def _row_type(fields: tuple[str, ...]) -> Any:
    """A row of ``fields`` as the database's rows read: by position, name, ``_asdict()``."""
    return collections.namedtuple("FoldedMark", fields)  # type: ignore[misc]


# A folded mark: these columns, in this order (``FOLDED.marks`` holds a JSON array of them).
_PACKED = (
    SEGMENTS.c.segment,
    SEGMENTS.c.batch_id,
    SEGMENTS.c.records,
    SEGMENTS.c.bytes,
    SEGMENTS.c.committed_at,
)


def _folded_row(source: str, day: str, marks: list[Any]) -> dict[str, Any]:
    """The ``FOLDED`` row of ``source``'s ``day`` holding ``marks`` (:data:`_PACKED` each)."""
    marks = sorted(marks, key=lambda mark: mark[0])
    batches = "\n".join(sorted({mark[1] for mark in marks})).encode()
    return {
        "source": source,
        "day": day,
        "segments": len(marks),
        "marks": zlib.compress(jsonutil.dumps(marks), 6),
        "batches": zlib.compress(batches, 6),
    }


def _folded_marks(session: Session, days: Collection[tuple[str, str]]) -> list[SegmentDone]:
    """The marks folded into ``days`` (source, day), read in ``session``."""
    where = tuple_(FOLDED.c.source, FOLDED.c.day).in_(sorted(days))
    folded = session.execute(select(FOLDED.c.source, FOLDED.c.marks).where(where)).all()
    return [mark for source, packed in folded for mark in unpacked(source, packed)]


def _unfold(session: Session, names: Collection[str]) -> None:
    """Put the marks of the folded days ``names`` fall in back a row each (a replay's
    forget withdraws some of them next, in the same transaction)."""
    days = days_of(names)
    marks = _folded_marks(session, days) if days else []
    if marks:
        session.execute(
            delete(FOLDED).where(tuple_(FOLDED.c.source, FOLDED.c.day).in_(sorted(days)))
        )
        session.execute(insert(SEGMENTS), [m.__dict__ for m in marks])


def _folded_already(session: Session, segments: list[SegmentDone]) -> bool:
    """Whether a mark of ``segments`` is folded already (committed before: a conflict the
    table's key no longer catches for a folded day)."""
    days = days_of(s.segment for s in segments)
    folded = {m.segment for m in _folded_marks(session, days)} if days else set()
    return any(s.segment in folded for s in segments)


def _raise_epoch(session: Session) -> None:
    raised = session.execute(
        update(EPOCH).where(EPOCH.c.name == "ledger").values(epoch=EPOCH.c.epoch + 1)
    )
    if raised.rowcount < 1:  # type: ignore[attr-defined]
        session.execute(insert(EPOCH).values(name="ledger", epoch=1))


def translate_driver_errors(engine: Engine) -> None:
    """Turn the database driver's operational errors (a locked SQLite file, a lost
    PostgreSQL connection) into :class:`CatalogUnavailableError`, which is transient:
    callers retry it without knowing which driver is underneath."""

    @event.listens_for(engine, "handle_error")
    def _transient(context: Any) -> None:
        error = context.sqlalchemy_exception
        if isinstance(error, OperationalError):
            raise catalog_unavailable(error) from error


def catalog_unavailable(error: OperationalError) -> CatalogUnavailableError:
    return CatalogUnavailableError(
        f"the catalog database failed: {error.orig}",
        hint="another process may hold it, its disk be full or its server down; fix that "
        "and run the same command again (nothing was committed half-way)",
    )


@dataclass
class _Staged:
    namespace: str
    table_name: str
    previous: str
    new: str


def _create_all(metadata: MetaData, engine: Engine) -> None:
    """``metadata.create_all``, safe against another process creating the same tables at
    once: its check-then-create let two first runs on a new lake (``process`` and
    ``maintain`` started together) both find a table missing, and the second's CREATE
    failed with "table ... already exists". Checked again, the tables are there. The error
    comes as the driver's, or as :func:`translate_driver_errors` made it once the engine
    has that listener (two ``process`` commands started together on a lake ``ingest``
    made lost the race for the segment ledger's tables that way)."""
    for attempt in range(3):
        try:
            metadata.create_all(engine)
            return
        except (
            OperationalError,
            ProgrammingError,
            IntegrityError,
            CatalogUnavailableError,
        ) as error:
            if not _lost_a_create_race(error) or attempt == 2:
                raise


def _lost_a_create_race(error: Exception) -> bool:
    """Whether ``error`` is a CREATE TABLE losing to another's: SQLite says the table
    "already exists"; PostgreSQL says the relation "already exists" (a programming error)
    or, when both CREATEs ran at the same instant, violates the unique index of its type
    names (``pg_type_typname_nsp_index``)."""
    text = str(error)
    return "already exists" in text or "pg_type_typname_nsp_index" in text


class AtomicSqlCatalog(SqlCatalog):
    """A SqlCatalog whose commits can be grouped into one catalog transaction, and which
    reads each table's metadata file once.

    Metadata files are immutable and each has a name of its own, so a table's metadata is
    a function of its metadata location: the newest one read or staged per table is kept,
    and opening a table whose location has not moved since costs one catalog query, not a
    parse of a metadata.json that lists every snapshot time travel keeps (a batch opens
    each of its tables several times). Staging a commit applies the updates without
    pyiceberg's deep copy of the whole metadata (see ``lake.transaction``).
    """

    def __init__(self, name: str, **properties: Any) -> None:
        super().__init__(name, **properties)  # a failure here: see tables._catalog_unavailable
        translate_driver_errors(self.engine)
        _create_all(_meta, self.engine)
        self.ledger = SegmentLedger(self.engine)
        self._group: list[_Staged] | None = None
        self._known: dict[tuple[str, str], tuple[str, TableMetadata]] = {}  # newest per table
        # metadata location staged → the snapshots its commit adds, until it is written
        self._adding: dict[str, list[Snapshot]] = {}
        self._unsynced: list[str] = []  # files of the atomic group's commits, not fsync'd yet
        # Set for a copy of a lake (Lake.check_home): its tables' FileIO raises it on any
        # write, a commit's metadata file included.
        self.refuse_commits: Exception | None = None
        warehouse = local_path(str(properties.get("warehouse", "")))
        self._warehouse = warehouse.rstrip("/") if warehouse else None

    def create_tables(self) -> None:
        """pyiceberg's, safe against another process creating the catalog's tables at once."""
        _create_all(SqlCatalogBaseTable.metadata, self.engine)

    def create_namespace(
        self, namespace: str | tuple[str, ...], properties: Properties = EMPTY_DICT
    ) -> None:
        """pyiceberg's, safe against another process creating the same namespace at once.

        Its check-then-insert lets two first runs on a new lake (a processor and a
        ``maintain``, say) both pass the check; the loser's insert then fails on the
        primary key, which is the namespace existing, not an error."""
        try:
            super().create_namespace(namespace, properties)
        except IntegrityError:
            if not self.namespace_exists(namespace):
                raise
            raise NamespaceAlreadyExistsError(f"Namespace {namespace} already exists") from None

    def load_table(self, identifier: str | tuple[str, ...]) -> Table:
        """pyiceberg's, through one Core query for the table's row (its ORM query cost more
        than reading a known table's metadata now does)."""
        namespace = Catalog.namespace_to_string(Catalog.namespace_from(identifier))
        table_name = Catalog.table_name_from(identifier)
        with self.engine.connect() as connection:
            found = connection.execute(
                self._table_row, {"namespace": namespace, "table_name": table_name}
            ).first()
        if found is None:
            raise NoSuchTableError(f"Table does not exist: {namespace}.{table_name}")
        return self._convert_orm_to_iceberg(found)  # type: ignore[arg-type]  # same columns

    @cached_property
    def _table_row(self) -> Select[str, str, str | None]:
        """The query for one table's row, built once: building a SQLAlchemy statement
        costs more than running it (a batch opens its tables a dozen times)."""
        row = IcebergTables
        query = select(row.table_namespace, row.table_name, row.metadata_location).where(
            row.catalog_name == self.name,
            row.table_namespace == bindparam("namespace"),
            row.table_name == bindparam("table_name"),
        )
        if (type_filter := self._iceberg_type_filter()) is not None:
            query = query.where(type_filter)
        return query

    def _convert_orm_to_iceberg(self, orm_table: IcebergTables) -> Table:
        key = (str(orm_table.table_namespace), str(orm_table.table_name))
        location = orm_table.metadata_location
        known = self._known.get(key)
        if known is None or known[0] != location:
            table = super()._convert_orm_to_iceberg(orm_table)
            self._known[key] = (table.metadata_location, table.metadata)
            return table
        metadata = known[1]
        return Table(
            identifier=(*Catalog.identifier_to_tuple(key[0]), key[1]),
            metadata=metadata,
            metadata_location=known[0],
            io=self._load_file_io(metadata.properties, known[0]),
            catalog=self,
        )

    def _update_and_stage_table(
        self,
        current_table: Table | None,
        table_identifier: Any,
        requirements: Any,
        updates: Any,
    ) -> StagedTable:
        if current_table is None:  # a table created: pyiceberg's, which validates it whole
            staged = super()._update_and_stage_table(
                current_table, table_identifier, requirements, updates
            )
            self._staged_adding(staged.metadata_location, list(staged.metadata.snapshots))
            return staged
        for requirement in requirements:
            requirement.validate(current_table.metadata)
        location = current_table.metadata_location
        metadata = updated_metadata(current_table.metadata, updates, location)
        version = self._parse_metadata_version(location) + 1
        provider = load_location_provider(metadata.location, metadata.properties)
        new_location = provider.new_table_metadata_file_location(version)
        namespace = Catalog.namespace_to_string(Catalog.namespace_from(table_identifier))
        self._known[(namespace, Catalog.table_name_from(table_identifier))] = (
            new_location,
            metadata,
        )
        before = {s.snapshot_id for s in current_table.metadata.snapshots}
        self._staged_adding(
            new_location, [s for s in metadata.snapshots if s.snapshot_id not in before]
        )
        return StagedTable(
            identifier=table_identifier,
            metadata=metadata,
            metadata_location=new_location,
            io=self._load_file_io(properties=metadata.properties, location=new_location),
            catalog=self,
        )

    @property
    def in_group(self) -> bool:
        """Whether commits are being gathered into an atomic group right now."""
        return self._group is not None

    def location(self, name: str) -> str | None:
        """The current metadata location of table ``name`` (None: there is no such table),
        read from the catalog database itself: what :meth:`atomic`'s ``unchanged`` takes."""
        namespace, table_name = name.split(".", 1)
        with self.engine.connect() as connection:
            found = connection.execute(
                self._table_row, {"namespace": namespace, "table_name": table_name}
            ).first()
        return None if found is None else str(found.metadata_location)

    @contextlib.contextmanager
    def atomic(
        self,
        segments: list[SegmentDone],
        forget: list[str] | None = None,
        unchanged: Mapping[str, str | None] | None = None,
    ) -> Iterator[None]:
        """Stage every table commit made inside; publish them, ``segments`` done and
        ``forget`` pending again, together. ``unchanged``: tables whose metadata location
        (:meth:`location`) must still be the one given when the group is published — a
        change committed by another writer since makes it a :class:`CommitConflictError`,
        nothing published (a marts' update computed before an erasure, say)."""
        if self._group is not None:
            raise LakeError("atomic groups do not nest")
        self._group = []
        try:
            yield
            staged, self._group = self._group, None
            durability.sync(self._unsynced, self._warehouse)
            self._publish(staged, segments, forget or [], unchanged or {})
        except (FileNotFoundError, ValidationException, CommitFailedException) as error:
            # Lost races that outlived pyiceberg's own retries, e.g. the commit started from
            # a snapshot maintenance has since expired (its manifest list deleted). Nothing
            # was published: the caller retries it whole on fresh metadata.
            raise CommitConflictError(
                f"table metadata moved on while the commit was prepared ({error})",
                hint="retried on fresh metadata; nothing was committed",
            ) from error
        finally:
            self._group = None
            self._unsynced = []

    @contextlib.contextmanager
    def joined(self) -> Iterator[None]:
        """Commit inside the atomic group open now, or in a group of their own."""
        if self._group is not None:
            yield
            return
        with self.atomic([]):
            yield

    def _publish(
        self,
        staged: list[_Staged],
        segments: list[SegmentDone],
        forget: list[str] | None = None,
        unchanged: Mapping[str, str | None] | None = None,
    ) -> None:
        with Session(self.engine) as session, session.begin():
            for s in staged:
                result = session.execute(
                    update(IcebergTables)
                    .where(
                        IcebergTables.catalog_name == self.name,
                        IcebergTables.table_namespace == s.namespace,
                        IcebergTables.table_name == s.table_name,
                        IcebergTables.metadata_location == s.previous,
                    )
                    .values(metadata_location=s.new, previous_metadata_location=s.previous)
                )
                if result.rowcount < 1:  # type: ignore[attr-defined]
                    raise CommitConflictError(
                        f"table {s.namespace}.{s.table_name} was changed by another process",
                        # Any writer may have: a second processor, maintain, forget, a
                        # replay (they retry first: this is what is left after retries).
                        hint="another command changed this table meanwhile (a second "
                        "processor, maintain, forget or a replay); run this command again — "
                        "and run one processor per lake",
                    )
            # Looked at after the updates: the database lets no other writer commit now.
            _check_unchanged(session, self._table_row, staged, unchanged or {})
            if forget:
                _unfold(session, forget)
            for chunk in range(0, len(forget or []), 500):
                session.execute(
                    delete(SEGMENTS).where(
                        SEGMENTS.c.segment.in_((forget or [])[chunk : chunk + 500])
                    )
                )
            if forget:
                _raise_epoch(session)
            if segments:
                conflict = CommitConflictError(
                    "these landing segments were committed by another processor meanwhile; "
                    "nothing of this batch was published",
                    hint="run one processor per lake; run process again to pick up the rest",
                )
                if _folded_already(session, segments):
                    raise conflict
                try:
                    session.execute(insert(SEGMENTS), [s.__dict__ for s in segments])
                except IntegrityError as error:  # the whole transaction rolls back
                    raise conflict from error

    def _load_file_io(
        self, properties: Properties = EMPTY_DICT, location: str | None = None
    ) -> FileIO:
        """pyiceberg's; for a copy of a lake (``refuse_commits`` set), one that reads but
        refuses to write or delete: pyiceberg writes a table's new data files (an append,
        an overwrite, an erasure) before its commit is refused, into the original's
        folders."""
        io = super()._load_file_io(properties, location)
        return io if self.refuse_commits is None else _ReadOnlyIO(io, self.refuse_commits)

    def _staged_adding(self, location: str, snapshots: list[Snapshot]) -> None:
        """Remember the snapshots the metadata staged at ``location`` adds, until it is
        written. A commit that failed in between leaves its entry: a long run forgets them."""
        if len(self._adding) >= 64:
            self._adding.clear()
        self._adding[location] = snapshots

    def _write_metadata(  # type: ignore[override]  # pyiceberg's is static; this needs self
        self, metadata: TableMetadata, io: FileIO, metadata_path: str
    ) -> None:
        """pyiceberg's, then the files this commit publishes made durable (see
        :mod:`advertisex.lake.durability`) — in an atomic group, all of them at once just
        before the group is published."""
        super()._write_metadata(metadata, io, metadata_path)
        adding = self._adding.pop(metadata_path, None)
        if adding is None:  # not staged here (a table created): at most its current snapshot
            adding = [s for s in [metadata.current_snapshot()] if s is not None]
        files = durability.files_added(metadata_path, adding)
        if self._group is not None:
            self._unsynced.extend(files)
        else:
            durability.sync(files, self._warehouse)

    def commit_table(self, table: Table, requirements: Any, updates: Any) -> CommitTableResponse:
        if self._group is None:
            return super().commit_table(table, requirements, updates)
        identifier = table.name()
        namespace = Catalog.namespace_to_string(Catalog.namespace_from(identifier))
        table_name = Catalog.table_name_from(identifier)
        if any(s.namespace == namespace and s.table_name == table_name for s in self._group):
            raise LakeError(f"{namespace}.{table_name} committed twice in one atomic group")
        try:
            current = self.load_table(identifier)
        except NoSuchTableError as e:
            raise CommitFailedException(f"table {namespace}.{table_name} does not exist") from e
        staged = self._update_and_stage_table(current, identifier, requirements, updates)
        self._write_metadata(
            metadata=staged.metadata, io=staged.io, metadata_path=staged.metadata_location
        )
        self._group.append(
            _Staged(namespace, table_name, current.metadata_location, staged.metadata_location)
        )
        return CommitTableResponse(  # type: ignore[call-arg]
            metadata=staged.metadata, metadata_location=staged.metadata_location
        )


def _check_unchanged(
    session: Session,
    table_row: Select[str, str, str | None],
    staged: list[_Staged],
    unchanged: Mapping[str, str | None],
) -> None:
    """Raise :class:`CommitConflictError` when a table of ``unchanged`` no longer has the
    metadata location given (one this group updates: had it when staged). ``table_row``:
    the catalog's query for one table's row (``AtomicSqlCatalog._table_row``)."""
    for name, expected in unchanged.items():
        namespace, table_name = name.split(".", 1)
        mine = [s for s in staged if (s.namespace, s.table_name) == (namespace, table_name)]
        if mine:
            now: str | None = mine[0].previous
        else:
            found = session.execute(
                # (PostgreSQL: the row held to the commit; SQLite: no such lock)
                table_row.with_for_update(read=True),
                {"namespace": namespace, "table_name": table_name},
            ).first()
            now = None if found is None else str(found.metadata_location)
        if now != expected:
            raise CommitConflictError(
                f"{name} changed while this commit was prepared (another writer committed first)",
                hint="retried on fresh metadata; nothing was committed",
            )


class _ReadOnlyIO(FileIO):
    """A FileIO that reads through ``io`` and raises ``refusal`` on any write or delete."""

    def __init__(self, io: FileIO, refusal: Exception) -> None:
        super().__init__(io.properties)
        self._io, self._refusal = io, refusal

    def new_input(self, location: str) -> InputFile:
        return self._io.new_input(location)

    def new_output(self, location: str) -> OutputFile:
        raise self._refusal

    def delete(self, location: str | InputFile | OutputFile) -> None:
        raise self._refusal
