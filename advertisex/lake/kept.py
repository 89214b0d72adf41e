"""Rows a process wrote into data files, kept in memory for a reader that comes right after.

A batch writes its curated rows as data files and commits them; the marts' update then
reads some of their columns back. Read back from Parquet, the 2 M-event benchmark's
impressions and bids cost the marts' first build ≈ 0.35 s of its 1.6-1.7 s (the files
decoded again, on its critical path). :class:`KeptRows` keeps those columns of the rows
as they were handed to the writer, by data file, so that a read of exactly those files
takes them from memory.

What is kept is what the file holds: data files are never rewritten (a compaction or an
erasure writes new ones, under new names), so a file's kept rows are its rows for as
long as it exists. Dictionary-encoded columns (``TableSpec.few_values``) are kept so and
read in the table's own types, as the file reads.

Memory is bounded: past ``budget_bytes`` everything kept is let go and nothing more is
kept — readers then read the files, as they would without it.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


class KeptRows:
    """``columns`` of the rows written into data files of some tables, by file URL.

    >>> import pyarrow as pa
    >>> kept = KeptRows({"curated.clicks": ["event_id"]}, budget_bytes=1 << 20)
    >>> kept.add("curated.clicks", "file:///a.parquet", pa.table({"event_id": ["e1"], "x": [1]}))
    >>> kept.rows("curated.clicks", ["file:///a.parquet"], ["event_id"]).to_pylist()
    [{'event_id': 'e1'}]
    >>> kept.rows("curated.clicks", ["file:///a.parquet", "file:///b.parquet"], ["event_id"]) is None
    True
    """

    def __init__(self, columns: Mapping[str, Sequence[str]], budget_bytes: int) -> None:
        self.columns = {table: tuple(names) for table, names in columns.items()}
        self.budget_bytes = budget_bytes
        self._rows: dict[str, pa.Table] = {}
        self._table_of: dict[str, str] = {}  # each kept file's table
        self._bytes = 0
        self._over = False  # the budget was passed: nothing is kept any more
        self._lock = threading.Lock()  # the pieces of a batch write side by side
        self._settling: threading.Event | None = None  # set once settle_beside is done

    def wanted(self, table: str) -> bool:
        """Whether rows written into ``table``'s files are kept."""
        return table in self.columns and not self._over

    def add(self, table: str, url: str, rows: pa.Table) -> None:
        """Keep the kept columns of ``rows``, the rows of data file ``url`` of ``table``."""
        if not self.wanted(table):
            return
        selected = rows.select(list(self.columns[table]))
        with self._lock:
            if self._over:
                return
            self._bytes += selected.nbytes
            if self._bytes > self.budget_bytes:
                self._over = True
                self._rows.clear()
                self._table_of.clear()
                return
            self._rows[url] = selected
            self._table_of[url] = table

    def drop(self, urls: Collection[str]) -> None:
        """Let go of the rows of ``urls`` (files removed: never to be committed)."""
        with self._lock:
            for url in urls:
                self._table_of.pop(url, None)
                if (rows := self._rows.pop(url, None)) is not None:
                    self._bytes -= rows.nbytes

    def settle_beside(self) -> None:
        """Start :meth:`settle` on a thread of its own; a read waits for it to end."""
        done = threading.Event()
        self._settling = done

        def settle() -> None:
            try:
                self.settle()
            finally:
                done.set()

        # Not a daemon: a process that ends meanwhile (a commit that failed for good, the
        # CLI's exit) waits for it — a fraction of a second — instead of finalizing while it
        # is inside Arrow, which is how a DuckDB connection closed on another thread had
        # aborted a process at exit (console.query).
        threading.Thread(target=settle, name="kept-settle").start()

    def settle(self) -> None:
        """Turn the kept rows into their tables' own types now (the dictionary-coded columns
        decoded), as a read would: started beside a batch's commit (``runners.runner``),
        whose core the decoding of the marts' first reads waited for (≈ 0.1 s of both cores
        at 2 M events). What would pass the budget is left as it is, for a read to decode."""
        from advertisex.model.schemas import TABLES

        with self._lock:
            kept = [(url, self._table_of[url], rows) for url, rows in self._rows.items()]
        for url, table, rows in kept:
            settled = rows.cast(TABLES[table].projected(rows.column_names))
            with self._lock:
                grown = self._bytes + settled.nbytes - rows.nbytes
                if self._rows.get(url) is rows and grown <= self.budget_bytes:
                    self._rows[url], self._bytes = settled, grown

    def rows(self, table: str, urls: Sequence[str], fields: Sequence[str]) -> pa.Table | None:
        """``fields`` of the rows of the data files ``urls`` of ``table``, in that order and in
        the table's own types; None unless every file's rows and every field are kept."""
        import pyarrow as pa

        from advertisex.model.schemas import TABLES

        if not urls or not set(fields) <= set(self.columns.get(table, ())):
            return None
        schema = TABLES[table].projected(fields)
        if (settling := self._settling) is not None:
            settling.wait()  # the rows being decoded: not twice
        parts = []
        with self._lock:
            for url in urls:
                part = self._rows.get(url)
                if part is None:
                    return None
                parts.append(part)
        return pa.concat_tables([part.select(list(fields)).cast(schema) for part in parts])
