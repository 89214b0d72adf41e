"""Arrow helpers the kernels share."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def spread(values: pa.Array | pa.ChunkedArray, index: np.ndarray, length: int) -> pa.Array:
    """``values``, computed for the rows ``index`` of a column of ``length`` rows, put back
    at those rows; null at every other row. Kernels work on the few rows that need a costly
    step (an engine query, a hash) and spread the answers back with this.

    >>> spread(pa.array(["a", "b"]), np.array([3, 1]), 4).to_pylist()
    [None, 'b', None, 'a']
    """
    position = np.full(length, -1, dtype=np.int64)
    position[index] = np.arange(len(index))
    taken = pc.take(values, pa.array(position, mask=position < 0))
    return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken
