"""Mergeable unique-user sketches: exact sets while small, HyperLogLog registers beyond.

A sketch is one binary value, a sequence of little-endian 64-bit words:

* word 0 is the header, its low byte the kind: ``1`` = exact, ``2`` = HyperLogLog;
* exact: the distinct 64-bit user hashes follow, sorted ascending (at most EXACT_LIMIT);
* HyperLogLog: 2**P one-byte registers follow (P = 14, about 0.8 % standard error).

Merging is a set union while the union stays within EXACT_LIMIT hashes, else the
register-wise maximum with the hashes inserted. Both are associative, commutative and
idempotent, so hours merge into days (and batches into marts) to the same bytes
whatever the order — which is what lets incremental marts equal a full recompute
exactly. An exact list never grows past the dense HyperLogLog's size (16 KiB).

Why not Apache DataSketches (pip ``datasketches``): it updates item by item from
Python (~1 µs each, too slow for millions of impressions per batch) and its serialized
unions depend on merge order; here sketches are built and merged with numpy.

User ids are hashed with MD5 (``md5_number_lower`` in DuckDB, :func:`hash_user` in
Python): a standard, stable hash, so sketches written today merge with later ones.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

P = 14
M = 1 << P
EXACT_LIMIT = M // 8  # an exact list of this many hashes is as large as the registers
EXACT, HLL = 1, 2
HASH_SQL = "md5_number_lower({column})"  # DuckDB: the same value as hash_user()
_REST_BITS = 64 - P


def hash_user(user_id: str) -> int:
    """The 64-bit hash a sketch stores for ``user_id`` (last 8 bytes of its MD5, as DuckDB)."""
    return int.from_bytes(hashlib.md5(user_id.encode()).digest()[8:], "little")


def user_hashes(user_ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:data:`HASH_SQL` of each user id, computed once per distinct id (a user has tens of
    impressions, and the engine's MD5 costs ≈ 0.6 µs a value); null for a null id.

    >>> user_hashes(pa.array(["u1", None, "u1"])).to_pylist() == [hash_user("u1"), None, hash_user("u1")]
    True
    """
    import pyarrow.compute as pc

    from advertisex.util import engine

    if isinstance(user_ids, pa.ChunkedArray):
        user_ids = user_ids.combine_chunks()
    encoded = pc.dictionary_encode(user_ids)
    distinct = engine.run(
        f"SELECT {HASH_SQL.format(column='u')} AS h FROM d",
        d=pa.table({"u": encoded.dictionary}),
    )
    return pc.take(distinct.column("h").combine_chunks(), encoded.indices)


