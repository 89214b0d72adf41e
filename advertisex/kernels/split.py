"""Which side of the split a standardized row goes: a row with any reason to the quarantine,
the others to their tables (as candidates, before dedupe and invalid traffic).

Every input row goes to exactly one side, which is what keeps batch accounting exact.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def rejected_mask(reasons: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per row of a ``reasons`` column, whether it lists at least one reason (a null list
    lists none).

    >>> rejected_mask(pa.array([[], ["json_invalid"], None], pa.list_(pa.string()))).tolist()
    [False, True, False]
    """
    listed = pc.fill_null(pc.greater(pc.list_value_length(reasons), 0), False)
    return listed.to_numpy(zero_copy_only=False)
