"""Text normalization of whole columns with Arrow's kernels, exactly as the SQL spelled it.

The standardize kernels used to trim and case-fold every text field inside their DuckDB
query; each such expression copies every string into the engine and out again, which
cost more than parsing the JSON. Arrow's string kernels do the same work in one pass
over the column's buffers, about ten times faster. They must give byte-identical
results — the normalized values feed payload hashes and fingerprint ids that lakes have
stored — so each function here reproduces its SQL original exactly:

* :func:`text` is ``nullif(trim(x), '')``. DuckDB's ``trim`` removes the Unicode *space
  separators* (category Zs: the space, no-break space, the typographic spaces …) from
  both ends — not tabs or newlines (``tests/kernels/test_text.py`` checks the set
  against DuckDB and Python's Unicode database);
* :func:`lower` / :func:`upper` are DuckDB's ``lower`` / ``upper``: ASCII columns (all
  real enumerations and country codes) are case-folded by Arrow's ASCII kernels; a
  column holding anything else goes to DuckDB itself, so no Unicode table has to agree.

Where the compiled helpers are built, one pass over a column's offsets (and its bytes, for
the case) tells whether any of that work changes anything (``native.text_traits``): a
column of ids or codes already trimmed and in its case is returned as it is.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from advertisex import native
from advertisex.util import engine
from advertisex.util.arrays import chunks_of, text_bytes

# Unicode category Zs, what DuckDB's trim() removes (utf8proc's UTF8PROC_CATEGORY_ZS).
SPACE_SEPARATORS = (
    "\u0020\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
)

Column: TypeAlias = pa.Array | pa.ChunkedArray

# The bytes a space separator's UTF-8 can begin with (U+0020 itself; C2 for U+00A0, E1 for
# U+1680, E2 for U+2000-U+205F, E3 for U+3000) and end with (U+0020; every other one ends in
# a continuation byte, 0x80-0xBF): a text whose first and last bytes are none of these has
# nothing to trim.
_MAY_BEGIN_A_SPACE = np.zeros(256, dtype=bool)
_MAY_BEGIN_A_SPACE[[0x20, 0xC2, 0xE1, 0xE2, 0xE3]] = True
_MAY_END_A_SPACE = np.zeros(256, dtype=bool)
_MAY_END_A_SPACE[[0x20, *range(0x80, 0xC0)]] = True


def text(column: Column) -> Column:
    """``nullif(trim(column), '')``: space separators trimmed, empty text null.

    >>> text(pa.array([" a ", "\\u00a0", "\\tb", None])).to_pylist()
    ['a', None, '\\tb', None]
    """
    # Most columns have nothing to trim (ids, enumerations, times, user agents): those are
    # told from two bytes a row and kept as they are, where the trim wrote every text into
    # new memory (13 fields of an impression; 2 M events' process: ≈ 0.2 s of CPU). The
    # compiled helpers tell it, and whether a text is empty, in one pass over the offsets
    # (NumPy's look and Arrow's lengths: ≈ 1.2 ms a column of a 140 k-bid piece).
    traits = native.text_traits(column)
    if traits is None:  # without the helpers: NumPy's look at the texts' ends
        trimmed = column if _nothing_to_trim(column) else pc.utf8_trim(column, SPACE_SEPARATORS)
    elif traits & native.TRIM:  # the helpers saw a separator at an end: no second look
        trimmed = pc.utf8_trim(column, SPACE_SEPARATORS)
    elif traits & native.EMPTY:
        return pc.if_else(pc.equal(pc.binary_length(column), 0), None, column)
    else:
        return column
    lengths = pc.binary_length(trimmed)
    if pc.min(lengths).as_py() != 0:  # no empty text (or none at all): nothing to null
        return trimmed  # (the if_else copied every string of the column once more)
    return pc.if_else(pc.equal(lengths, 0), None, trimmed)


def _nothing_to_trim(column: Column) -> bool:
    """Whether no text of ``column`` may begin or end with a space separator. The bytes
    looked at for an empty text or a null's slot are its neighbours' (or the column's ends):
    at worst the column is trimmed for nothing."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return False  # another layout would be copied to be looked at: trimmed instead
    for chunk in chunks_of(column):
        offsets, data = text_bytes(chunk)
        if not len(data):
            continue
        # Bytes all above the space and below 0x80 hold no space separator at all: two
        # reductions over the bytes (ids, enumerations, times) instead of a gather of
        # every text's first and last byte, ≈ 10x the cost.
        if data.min() > 0x20 and data.max() < 0x80:
            continue
        offsets -= offsets[0]
        if _MAY_BEGIN_A_SPACE[data.take(offsets[:-1], mode="clip")].any():
            return False
        if _MAY_END_A_SPACE[data.take(offsets[1:] - 1, mode="clip")].any():
            return False
    return True


def lower(column: Column) -> Column:
    """DuckDB's ``lower(column)``."""
    return _case(column, pc.ascii_lower, "lower", native.UPPER)


def upper(column: Column) -> Column:
    """DuckDB's ``upper(column)``."""
    return _case(column, pc.ascii_upper, "upper", native.LOWER)


def _case(column: Column, ascii_kernel: object, function: str, changed: int) -> Column:
    """``changed``: the :func:`~advertisex.native.text_traits` flag of the letters the
    function changes. An ASCII column without any is itself (the enumerations and codes
    nearly always are): the kernel wrote every text again, after a flag a row to learn
    the column was ASCII."""
    traits = native.text_traits(column, letters=True)
    if traits is not None and not traits & native.NON_ASCII:
        return ascii_kernel(column) if traits & changed else column  # type: ignore[operator]
    if traits is None and pc.all(pc.string_is_ascii(column)).as_py() is not False:
        return ascii_kernel(column)  # type: ignore[operator]
    folded = engine.run(f"SELECT {function}(c) AS c FROM t", t=pa.table({"c": column}))
    return folded.column("c")
