"""The Iceberg catalog, with one extra power: commit several tables as one transaction.

pyiceberg's SQL catalog commits one table at a time. A batch writes up to six tables
(curated tables, quarantine, ops.batches) and marks its landing segments done, and
DESIGN.md promises that all of it happens or none of it does. ``AtomicSqlCatalog``
stages each table's new metadata file exactly as pyiceberg does, but defers the
pointer swap; at the end of the group every swap and the segment checkpoint rows are
written in one SQL transaction (SQLite here, PostgreSQL at scale). A crash before
that transaction leaves only unreferenced metadata files behind; a crash after it
leaves a complete batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationException
from pyiceberg.table import CommitTableResponse, Table
from sqlalchemy import Column, Integer, MetaData, String, delete, insert, select, update
from sqlalchemy import Table as SqlTable
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from advertisex.errors import CommitConflictError

# Landing segments already committed, with the batch that committed them. Lives in the
# catalog database so that marking a segment done shares the batch's transaction.
_meta = MetaData()
SEGMENTS = SqlTable(
    "advertisex_segments",
    _meta,
    Column("segment", String(1024), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("batch_id", String(64), nullable=False),
    Column("records", Integer, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("committed_at", String(40), nullable=False),
)


@dataclass(frozen=True)
class SegmentDone:
    segment: str
    source: str
    batch_id: str
    records: int
    bytes: int
    committed_at: str


@dataclass
class _Staged:
    namespace: str
    table_name: str
    previous: str
    new: str


class AtomicSqlCatalog(SqlCatalog):
    """A SqlCatalog whose commits can be grouped into one catalog transaction."""

    def __init__(self, name: str, **properties: Any) -> None:
        super().__init__(name, **properties)
        _meta.create_all(self.engine)
        self._group: list[_Staged] | None = None

    @property
    def in_group(self) -> bool:
        """Whether commits are being gathered into an atomic group right now."""
        return self._group is not None

    @contextlib.contextmanager
    def atomic(
        self, segments: list[SegmentDone], forget: list[str] | None = None
    ) -> Iterator[None]:
        """Stage every table commit made inside; publish them, ``segments`` done and
        ``forget`` pending again, together."""
        if self._group is not None:
            raise RuntimeError("atomic groups do not nest")
        self._group = []
        try:
            yield
            staged, self._group = self._group, None
            self._publish(staged, segments, forget or [])
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

    def _publish(
        self, staged: list[_Staged], segments: list[SegmentDone], forget: list[str] | None = None
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
                        hint="another processor is running on the same data; run one at a time",
                    )
            for chunk in range(0, len(forget or []), 500):
                session.execute(
                    delete(SEGMENTS).where(
                        SEGMENTS.c.segment.in_((forget or [])[chunk : chunk + 500])
                    )
                )
            if segments:
                try:
                    session.execute(insert(SEGMENTS), [s.__dict__ for s in segments])
                except IntegrityError as error:  # the whole transaction rolls back
                    raise CommitConflictError(
                        "these landing segments were committed by another processor meanwhile; "
                        "nothing of this batch was published",
                        hint="run one processor per lake; run process again to pick up the rest",
                    ) from error

    def commit_table(self, table: Table, requirements: Any, updates: Any) -> CommitTableResponse:
        if self._group is None:
            return super().commit_table(table, requirements, updates)
        identifier = table.name()
        namespace = Catalog.namespace_to_string(Catalog.namespace_from(identifier))
        table_name = Catalog.table_name_from(identifier)
        if any(s.namespace == namespace and s.table_name == table_name for s in self._group):
            raise RuntimeError(f"{namespace}.{table_name} committed twice in one atomic group")
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

    def done_segments(self, source: str | None = None) -> set[str]:
        query = select(SEGMENTS.c.segment)
        if source:
            query = query.where(SEGMENTS.c.source == source)
        with Session(self.engine) as session:
            return {row[0] for row in session.execute(query)}