def from_lists(lists: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One sketch per list of uint64 hashes (a null or empty list is the empty set)."""
    import pyarrow.compute as pc

    lists = lists.cast(pa.large_list(pa.uint64()))
    lengths = np.asarray(pc.list_value_length(lists).fill_null(0), dtype=np.int64)
    values = np.asarray(pc.list_flatten(lists), dtype=np.uint64)
    groups = np.repeat(np.arange(len(lengths)), lengths)
    return _union(groups, values, len(lengths), {})


def from_pairs(groups: np.ndarray, values: np.ndarray, n_groups: int) -> pa.Array:
    """One sketch per group (0 … ``n_groups`` - 1) of the uint64 hashes paired with it
    (``values[i]`` in group ``groups[i]``; pairs in ascending order are not sorted again,
    repeats dropped)."""
    return _union(np.asarray(groups, dtype=np.int64), values, n_groups, {})


def merge(
    group_of_row: np.ndarray, sketches: pa.Array | pa.ChunkedArray, n_groups: int
) -> pa.Array:
    """Union the sketches of rows into one sketch per group (``group_of_row[i]`` in 0..n-1)."""
    rows, values, registers = _decode(sketches)
    groups = np.asarray(group_of_row, dtype=np.int64)
    merged: dict[int, np.ndarray] = {}
    for row, regs in registers.items():
        g = int(groups[row])
        merged[g] = regs if g not in merged else np.maximum(merged[g], regs)
    return _union(groups[rows], values, n_groups, merged)


def _union(
    groups: np.ndarray, values: np.ndarray, n_groups: int, registers: dict[int, np.ndarray]
) -> pa.Array:
    if not _ascending(groups, values):
        groups, values = _ordered(groups, values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = (groups[1:] != groups[:-1]) | (values[1:] != values[:-1])
    return _encode(groups[keep], values[keep], n_groups, registers)


# Groups past which sorting each group's values alone costs more, in Python's loop, than
# one sort of every (group, value) pair.
_GROUPS_SORTED_ALONE = 4096


def _ordered(groups: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (group, value) pairs in ascending order. Groups already in order (a day's hours
    merged, in the hourly rows' order) only need each group's values sorted: a sort of each
    run, ≈ 5× quicker than ``lexsort`` of the 2 M set's 0.64 M pairs of a daily rollup.

    >>> g, v = _ordered(np.array([0, 0, 1, 1]), np.array([5, 2, 9, 1], dtype=np.uint64))
    >>> g.tolist(), v.tolist()
    ([0, 0, 1, 1], [2, 5, 1, 9])
    """
    starts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    if len(starts) < _GROUPS_SORTED_ALONE and bool(np.all(groups[starts] > groups[starts - 1])):
        values = values.copy()
        for lo, hi in zip([0, *starts.tolist()], [*starts.tolist(), len(values)], strict=True):
            values[lo:hi].sort()
        return groups, values
    # Polars sorts the pairs on every core: NumPy's ``lexsort`` (one core, a sort per key)
    # took 2.06 s for 5 M pairs in 60 k groups, Polars 0.68 s — the merges of a 10 M
    # backlog's hourly rollup (docs/benchmarks.md, "The marts' first build over a backlog").
    import polars as pl

    pairs = pl.DataFrame({"g": groups, "v": values}).sort(["g", "v"])
    return pairs["g"].to_numpy(), pairs["v"].to_numpy()


def _ascending(groups: np.ndarray, values: np.ndarray) -> bool:
    """Whether the (group, value) pairs are in ascending order already, as lists the engine
    sorted give them (``list_sort``, ``kernels.rollup``): a check of ≈ 1 ms for 0.5 M pairs
    instead of a sort of ≈ 50."""
    if len(groups) < 2:
        return True
    same = groups[1:] == groups[:-1]
    return bool(np.all((groups[1:] > groups[:-1]) | (same & (values[1:] >= values[:-1]))))


def union(sketches: pa.Array | pa.ChunkedArray) -> bytes:
    """All sketches merged into one."""
    return merge(np.zeros(len(sketches), np.int64), sketches, 1)[0].as_py() or b""


def estimate(sketches: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Distinct users per sketch: exact below EXACT_LIMIT, the HyperLogLog estimate above."""
    rows, _, registers = _decode(sketches)
    counts = np.bincount(rows, minlength=len(sketches)).astype(np.int64)
    for row, regs in registers.items():
        counts[row] = _hll_estimate(regs)
    return counts


def _encode(
    groups: np.ndarray, values: np.ndarray, n_groups: int, registers: dict[int, np.ndarray]
) -> pa.Array:
    """Sketches for ``n_groups`` groups from sorted (group, value) pairs plus known registers."""
    counts = np.bincount(groups, minlength=n_groups).astype(np.int64)
    dense = counts > EXACT_LIMIT
    for known in registers:
        dense[known] = True
    for index in np.flatnonzero(dense):
        g = int(index)
        lo, hi = np.searchsorted(groups, [g, g + 1])
        regs = _registers(values[lo:hi])
        registers[g] = np.maximum(registers[g], regs) if g in registers else regs
    words_per_group = np.where(dense, 1 + M // 8, 1 + counts)
    out_offsets = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(words_per_group, out=out_offsets[1:])
    words = np.zeros(int(out_offsets[-1]), dtype=np.uint64)
    words[out_offsets[:-1]] = np.where(dense, HLL, EXACT).astype(np.uint64)
    exact_values = ~dense[groups] if len(groups) else np.zeros(0, bool)
    g_exact = groups[exact_values]
    # Each value's place in its group: its position less its group's first (groups are
    # ascending) — a running maximum of where groups begin, not a binary search a value
    # (1.1 M impressions' hashes: 18 ms).
    places = np.arange(len(g_exact))
    begins = np.ones(len(g_exact), dtype=bool)
    begins[1:] = g_exact[1:] != g_exact[:-1]
    rank = places - np.maximum.accumulate(np.where(begins, places, 0))
    words[out_offsets[g_exact] + 1 + rank] = values[exact_values]
    data = words.view(np.uint8)
    for g, regs in registers.items():
        start = (int(out_offsets[g]) + 1) * 8
        data[start : start + M] = regs
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n_groups, [None, pa.py_buffer(out_offsets * 8), pa.py_buffer(data)]
    )


def _decode(
    sketches: pa.Array | pa.ChunkedArray,
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """(row of each exact hash, the hashes, {row: registers}) of a sketch column."""
    if isinstance(sketches, pa.ChunkedArray):
        sketches = (
            sketches.combine_chunks() if sketches.num_chunks else pa.array([], pa.large_binary())
        )
    array = sketches.cast(pa.large_binary())
    n = len(array)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.uint64), {}
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[array.offset : array.offset + n + 1]
    if data_buf is None or offsets[-1] == offsets[0]:
        return np.empty(0, np.int64), np.empty(0, np.uint64), {}
    raw = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]]
    words = np.frombuffer(raw.tobytes() if raw.ctypes.data % 8 else raw, dtype=np.uint64)
    word_offsets = (offsets - offsets[0]) // 8
    lengths = np.diff(word_offsets)
    present = lengths > 0  # null or empty values carry no header
    kinds = np.zeros(n, dtype=np.uint64)
    kinds[present] = words[word_offsets[:-1][present]] & np.uint64(0xFF)
    row_of_word = np.repeat(np.arange(n), lengths)
    is_value = np.ones(len(words), dtype=bool)
    is_value[word_offsets[:-1][present]] = False
    exact_word = is_value & (kinds[row_of_word] == EXACT)
    registers = {
        int(r): raw[(word_offsets[r] + 1) * 8 : (word_offsets[r] + 1) * 8 + M].copy()
        for r in np.flatnonzero(kinds == HLL)
    }
    return row_of_word[exact_word], words[exact_word], registers


def _registers(hashes: np.ndarray) -> np.ndarray:
    """HyperLogLog registers of 64-bit hashes: top P bits pick, the rest's leading zeros rank."""
    regs = np.zeros(M, dtype=np.uint8)
    if len(hashes) == 0:
        return regs
    index = (hashes >> np.uint64(_REST_BITS)).astype(np.int64)
    rest = hashes & np.uint64((1 << _REST_BITS) - 1)
    _, exponent = np.frexp(rest.astype(np.float64))  # exact: rest < 2**53
    rank = np.where(rest == 0, _REST_BITS + 1, _REST_BITS + 1 - exponent).astype(np.uint8)
    np.maximum.at(regs, index, rank)
    return regs


def _hll_estimate(regs: np.ndarray) -> int:
    alpha = 0.7213 / (1 + 1.079 / M)
    raw = alpha * M * M / float(np.sum(np.ldexp(1.0, -regs.astype(np.int64))))
    zeros = int(np.count_nonzero(regs == 0))
    if raw <= 2.5 * M and zeros:
        return round(M * np.log(M / zeros))
    return round(raw)
