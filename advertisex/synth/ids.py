"""Random event ids (``imp-`` + 16 hex digits) drawn from the seeded generator."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


def hex_ids(rng: np.random.Generator, n: int, prefix: str) -> pl.Series:
    """``n`` distinct ids ``prefix`` + 16 lowercase hex digits.

    One ``bytes.hex()`` over the whole buffer, cut into 16-character cells by numpy, is
    orders of magnitude faster than formatting each id in Python. A 64-bit collision is
    vanishingly rare, but ids must be unique for the ground truth to hold, so colliding
    draws are replaced (still deterministically) until none are left.
    """
    import numpy as np
    import polars as pl

    def draw(count: int) -> np.ndarray:
        return np.frombuffer(rng.bytes(8 * count), dtype=">u8").copy()

    values = draw(n)
    while True:
        ordered = np.sort(values)
        if not (ordered[1:] == ordered[:-1]).any():
            break
        _, first = np.unique(values, return_index=True)
        repeat = np.ones(n, dtype=bool)
        repeat[first] = False
        values[repeat] = draw(int(repeat.sum()))
    text = values.astype(">u8").tobytes().hex().encode("ascii")
    cells = pl.Series(np.frombuffer(text, dtype="S16")).cast(pl.String)
    return prefix + cells
