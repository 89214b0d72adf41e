"""Sketch bytes as the format pins them (``kernels.sketch``'s docstring)."""

from __future__ import annotations

import numpy as np

from advertisex.kernels import sketch


def _exact(*hashes: int) -> bytes:
    return b"".join(v.to_bytes(8, "little") for v in (sketch.EXACT, *hashes))


def test_pairs_become_each_groups_exact_list_of_distinct_hashes_ascending() -> None:
    """Groups of several hashes, a repeat, a group with none (the empty set's header)."""
    groups = np.array([0, 0, 0, 2, 2, 3])
    values = np.array([5, 9, 9, 1, 2**64 - 1, 7], dtype=np.uint64)
    got = sketch.from_pairs(groups, values, 5).to_pylist()
    assert got == [_exact(5, 9), _exact(), _exact(1, 2**64 - 1), _exact(7), _exact()]
