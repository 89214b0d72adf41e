"""Table metadata worked out once per change, and never deep-copied.

pyiceberg (0.12) recomputes ``Transaction.table_metadata`` on every read: it replays the
staged updates over the table's metadata and deep-copies the result, snapshot list
included. One ``add_files`` reads it about twenty times, a file swap once per file it adds
or removes, and the catalog replays the updates once more to stage the commit — so a
commit cost in proportion to the snapshots time travel keeps (hundreds per table under
``process --follow``), not to the batch it committed.

Here the result is kept while its inputs stay the same objects: the table's metadata (a
commit retry refreshes it) and the staged updates (an immutable tuple pyiceberg rebinds
at every change). Any change recomputes it, so every read sees what it saw before. And
it is worked out without the final deep copy (:func:`updated_metadata`): every update
pyiceberg applies builds new lists and dicts (copy on write) over frozen models, so the
new metadata can share the unchanged snapshots with the old. This is the fix proposed
upstream (apache/iceberg-python pull requests 3302 and 3784), and the copy it leaves out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import (
    TableUpdate,
    _apply_table_update,
    _TableMetadataUpdateContext,
    _update_table_metadata_log,
)
from pyiceberg.utils.datetime import datetime_to_millis


def updated_metadata(
    base: TableMetadata, updates: tuple[TableUpdate, ...], metadata_location: str | None = None
) -> TableMetadata:
    """pyiceberg's ``update_table_metadata`` (without validation) minus its closing deep
    copy: ``base`` with ``updates`` applied, sharing what they left unchanged.
    ``metadata_location``: the version being replaced, for the metadata log."""
    context = _TableMetadataUpdateContext()
    new = base
    for update in updates:
        new = _apply_table_update(update, new, context)
    if context.has_changes():
        if metadata_location:
            new = _update_table_metadata_log(new, metadata_location, base.last_updated_ms)
        if base.last_updated_ms == new.last_updated_ms:
            now = datetime_to_millis(datetime.now().astimezone())
            new = new.model_copy(update={"last_updated_ms": now})
    new.spec().check_compatible(new.schema())
    new.sort_order().check_compatible(new.schema())
    return new


class CachedTransaction(Transaction):
    """:class:`pyiceberg.table.Transaction` whose ``table_metadata`` is computed once per
    (table metadata, staged updates), without a deep copy."""

    _worked_out: tuple[Any, Any, TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates = self._table.metadata, self._updates
        known = self._worked_out
        if known is None or known[0] is not base or known[1] is not updates:
            known = self._worked_out = (base, updates, updated_metadata(base, updates))
        return known[2]


def transaction(table: Table) -> Transaction:
    """A transaction on ``table`` (commits when its ``with`` block ends without error)."""
    return CachedTransaction(table)
