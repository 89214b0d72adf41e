"""Random event ids (``imp-`` + 16 hex digits) drawn from the seeded generator."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


def hex_ids(rng: np.random.Generator, n: int, prefix: str) -> pl.Series:
    """``n`` distinct ids ``prefix`` + 16 lowercase hex digits.

    One ``bytes.hex()`` over the whole buffer, cut into 16-character cells by numpy, is
    orders of magnitude faster than formatting each id in Python; the prefix is written
    beside each cell in the same bytes, so one cast makes the texts (a concatenation after
    it took a third more). A 64-bit collision is vanishingly rare, but ids must be unique
    for the ground truth to hold, so colliding draws are replaced (still deterministically)
    until none are left.

    >>> import numpy as np
    >>> hex_ids(np.random.default_rng(1), 2, "imp-").to_list()
    ['imp-ffe42279f3bd0683', 'imp-66a852c1bb9651f3']
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
    digits = np.frombuffer(values.astype(">u8").tobytes().hex().encode("ascii"), np.uint8)
    head = np.frombuffer(prefix.encode(), np.uint8)
    width = len(head) + 16
    text = np.empty((n, width), dtype=np.uint8)
    text[:, : len(head)] = head
    text[:, len(head) :] = digits.reshape(n, 16)
    # Not through an Arrow array: in a process that has not refused pandas, Arrow's first
    # array imports it (≈ 0.25 s), and this runs on the generator's one-threaded start.
    return pl.Series(text.reshape(-1).view(f"S{width}")).cast(pl.String)
