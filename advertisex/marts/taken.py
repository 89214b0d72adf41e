"""What a replay changed in the curated rows the marts read, known by hashes of the rows.

A landing replay takes a day's rows out of the curated tables and processes its segments
again; processing is deterministic, so as a rule it gives back the rows it took. The marts'
update after it folds in only the rows that differ (:func:`plan.net_change`). Holding the
rows taken out until then (the columns the marts read: ≈ 100 bytes a row) bounded a
replay's update to a million rows, fewer than one day of an ordinary lake holds (the 2 M
event set is ≈ 2 M rows of impressions and bids): past it, every mart was rebuilt from the
whole lake. So the rows taken out are held as one 64-bit hash each (:func:`row_hashes`,
the engine's ``hash`` of every column the marts read), and the rows processed again are
hashed part by part (a data file at a time) and compared with them as two multisets of
hashes. Only the rows of a hash the two sides hold a different number of times are read
whole — those added from their parts, those taken out from the files they were taken
from (a replay's swap leaves them in place) — and compared whole (:func:`plan.net_change`),
so two distinct rows that share a hash are still told apart unless a row taken out and a
row added share one by chance and nothing else differs (for n rows differing, about
n² / 2⁶⁴). Rows of equal content are interchangeable (the marts fold in a multiset of
contents), so a row taken out is read back from any row of those files with its hash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from advertisex.marts import plan
from advertisex.util import engine

# A part of rows, read when called (a data file); None when it can no longer be read.
Part = Callable[[], pa.Table | None]


@dataclass(frozen=True)
class Taken:
    """Rows a replay took out of one curated table: the sorted :func:`row_hashes` of their
    columns the marts read, and the parts they can be read back from (the files they were
    taken from, each whole: a file a replay rewrote holds rows it kept too)."""

    hashes: np.ndarray
    sources: Sequence[Part]

    @classmethod
    def of(cls, rows: pa.Table) -> Taken:
        """``rows`` held in memory (a test's, a small replay's).

        >>> Taken.of(pa.table({"id": ["a", "b", "a"]})).hashes.size
        3
        """
        return cls(np.sort(row_hashes(rows)), (lambda: rows,))


def row_hashes(rows: pa.Table) -> np.ndarray:
    """A 64-bit hash of each row of ``rows`` over all its columns, in row order (DuckDB's
    ``hash``: the same within one command, which is all a replay needs).

    >>> a = row_hashes(pa.table({"id": ["a", "b", "a"], "n": [1, 2, 1]}))
    >>> bool(a[0] == a[2]), bool(a[0] == a[1]), a.dtype.name
    (True, False, 'uint64')
    """
    if rows.num_rows == 0:
        return np.empty(0, np.uint64)
    columns = ", ".join('"' + name.replace('"', '""') + '"' for name in rows.column_names)
    hashed = engine.run(f"SELECT hash({columns}) AS h FROM rows", rows=rows).column("h")
    if len(hashed) != rows.num_rows:  # pragma: no cover - the engine's promise
        raise AssertionError("a row hash for every row")
    return np.asarray(hashed.to_numpy(), dtype=np.uint64)


def change(added: Sequence[Part], taken: Taken, schema: pa.Schema) -> pa.Table | None:
    """:func:`plan.net_change` of the rows the parts ``added`` hold and the rows ``taken``
    out, in ``schema``, holding a hash a row rather than the rows (the module docstring);
    None when a part or a source cannot be read, or the sources no longer hold every row
    taken out (the caller rebuilds)."""
    hashes: list[np.ndarray] = []
    for part in added:
        rows = part()
        if rows is None:
            return None
        hashes.append(row_hashes(rows.cast(schema)))
    given = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    given.sort()  # in place: the parts' hashes, in their rows' order, are still needed
    if np.array_equal(given, taken.hashes):  # the usual replay: the rows it took, given back
        return schema.empty_table()
    uneven, wanted = _uneven(given, taken.hashes)
    new: list[pa.Table] = []
    for part, of_part in zip(added, hashes, strict=True):
        if not _member(of_part, uneven).any():
            continue
        rows = part()
        if rows is None:
            return None
        new.append(rows.cast(schema).filter(pa.array(_member(of_part, uneven))))
    old = _read_back(taken.sources, uneven[wanted > 0], wanted[wanted > 0], schema)
    if old is None:
        return None
    return plan.net_change(pa.concat_tables(new) if new else schema.empty_table(), old)


# Hashes of either side compared at a time where the two differ (their temporaries).
_RANGE = 1 << 20


def _uneven(given: np.ndarray, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the hashes the sorted ``given`` and ``taken`` hold a different number of times,
    sorted; how many times ``taken`` holds each), compared a range of hash values at a
    time: at most about :data:`_RANGE` of each side."""
    cuts = np.union1d(given[_RANGE::_RANGE], taken[_RANGE::_RANGE])
    given_at = np.concatenate([[0], np.searchsorted(given, cuts), [given.size]])
    taken_at = np.concatenate([[0], np.searchsorted(taken, cuts), [taken.size]])
    values: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for k in range(cuts.size + 1):
        mine = given[given_at[k] : given_at[k + 1]]
        theirs = taken[taken_at[k] : taken_at[k + 1]]
        if np.array_equal(mine, theirs):
            continue
        held = np.union1d(mine, theirs)
        times_given = np.searchsorted(mine, held, "right") - np.searchsorted(mine, held, "left")
        times_taken = np.searchsorted(theirs, held, "right") - np.searchsorted(theirs, held, "left")
        differ = times_given != times_taken
        values.append(held[differ])
        times.append(times_taken[differ])
    if not values:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    return np.concatenate(values), np.concatenate(times)


def _member(hashes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` are among the sorted ``values``."""
    if values.size == 0:
        return np.zeros(hashes.size, dtype=bool)
    at = np.minimum(np.searchsorted(values, hashes), values.size - 1)
    return np.asarray(values[at] == hashes)


def _read_back(
    sources: Sequence[Part], values: np.ndarray, times: np.ndarray, schema: pa.Schema
) -> pa.Table | None:
    """``times[i]`` rows of hash ``values[i]`` (sorted) for every i, read from ``sources`` in
    turn until every one is found; None when a source cannot be read or they run out."""
    if values.size == 0:
        return schema.empty_table()
    found: list[pa.Table] = []
    of_found: list[np.ndarray] = []
    needed = int(times.sum())
    for source in sources:
        rows = source()
        if rows is None:
            return None
        rows = rows.cast(schema)
        hashes = row_hashes(rows)
        wanted = _member(hashes, values)
        found.append(rows.filter(pa.array(wanted)))
        of_found.append(hashes[wanted])
        kept = _first_of_each(np.concatenate(of_found), values, times)
        if kept.size == needed:
            return pa.concat_tables(found).take(pa.array(kept))
    return None


def _first_of_each(hashes: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Positions in ``hashes`` (each among the sorted ``values``) of at most ``times[i]``
    rows of hash ``values[i]`` — the first ones — in ascending order."""
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    rank = np.arange(ordered.size) - np.searchsorted(ordered, ordered, "left")
    cap = times[np.searchsorted(values, ordered)]
    return np.sort(order[rank < cap])
