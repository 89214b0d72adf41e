"""A pyiceberg transaction that works out its table's metadata once per change.

pyiceberg (0.12) recomputes ``Transaction.table_metadata`` on every read: it replays the
staged updates over the table's metadata and deep-copies the result, snapshot list
included. One ``add_files`` reads it about twenty times, a file swap once per file it adds
or removes — so a commit cost in proportion to the snapshots time travel keeps (hundreds
per table under ``process --follow``), not to the batch it committed.

Here the result is kept while its inputs stay the same objects: the table's metadata (a
commit retry refreshes it) and the staged updates (an immutable tuple pyiceberg rebinds
at every change). Any change recomputes it, so every read sees what it saw before, and
the metadata models are frozen, so the reads can share one copy. This is the fix
proposed upstream (apache/iceberg-python pull requests 3302 and 3784).
"""

from __future__ import annotations

from typing import Any

from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata


class CachedTransaction(Transaction):
    """:class:`pyiceberg.table.Transaction` whose ``table_metadata`` is computed once per
    (table metadata, staged updates)."""

    _worked_out: tuple[Any, Any, TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates = self._table.metadata, self._updates
        known = self._worked_out
        if known is None or known[0] is not base or known[1] is not updates:
            known = self._worked_out = (base, updates, super().table_metadata)
        return known[2]


def transaction(table: Table) -> Transaction:
    """A transaction on ``table`` (commits when its ``with`` block ends without error)."""
    return CachedTransaction(table)
