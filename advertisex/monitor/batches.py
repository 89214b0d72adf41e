"""Batch accounting for the monitor: ``ops.batches`` summed per source and 5-minute bucket.

The follower commits a batch every few seconds and each batch adds one small data file
to ``ops.batches`` (maintenance compacts them now and then). Data files never change, so
each one is summed once, when it first appears (:class:`~advertisex.monitor.files.FileIndex`
says which are current); an observation adds up the sums of the current files. A
compaction replaces files: the new ones are summed, the old ones' sums dropped.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from advertisex.monitor import queries
from advertisex.monitor.files import FileIndex
from advertisex.monitor.model import BATCHES


class BatchTotals:
    """BATCHES from ``ops.batches``, each data file read once."""

    def __init__(self, files: FileIndex) -> None:
        self.files = files
        self._sums: dict[str, pa.Table] = {}  # data file → its sums
        self._all: pa.Table | None = None  # the current files' sums in one piece

    def since(self, since: datetime) -> pa.Table:
        """Sums per source and bucket of the batches committed from ``since`` on."""
        paths = self.files.paths("ops.batches")
        new = [p for p in paths if p not in self._sums]
        if new:
            read = queries.batch_sums(new, self.files.lake.settings.scale)
            rows: dict[str, list[int]] = {path: [] for path in new}
            for i, path in enumerate(read.column("file").to_pylist()):
                rows[path].append(i)
            sums = read.drop_columns("file")
            self._sums.update({p: sums.take(pa.array(t, pa.int64())) for p, t in rows.items()})
        if new or len(paths) != len(self._sums) or self._all is None:
            self._sums = {p: self._sums[p] for p in paths}
            parts = list(self._sums.values())
            self._all = pa.concat_tables(parts).combine_chunks() if parts else None
        if self._all is None:
            return BATCHES.empty_table()
        return queries.batch_totals(self._all, since)
