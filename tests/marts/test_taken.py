"""A replay's rows taken out, held as hashes, compared with the rows processed again."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from advertisex.marts import taken
from advertisex.marts.taken import Taken, change, row_hashes

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64())])


def _rows(*rows: tuple[str, int]) -> pa.Table:
    return pa.table({"id": [r[0] for r in rows], "n": [r[1] for r in rows]}, schema=SCHEMA)


def _parts(*tables: pa.Table) -> list[Any]:
    return [lambda t=t: t for t in tables]


def _unread() -> pa.Table | None:
    raise AssertionError("read back although nothing differs")


def _as_counter(rows: pa.Table) -> Counter[tuple[str, int]]:
    return Counter((r["id"], r["n"]) for r in rows.to_pylist())


def test_rows_given_back_are_no_change_and_nothing_is_read_back() -> None:
    out = _rows(("a", 1), ("b", 2), ("b", 2))
    held = Taken(np.sort(row_hashes(out)), (_unread,))
    again = _parts(_rows(("b", 2)), _rows(("a", 1), ("b", 2)))
    assert change(again, held, SCHEMA).num_rows == 0


def test_only_rows_that_differ_are_read_and_a_removed_row_from_any_copy_of_it() -> None:
    """A row changed, one lost and one copy of two: the rows of those hashes are read; the
    file read back from holds rows the replay kept too (a rewritten one), copies among them."""
    out = _rows(("a", 1), ("b", 2), ("c", 3), ("d", 4), ("d", 4))
    rewritten = _rows(("d", 4), ("k", 0), ("c", 3), ("d", 4), ("b", 2), ("a", 1), ("c", 3))
    held = Taken(np.sort(row_hashes(out)), (lambda: rewritten,))
    again = _parts(_rows(("a", 1), ("d", 4)), _rows(("b", 20)))
    differ = change(again, held, SCHEMA)
    assert differ is not None
    assert _as_counter(differ) == Counter({("b", 2): 1, ("b", 20): 1, ("c", 3): 1, ("d", 4): 1})


def test_a_removed_row_that_cannot_be_read_back_is_no_answer() -> None:
    out = _rows(("a", 1), ("b", 2))
    assert (
        change(_parts(_rows(("a", 1))), Taken(np.sort(row_hashes(out)), (lambda: None,)), SCHEMA)
        is None
    )
    gone_elsewhere = Taken(np.sort(row_hashes(out)), (lambda: _rows(("a", 1)),))
    assert change(_parts(_rows(("a", 1))), gone_elsewhere, SCHEMA) is None
    assert change([lambda: None], Taken.of(out), SCHEMA) is None  # a part of its own lost


@given(
    given_=st.lists(st.integers(0, 40), max_size=60),
    taken_=st.lists(st.integers(0, 40), max_size=60),
)
def test_uneven_hashes_are_the_multisets_difference_range_by_range(
    given_: list[int], taken_: list[int]
) -> None:
    old, taken._RANGE = taken._RANGE, 4  # many ranges of a few hashes each
    try:
        values, times = taken._uneven(
            np.sort(np.array(given_, np.uint64)), np.sort(np.array(taken_, np.uint64))
        )
    finally:
        taken._RANGE = old
    mine, theirs = Counter(given_), Counter(taken_)
    expected = sorted(v for v in set(mine) | set(theirs) if mine[v] != theirs[v])
    assert values.tolist() == expected
    assert times.tolist() == [theirs[v] for v in expected]
